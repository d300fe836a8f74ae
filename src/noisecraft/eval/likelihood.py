"""Log-likelihood of a diffusion model through the probability-flow ODE, and a bound for discrete data.

The PF-ODE dx/dσ = (x - D(x, σ))/σ carries the marginal p_σ to p_σ' (Karras et al. 2022, eq. 1 with
s = 1). For an ODE dx/dt = f(x, t), the instantaneous change of variables (Chen et al. 2018, Thm 1;
Song et al. 2021, App. D.2) gives d log p_t(x(t))/dt = -∇·f. We integrate in t = ln σ, where the
drift is simply

    f(x, t) = dx/dt = x - D(x, e^t),      ∇·f = d - tr(∂D/∂x),

from t = ln σ_min (the state starts at the data point x, treated as a sample of p_{σ_min}) to
t = ln σ_max, and evaluate the end point under the prior N(0, σ_max²·I):

    log p_{σ_min}(x) = log N(x(σ_max); 0, σ_max² I) + ∫_{ln σ_min}^{ln σ_max} ∇·f(x(t), t) dt.

The prior is exact up to the data's own spread, p_{σ_max} = p_0 * N(0, σ_max² I); with σ_max = 80
and data of scale 1 the mismatch is about d·Var(x0)/(2σ_max²) nats (~1e-4 per dimension).

tr(∂D/∂x) is exact (one vector-Jacobian product per dimension) where that is cheap, else Hutchinson's
estimate E[vᵀ (∂D/∂x) v] with k Rademacher or Gaussian probes v, drawn once per solve so the ODE stays
smooth for the adaptive solver (FFJORD, Grathwohl et al. 2019). Each probe's log-density change is
integrated as its own ODE component, so the k estimates of one point are independent given the
(shared, probe-free) trajectory and their spread gives the estimator's standard error per point.

Discrete data (8-bit images: 256 levels on [-1, 1]) has a probability mass, not a density. With
uniform dequantization (Theis et al. 2016; Ho et al. 2019, Flow++ §3.1) and Jensen's inequality,

    log P(x) = log ∫_{bin(x)} p(v) dv ≥ E_{u ~ U(bin - x)}[log p(x + u)] + D·ln Δ,

Δ the bin width, so -(that)/(D ln 2) is an upper bound on the model's bits per dimension: a codelength.
Jacobians come from reverse-mode autograd, so any torch denoiser works; it must treat batch items
independently (no batch norm in train mode).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

__all__ = [
    "log_likelihood", "discrete_log_likelihood", "bits_per_dim", "quantize", "bin_width", "data_span",
    "default_probes", "LogLikelihood", "DataSpan", "PROBES", "ODE_METHODS", "TRACE_MODES", "MAX_EXACT_DIM",
]

PROBES = ("rademacher", "gaussian")
ODE_METHODS = ("RK45", "DOP853", "RK23")
TRACE_MODES = ("auto", "exact", "hutchinson")
# trace="auto" is exact up to this many dimensions (d products per ODE step, about as many as the
# probes the estimate would need there to reach 0.03 nats/dim per point).
MAX_EXACT_DIM = 64


class LogLikelihood(NamedTuple):
    """Per-sample log-density (or log-probability bound) in nats and its estimator's standard error.

    nats: (B,) float64. std_err: (B,) float64, the standard error of the trace estimate from the spread
    of the Hutchinson probes (0 for the exact trace). It does not include the ODE solver's error
    (controlled by rtol/atol; about 1e-3 nats/dim on the test mixtures) nor the prior mismatch.
    """

    nats: Tensor
    std_err: Tensor


def _check_positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


def _check_int(name: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return v


def default_probes(num_dims: int) -> int:
    """Hutchinson probes used when hutchinson_samples is None: max(4, ceil(512 / d)).

    One Rademacher probe's error on the integrated trace does not grow with d (it is about the
    Frobenius norm of the off-diagonal part of the integrated Jacobian), so per dimension it shrinks
    like 1/√d to 1/d; 512/d probes keep it near 0.01 nats/dim on 8-32-D mixtures (tested), and at
    least 4 are needed for the probe spread to give a usable standard error.
    """
    _check_int("num_dims", num_dims, 1)
    return max(4, math.ceil(512 / num_dims))


def log_likelihood(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    trace: str = "auto",
    max_exact_dim: int = MAX_EXACT_DIM,
    hutchinson_samples: int | None = None,
    probe: str = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    generator: torch.Generator | None = None,
    **cond: Any,
) -> LogLikelihood:
    """log p_{σ_min}(x) in nats per sample with its estimator's standard error: LogLikelihood((B,), (B,)).

    denoiser(x, sigma (B,), **cond) -> E[x0 | x]; x: (B, ...) points of the data space (σ-space).
    trace: "exact" (d vector-Jacobian products per ODE step), "hutchinson" (probe estimate), or
        "auto": exact when d = prod(x.shape[1:]) <= max_exact_dim, else Hutchinson.
    hutchinson_samples: probes per point (None: `default_probes(d)`); each is integrated separately,
        and std_err = std over probes / sqrt(k). probe: "rademacher" (lower variance) or "gaussian".
    generator: draws the probes (fixed for the solve). rtol, atol, method: scipy.integrate.solve_ivp
        settings for the whole flattened state (all B samples are one ODE, solved once).
    cond: conditioning forwarded to the denoiser (e.g. class_labels=...).
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor (B, ...) with at least 2 dims, got {getattr(x, 'shape', type(x))}")
    sigma_min, sigma_max = _check_positive("sigma_min", sigma_min), _check_positive("sigma_max", sigma_max)
    if sigma_min >= sigma_max:
        raise ValueError(f"sigma_min must be < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    _check_positive("rtol", rtol), _check_positive("atol", atol)
    if method not in ODE_METHODS:
        raise ValueError(f"method must be one of {', '.join(ODE_METHODS)}; got {method!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {', '.join(PROBES)}; got {probe!r}")
    if trace not in TRACE_MODES:
        raise ValueError(f"trace must be one of {', '.join(TRACE_MODES)}; got {trace!r}")
    _check_int("max_exact_dim", max_exact_dim, 0)
    if hutchinson_samples is not None:
        _check_int("hutchinson_samples", hutchinson_samples, 1)
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")

    b, shape = x.shape[0], tuple(x.shape[1:])
    d = math.prod(shape)
    dtype, device = x.dtype, x.device
    exact = trace == "exact" or (trace == "auto" and d <= max_exact_dim)
    k = 1 if exact else (hutchinson_samples or default_probes(d))  # log-density channels per point
    probes = None
    if not exact:
        size = (k, b, *shape)
        if probe == "rademacher":
            probes = torch.randint(0, 2, size, generator=generator, dtype=torch.int64).to(dtype) * 2 - 1
        else:
            probes = torch.randn(size, generator=generator, dtype=dtype)
        probes = probes.to(device)

    # Several vector-Jacobian products run as one batched backward pass (vmap over grad_outputs);
    # chunked so that a chunk holds at most ~16M values. Falls back to a loop for denoisers whose
    # backward cannot be batched.
    chunk = max(1, min(d if exact else k, (1 << 24) // max(1, b * d)))
    batched = [True]

    def vjps(out: Tensor, xs: Tensor, vs: Tensor) -> Tensor:
        """vᵀ ∂D/∂x for each v in vs (m, B, ...), per sample: (m, B, ...)."""
        if batched[0]:
            try:
                return torch.autograd.grad(out, xs, grad_outputs=vs, retain_graph=True, is_grads_batched=True)[0]
            except RuntimeError:
                batched[0] = False
        return torch.stack([torch.autograd.grad(out, xs, grad_outputs=v, retain_graph=True)[0] for v in vs])

    def trace_jacobian(xs: Tensor, out: Tensor) -> Tensor:
        """tr(∂D/∂x): exact (1, B), or one estimate per probe (k, B). Samples are independent, so one
        backward pass with the same direction for every sample gives each sample's own product."""
        if exact:
            tr = torch.zeros(1, b, dtype=torch.float64, device=device)
            for start in range(0, d, chunk):
                idx = torch.arange(start, min(d, start + chunk), device=device)
                basis = torch.zeros(len(idx), b, d, dtype=out.dtype, device=device)
                basis[torch.arange(len(idx)), :, idx] = 1.0  # e_i for every sample
                g = vjps(out, xs, basis.reshape(len(idx), b, *shape)).reshape(len(idx), b, d)
                tr[0] += g[torch.arange(len(idx)), :, idx].sum(0).double()  # Σ_i (∂D/∂x)_ii
            return tr
        parts = []
        for start in range(0, k, chunk):
            v = probes[start : start + chunk]
            g = vjps(out, xs, v)  # (m, B, ...)
            parts.append((g * v).reshape(len(v), b, d).sum(2).double())
        return torch.cat(parts)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        sigma = math.exp(t)
        xs = torch.from_numpy(y[: b * d]).reshape(b, *shape).to(device=device, dtype=dtype)
        sig = torch.full((b,), sigma, dtype=dtype, device=device)
        with torch.enable_grad():
            xs.requires_grad_(True)
            out = denoiser(xs, sig, **cond)
            if not isinstance(out, Tensor) or out.shape != xs.shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"denoiser returned {got} for input {tuple(xs.shape)}; it must return a tensor shaped like x")
            tr = trace_jacobian(xs, out)  # (k, B)
        drift = (xs - out).detach().reshape(-1).double().cpu().numpy()  # dx/dt
        div = (d - tr).reshape(-1).cpu().numpy()  # ∇·f = d - tr(∂D/∂x), one channel per probe
        if not (np.isfinite(drift).all() and np.isfinite(div).all()):
            raise FloatingPointError(f"the denoiser produced NaN/Inf at sigma={sigma:.6g}")
        return np.concatenate([drift, div])

    y0 = np.concatenate([x.detach().reshape(-1).double().cpu().numpy(), np.zeros(k * b)])
    sol = solve_ivp(rhs, (math.log(sigma_min), math.log(sigma_max)), y0, method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the probability-flow ODE solve failed: {sol.message}")
    end = sol.y[:, -1]
    x_end = torch.from_numpy(end[: b * d]).reshape(b, d)
    delta = torch.from_numpy(end[b * d :]).reshape(k, b)  # ∫ ∇·f dt per probe
    log_prior = -0.5 * (x_end**2).sum(1) / sigma_max**2 - 0.5 * d * math.log(2 * math.pi * sigma_max**2)
    std_err = delta.std(0) / math.sqrt(k) if k > 1 else torch.zeros(b, dtype=torch.float64)
    return LogLikelihood((log_prior + delta.mean(0)).to(torch.float64), std_err.to(torch.float64))


def bin_width(levels: int = 256, data_range: Sequence[float] = (-1.0, 1.0)) -> float:
    """Spacing Δ of `levels` equally spaced values from data_range[0] to data_range[1] (both included):
    8-bit images on [-1, 1] have Δ = 2/255."""
    _check_int("levels", levels, 2)
    lo, hi = _check_range(data_range)
    return (hi - lo) / (levels - 1)


def _check_range(data_range: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (low, high), got {data_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be finite with low < high, got {data_range!r}")
    return lo, hi


def quantize(x: Tensor, levels: int = 256, data_range: Sequence[float] = (-1.0, 1.0)) -> Tensor:
    """x rounded to the nearest of `levels` values on data_range (clamped to it): what saving the data
    with that many levels (an 8-bit PNG for the default) stores."""
    lo, _ = _check_range(data_range)
    delta = bin_width(levels, data_range)
    return (torch.round((x - lo) / delta).clamp(0, levels - 1) * delta + lo).to(x.dtype)


def discrete_log_likelihood(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    *,
    levels: int = 256,
    data_range: Sequence[float] = (-1.0, 1.0),
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> LogLikelihood:
    """A lower bound on log P(x) in nats per sample for data quantized to `levels` values on data_range.

    x: (B, ...) on that grid (`quantize` puts data there); anything else is a ValueError, since the
    bound is about the probability of a discrete value. One uniform dequantization draw per point,
    u ~ U[-Δ/2, Δ/2)^D from `generator` (which then draws the probes):

        log P(x) ≥ E_u[log p_{σ_min}(x + u)] + D·ln Δ,

    and log p(x + u) + D·ln Δ for one draw is an unbiased estimate of the right side (average several
    draws to tighten it). kwargs go to `log_likelihood`; std_err is its trace estimator's error.
    Convert with `bits_per_dim`: the result is an upper bound on the model's bits per dimension.
    """
    delta = bin_width(levels, data_range)
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a floating-point tensor (B, ...) with at least 2 dims, got {getattr(x, 'shape', type(x))}")
    off = float((x - quantize(x, levels, data_range)).abs().max()) if x.numel() else 0.0
    if off > 1e-3 * delta:
        raise ValueError(f"x is not on the grid of {levels} levels over {tuple(data_range)} (a value is {off:.3g} "
                         f"away from its level, bin width {delta:.3g}); quantize it first (noisecraft.eval.quantize)")
    u = (torch.rand(x.shape, generator=generator, dtype=torch.float64) - 0.5) * delta
    d = math.prod(x.shape[1:])
    ll = log_likelihood(denoiser, (x.double() + u.to(x.device)).to(x.dtype), generator=generator, **kwargs)
    return LogLikelihood(ll.nats + d * math.log(delta), ll.std_err)


def bits_per_dim(log_prob_nats, num_dims: int):
    """-log P / (D·ln 2): bits per dimension of a discrete log-probability in nats (floats, arrays, tensors).

    Apply it to `discrete_log_likelihood` (a bound on log P of quantized data), never to a continuous
    log-density: a density's "bits" depend on the units of x and can be any negative number.
    """
    _check_int("num_dims", num_dims, 1)
    return -log_prob_nats / (num_dims * math.log(2.0))


class DataSpan(NamedTuple):
    """How many dimensions a data set really fills: rank of the centred data matrix (numerical)."""

    rank: int
    dims: int
    n: int

    @property
    def degenerate(self) -> bool:
        return self.rank < self.dims


def data_span(images: Tensor, *, rtol: float = 1e-5) -> DataSpan | None:
    """The dimension of the affine subspace that `images` (N, ...) span, or None if N <= D (cannot tell).

    Rank = number of singular values of the centred (N, D) matrix above rtol × the largest. Data that
    were upsampled from a lower resolution (digits at 16×16 are 8×8 images resampled: rank 61 of 256),
    have constant pixels (three in the 8×8 digits) or repeated channels lie in a proper subspace, and a
    continuous density fitted to them concentrates there: its nats/dim are not a property of the data.
    """
    _check_positive("rtol", rtol)
    n, dims = images.shape[0], math.prod(images.shape[1:])
    if n <= dims:
        return None
    flat = images.reshape(n, dims).double()
    s = torch.linalg.svdvals(flat - flat.mean(0))
    rank = int((s > rtol * s[0]).sum()) if s[0] > 0 else 0
    return DataSpan(rank, dims, n)
