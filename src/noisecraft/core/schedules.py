"""Step schedules: small functions returning a decreasing σ sequence of n+1 values ending in 0.

`n` is the number of solver steps (intervals); sigmas[0] = σ_max, sigmas[n-1] = σ_min, sigmas[n] = 0.
The last interval σ_min → 0 is the final denoising every sampler performs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .processes import VPProcess

__all__ = ["karras", "loglinear", "vp_uniform_time", "flow_shift", "karras_open", "SCHEDULES", "get_schedule", "append_zero"]


def append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _check(n: int, sigma_min: float, sigma_max: float) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"number of steps must be an integer >= 1, got {n!r}")
    if not (math.isfinite(sigma_min) and math.isfinite(sigma_max)) or not 0 < sigma_min < sigma_max:
        raise ValueError(f"need finite 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def _ends(n: int, sigma_min: float, sigma_max: float, body) -> Tensor:
    """n = 1 has no interior: the single step is σ_max → 0."""
    if n == 1:
        return torch.tensor([sigma_max, 0.0], dtype=torch.float64)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    return append_zero(body(ramp))


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """EDM schedule (Karras et al. 2022, Eq. 5): σ_i = (σmax^(1/ρ) + i/(n-1)(σmin^(1/ρ) - σmax^(1/ρ)))^ρ."""
    _check(n, sigma_min, sigma_max)
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _ends(n, sigma_min, sigma_max, lambda r: (a + r * (b - a)) ** rho)


def loglinear(n: int, sigma_min: float, sigma_max: float, knee: float | None = None, knee_density: float = 0.25) -> Tensor:
    """Uniform steps in log σ (uniform in DPM-Solver's λ = -log σ).

    With `knee`, steps above σ = knee are `knee_density` times as dense in log σ as below it.
    Far above the data's scale (σ_data ≈ 0.5 for data in [-1, 1]) the denoiser barely changes
    along a trajectory, so steps there buy little accuracy; measured on Gaussian mixtures this
    lowers the error of the exponential multistep solvers at NFE 10-20 by 20-50 % (docs/samplers.md).
    The grid is a piecewise-linear warp of a uniform one, so it still refines everywhere as n grows.
    """
    _check(n, sigma_min, sigma_max)
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    if knee is None or not sigma_min < knee < sigma_max:
        return _ends(n, sigma_min, sigma_max, lambda r: torch.exp(hi + r * (lo - hi)))
    if not 0 < knee_density <= 1:
        raise ValueError(f"knee_density must be in (0, 1], got {knee_density}")
    mid = math.log(knee)
    upper = knee_density * (hi - mid)  # length of the upper part in the warped coordinate
    total = upper + (mid - lo)

    def body(r: Tensor) -> Tensor:
        w = r * total  # distance travelled in the warped coordinate
        log_sigma = torch.where(w <= upper, hi - w / knee_density, mid - (w - upper))
        return torch.exp(log_sigma)

    return _ends(n, sigma_min, sigma_max, body)


def vp_uniform_time(n: int, sigma_min: float, sigma_max: float, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    """Uniform steps in the continuous VP time t (Song et al. 2021), between t(σ_max) and t(σ_min)."""
    _check(n, sigma_min, sigma_max)
    vp = VPProcess(beta_min=beta_min, beta_max=beta_max)
    t_hi = float(vp.t_of_sigma(torch.tensor(sigma_max, dtype=torch.float64)))
    t_lo = float(vp.t_of_sigma(torch.tensor(sigma_min, dtype=torch.float64)))
    return _ends(n, sigma_min, sigma_max, lambda r: vp.sigma(t_hi + r * (t_lo - t_hi)))


def flow_shift(n: int, sigma_min: float, sigma_max: float, shift: float = 3.0) -> Tensor:
    """Flow-matching time steps with SD3's resolution shift (Esser et al. 2024, Eq. 23):
    t uniform between t(σ_max) and t(σ_min) in the unshifted time, t' = shift·t / (1 + (shift-1)·t),
    σ = t'/(1-t'). shift > 1 spends more steps at high noise."""
    _check(n, sigma_min, sigma_max)
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift}")

    def unshift(sig: float) -> float:  # inverse of the shift map, applied to t(σ) = σ/(1+σ)
        t = sig / (1 + sig)
        return t / (shift - (shift - 1) * t)

    u_hi, u_lo = unshift(sigma_max), unshift(sigma_min)

    def body(r):
        u = u_hi + r * (u_lo - u_hi)
        t = shift * u / (1 + (shift - 1) * u)
        return t / (1 - t)

    return _ends(n, sigma_min, sigma_max, body)


def uniform_t_open(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Uniform in the flow time t = σ/(1+σ) from t_max = t(σ_max), n steps t_i = t_max·(1 - i/n),
    then 0; the last σ before 0 is at t = t_max/n (as diffusers' flow-matching sigmas), NOT σ_min,
    which is ignored. For few steps (NFE <= 8) the final call denoises from a moderate σ instead
    of stepping down to σ_min: with unipc_3 it halved the error vs the default schedule on fresh
    mixtures and on two trained nets (docs/benchmarks-samplers-family.md); `low_nfe_open` uses it
    for few steps."""
    _check(n, sigma_min, sigma_max)
    t_max = sigma_max / (1 + sigma_max)
    t = t_max * (1 - torch.arange(n, dtype=torch.float64) / n)
    return append_zero(t / (1 - t))


def karras_open(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """The continuous Karras map σ(t) = (σmax^(1/ρ) + t(σmin^(1/ρ) - σmax^(1/ρ)))^ρ at t = i/n,
    i = 0..n-1, then 0: n calls, the last from σ((n-1)/n), never from σ_min (except n = 1: σ_max → 0).
    Grids of n and 2n steps are nested (every other point of the 2n grid), which is what progressive
    distillation (Salimans & Ho 2022) halves; the few-step consistency sampler uses it too."""
    _check(n, sigma_min, sigma_max)
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    t = torch.arange(n, dtype=torch.float64) / n
    return append_zero((a + t * (b - a)) ** rho)


LOW_NFE_OPEN_MAX_STEPS = 8  # the largest step count for which `low_nfe_open` is open-ended


def low_nfe_open(
    n: int, sigma_min: float, sigma_max: float, max_open_steps: int = LOW_NFE_OPEN_MAX_STEPS,
    knee: float | None = 10.0, knee_density: float = 0.25,
) -> Tensor:
    """`uniform_t_open` for n <= max_open_steps, else `loglinear` (with its knee): the default
    schedule of `unipc_3`. Few steps gain most from not spending one on σ < ~0.25, many steps
    from reaching σ_min; the switch at 8 was fixed on the tuning half of the mixture family and
    validated on fresh mixtures and two trained nets (docs/benchmarks-samplers-family.md)."""
    _check(n, sigma_min, sigma_max)
    if n <= max_open_steps:
        return uniform_t_open(n, sigma_min, sigma_max)
    return loglinear(n, sigma_min, sigma_max, knee=knee, knee_density=knee_density)


SCHEDULES = {
    "karras": karras,
    "loglinear": loglinear,
    "vp_uniform_time": vp_uniform_time,
    "flow_shift": flow_shift,
    "uniform_t_open": uniform_t_open,
    "low_nfe_open": low_nfe_open,
    "karras_open": karras_open,
}

# Schedules whose last nonzero σ is not σ_min (they ignore it; `low_nfe_open` only for few steps).
OPEN_ENDED = frozenset({"uniform_t_open", "low_nfe_open", "karras_open"})


def get_schedule(name: str, n: int, sigma_min: float, sigma_max: float, **kwargs) -> Tensor:
    try:
        fn = SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}") from None
    return fn(n, sigma_min, sigma_max, **kwargs)
