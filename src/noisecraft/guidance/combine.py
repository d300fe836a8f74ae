"""The one mechanism behind classifier-free guidance and autoguidance: extrapolate from a weaker
("negative") denoiser towards a stronger ("positive") one,

    D_w = D_neg + w·(D_pos - D_neg),

optionally only inside a σ interval and with the std rescaling of Lin et al. 2024. Both wrappers
differ only in where D_neg comes from (the same model without its condition, or a worse model).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["check_weight", "check_interval", "check_rescale", "in_interval", "extrapolate"]


def check_weight(weight: float, what: str = "guidance weight") -> float:
    """A finite weight >= 0 as a float (1 = no guidance, 0 = the negative branch alone)."""
    if isinstance(weight, bool) or not isinstance(weight, Real) or not math.isfinite(weight):
        raise ValueError(f"{what} must be a finite number >= 0 (1 = no guidance), got {weight!r}")
    if weight < 0:
        raise ValueError(f"{what} must be >= 0 (0 = unguided negative branch, 1 = no guidance, >1 = stronger), got {weight}")
    return float(weight)


def check_interval(interval: Sequence[float] | None) -> tuple[float, float] | None:
    """None (guide at every σ) or (σ_lo, σ_hi) with 0 <= σ_lo < σ_hi (σ_hi may be inf)."""
    if interval is None:
        return None
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be None or a pair (sigma_lo, sigma_hi), got {interval!r}") from None
    if math.isnan(lo) or math.isnan(hi) or not 0 <= lo < hi:
        raise ValueError(f"interval must satisfy 0 <= sigma_lo < sigma_hi, got {interval!r}")
    return lo, hi


def check_rescale(rescale: float) -> float:
    if isinstance(rescale, bool) or not isinstance(rescale, Real) or not 0 <= rescale <= 1:
        raise ValueError(f"rescale must be a number in [0, 1] (0 = off, Lin et al. use 0.7), got {rescale!r}")
    return float(rescale)


def in_interval(sigma: Tensor, interval: tuple[float, float] | None) -> Tensor:
    """(B,) bool: which samples get guidance. Kynkäänniemi et al. 2024 guide on σ ∈ (σ_lo, σ_hi]."""
    if interval is None:
        return torch.ones(sigma.shape, dtype=torch.bool, device=sigma.device)
    lo, hi = interval
    return (sigma > lo) & (sigma <= hi)


def _per_sample_std(x: Tensor) -> Tensor:
    """Std over all non-batch dimensions, shaped (B, 1, ...) to broadcast against x."""
    flat = x.reshape(x.shape[0], -1)
    std = flat.std(dim=1) if flat.shape[1] > 1 else flat.new_zeros(flat.shape[0])
    return std.reshape((-1,) + (1,) * (x.ndim - 1))


def extrapolate(pos: Tensor, neg: Tensor, weight: float, rescale: float = 0.0) -> Tensor:
    """D_neg + w·(D_pos - D_neg), then (rescale = φ > 0) Lin et al. 2024, Sec. 3.4:

        D_r = D_w · std(D_pos)/std(D_w),   out = φ·D_r + (1 - φ)·D_w,

    with per-sample stds. Lin et al. state it for the model's prediction; here it acts on the
    denoiser output (the x0 prediction), the quantity every noisecraft sampler consumes.
    """
    out = neg + weight * (pos - neg)
    if rescale > 0:
        tiny = torch.finfo(out.dtype).tiny
        ratio = _per_sample_std(pos) / _per_sample_std(out).clamp_min(tiny)
        # A constant D_w (std 0) carries no scale to correct: keep it as it is.
        ratio = torch.where(_per_sample_std(out) > 0, ratio, torch.ones_like(ratio))
        out = rescale * (out * ratio) + (1 - rescale) * out
    return out
