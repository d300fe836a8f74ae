"""Zero-shot reconstruction of a field from sparse point observations, with any unconditional field model.

`reconstruct(denoiser, obs, shape, n=32)` draws n posterior samples x0 ~ p(x0 | y) (approximately)
for y = A·x0 + noise_std·n with A = `PointObservation`, and returns them with their pointwise mean
and std. Methods (all Denoiser -> Denoiser wrappers around one `sample()` call):

* "projection", "pigdm", "dps": the wrappers of `noisecraft.tasks.inverse` (DDNM / ΠGDM / DPS).
  For a Gaussian prior N(μ, Σ) the exact conditional denoiser is

      E[x0 | x, y] = D + Σ_σ·Aᵀ·(A·Σ_σ·Aᵀ + σ_y²·I)⁻¹·(y - A·D),     Σ_σ = Cov[x0 | x] = σ²·∂D/∂x,

  and all three approximate Σ_σ: projection by r²·I (exact only for white data), ΠGDM by σ²·∂D/∂x
  outside but r²·A·Aᵀ inside the inverse, DPS by a normalized gradient step. They are approximate,
  also with an exact denoiser (`tests/fields/test_reconstruct.py` measures by how much on a GRF).
* "tmpd": the formula above with A·Σ_σ·Aᵀ computed exactly from M·C vector-Jacobian products per
  step (Tweedie moment projection with the full Jacobian, Boys et al. 2023, "Tweedie moment projected
  diffusions for inverse problems"). Exact for a Gaussian prior with its exact denoiser, so it
  samples the true posterior up to the sampler's discretization; it costs M·C extra backward
  passes per step, so it suits oracles and small M, not large nets.
* "model": no wrapper: the denoiser of an observation-conditioned model (`[cond] image = "points"`,
  trained on random scattered pixels) reads [y placed on the grid, keep] as its `image_cond`
  (`observation_condition`), so p(x0 | y) is what it learned, sampled in one plain pass. The
  observations are taken as exact (the model was trained on exact pixel values; noise_std is not used).

`physics=residual` (e.g. `fields.physics.darcy_physics`) with method "dps" adds the PDE residual as one more
measurement, r = 0, of weight `physics_step` at σ <= `physics_sigma_max` (`fields.physics.physics_dps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..core.precond import expand_sigma
from ..sampling import sample
from ..sampling.noise import randn, seeded_generators
from ..tasks.inverse import dps, projection
from ..tasks.operators import LinearOperator
from .observations import Observations
from .physics import physics_dps

__all__ = ["RECONSTRUCT_METHODS", "Posterior", "tmpd", "observation_condition", "resolve_method", "reconstruct"]

RECONSTRUCT_METHODS = ("projection", "pigdm", "dps", "tmpd", "model")


@dataclass(frozen=True)
class Posterior:
    """samples (n, C, H, W); mean and std (C, H, W) over the samples (std with Bessel's correction)."""

    samples: Tensor
    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, samples: Tensor) -> "Posterior":
        s = samples.detach()
        std = s.std(0, correction=1) if s.shape[0] > 1 else torch.zeros_like(s[0])
        return cls(s, s.mean(0), std)


def tmpd(denoiser: Callable[..., Tensor], operator: LinearOperator, y: Tensor, *, sigma_y: float = 0.0,
         chunk: int = 64) -> Callable[..., Tensor]:
    """The exact-covariance Gaussian conditioning of D (module notes) as a denoiser. y (1 or B, P).

    chunk: measurement directions per batched backward pass (memory: chunk x the batch)."""
    if not (isinstance(sigma_y, (int, float)) and math.isfinite(sigma_y) and sigma_y >= 0):
        raise ValueError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sig = s.expand(x.shape[0]) if s.numel() == 1 else s
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = denoiser(xg, sig, **cond)
            pred = operator.forward(d)  # (B, P)
            p = pred.shape[1]
            rows = []
            for start in range(0, p, chunk):  # rows of A·Jᵀ·Aᵀ, a batch of P one-hot cotangents at a time
                k = min(chunk, p - start)
                eye = torch.zeros(k, *pred.shape, dtype=pred.dtype, device=pred.device)
                eye[torch.arange(k), :, start + torch.arange(k)] = 1.0
                (g,) = torch.autograd.grad(pred, xg, eye, retain_graph=True, is_grads_batched=True)  # (k, B, ...)
                rows.append(operator.forward(g.reshape(-1, *x.shape[1:])).reshape(k, x.shape[0], p))
            ajat = torch.cat(rows).permute(1, 0, 2)  # (B, P, P): [b, q, r] = (A·Jᵀ·Aᵀ)[q, r]
            s2 = expand_sigma(sig, ajat) ** 2
            gram = s2 * 0.5 * (ajat + ajat.transpose(1, 2))  # A·Σ_σ·Aᵀ (Σ_σ symmetric for an exact denoiser)
            eye_p = torch.eye(p, dtype=gram.dtype, device=gram.device)
            jitter = 1e-9 * gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-30)[:, None, None]
            resid = (y.to(pred.dtype) - pred).detach()  # (B, P)
            v = torch.linalg.solve(gram + (sigma_y**2) * eye_p + jitter * eye_p, resid[..., None])[..., 0]
            (corr,) = torch.autograd.grad(pred, xg, v)  # Jᵀ·Aᵀ·v
        return d.detach() + expand_sigma(sig, x) ** 2 * corr

    return guided


def resolve_method(method: str | None, conditioned: bool) -> str:
    """The reconstruction method for a model: `method`, or by default "model" for an observation-conditioned
    run (`conditioned`, `[cond] image = "points"`) and "dps" for an unconditional one; a ValueError naming
    what is valid when they do not fit (a conditioned net needs its condition, a plain one has none)."""
    wrappers = [m for m in RECONSTRUCT_METHODS if m != "model"]
    if method is None:
        return "model" if conditioned else "dps"
    if method not in RECONSTRUCT_METHODS:
        raise ValueError(f"method {method!r} is not a method; valid: {', '.join(RECONSTRUCT_METHODS)}")
    if conditioned and method != "model":
        raise ValueError(f"method {method!r} wraps an unconditional model; this run is observation-conditioned "
                         "([cond] image = 'points'): use method 'model'")
    if not conditioned and method == "model":
        raise ValueError("method 'model' needs an observation-conditioned run ([cond] image = 'points'); this run is "
                         f"unconditional: valid: {', '.join(wrappers)}")
    return method


def observation_condition(obs: Observations, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
    """[y on the grid, keep] (1, C + 1, H, W): the observed values at their pixels (0 elsewhere) and the
    mask of observed pixels, the `image_cond` of a `[cond] image = "points"` model."""
    c, h, w = (int(s) for s in shape)
    observed = obs.observed_channels(c)
    if sorted(observed) != list(range(c)):
        raise ValueError(f"method 'model' reads every channel at each observed point (its training masks); these "
                         f"observations hold channel(s) {list(observed)} of {c}: use method 'dps'")
    keep = torch.zeros(1, 1, h, w, dtype=dtype)
    grid = torch.zeros(1, c, h, w, dtype=dtype)
    rows, cols = obs.idx[:, 0], obs.idx[:, 1]
    keep[0, 0, rows, cols] = 1.0
    for k, ch in enumerate(observed):  # values (M, K): column k is channel observed[k]
        grid[0, ch, rows, cols] = obs.values[:, k].to(dtype)
    return torch.cat([grid, keep], 1)


def _wrap(method: str, denoiser, op, y, *, sigma_y: float, sigma_data: float, step_size: float):
    if method in ("projection", "pigdm"):
        return projection(denoiser, op, y, sigma_y=sigma_y, sigma_data=sigma_data, jacobian=method == "pigdm")
    if method == "dps":
        return dps(denoiser, op, y, step_size=step_size)
    if method == "tmpd":
        return tmpd(denoiser, op, y, sigma_y=sigma_y)
    if method == "model":
        return denoiser
    raise ValueError(f"unknown reconstruction method {method!r}; valid: {', '.join(RECONSTRUCT_METHODS)}")


def reconstruct(
    denoiser: Callable[..., Tensor],
    obs: Observations,
    shape: Sequence[int],
    *,
    n: int = 32,
    method: str = "dps",  # the better per CPU-second with a trained grf prior and the exact one (docs/fields.md)
    seed: int = 0,
    solver: str = "ddpm",
    nfe: int = 100,
    sigma_data: float = 0.5,
    step_size: float = 3.0,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float32,
    physics: Callable[[Tensor], Tensor] | None = None,
    physics_step: float = 1.0,
    physics_sigma_max: float = math.inf,
    **options: Any,
) -> Posterior:
    """n posterior samples of a field of `shape` (C, H, W) given `obs` (module notes).

    Sample i uses seed + i (its starting noise and its solver noise), so a batch of n equals n runs
    of one. solver/nfe: any solver of `sample()` (ancestral "ddpm" by default, as for
    `solve_inverse_problem`). sigma_data: the data std the projection wrappers assume. step_size: DPS's ζ.
    batch_size: samples per sampler call. physics: a residual x -> (B, p) to guide towards 0 (method "dps"
    only; module notes) with ζ_p = physics_step at σ <= physics_sigma_max. Other keywords go to `sample()`
    (sigma_min, sigma_max, conditioning).
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if method not in RECONSTRUCT_METHODS:
        raise ValueError(f"unknown reconstruction method {method!r}; valid: {', '.join(RECONSTRUCT_METHODS)}")
    if obs.channels is None and obs.values.shape[1] != shape[0]:
        raise ValueError(f"the observations have {obs.values.shape[1]} channel(s) but the field {shape[0]}")
    if obs.channels is not None and (max(obs.channels) >= shape[0] or obs.values.shape[1] != len(obs.channels)):
        raise ValueError(f"the observations hold channel(s) {list(obs.channels)} ({obs.values.shape[1]} value(s) per "
                         f"point) but the field has {shape[0]} channel(s)")
    if physics is not None and method != "dps":
        raise ValueError(f"physics guidance adds a term to DPS; it needs method 'dps', not {method!r}")
    op = obs.operator(shape)
    cond = observation_condition(obs, shape, dtype) if method == "model" else None
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        y = obs.measurement(dtype).expand(b, -1).contiguous()
        if physics is None:
            den = _wrap(method, denoiser, op, y, sigma_y=obs.noise_std, sigma_data=sigma_data, step_size=step_size)
        else:
            den = physics_dps(denoiser, physics, physics_step=physics_step, sigma_max=physics_sigma_max, operator=op,
                              y=y, step_size=step_size)
        gens = seeded_generators(range(seed + start, seed + start + b))
        noise = randn((b, *shape), gens, dtype=dtype)
        extra = {} if cond is None else {"image_cond": cond.expand(b, -1, -1, -1)}
        x = sample(den, noise, solver=solver, nfe=nfe, generator=gens, **extra, **options)
        out.append(x.detach())
    return Posterior.of(torch.cat(out))
