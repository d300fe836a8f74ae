"""Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"):

    D_w(x, σ, c) = D_guide(x, σ, c) + w·(D_main(x, σ, c) - D_guide(x, σ, c)),

where the guide is a smaller and/or less-trained version of the main model with the same
conditioning. Unlike classifier-free guidance it sharpens towards the data without the condition
pulling samples away from it, so it also works for unconditional models. Same mechanism as `cfg`
(`combine.extrapolate`); only the negative branch differs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .combine import check_interval, check_rescale, check_weight, extrapolate, in_interval

__all__ = ["autoguidance"]


def autoguidance(
    denoiser: Callable[..., Tensor],
    guide_denoiser: Callable[..., Tensor],
    weight: float,
    *,
    interval: Sequence[float] | None = None,
    rescale: float = 0.0,
) -> Callable[..., Tensor]:
    """Guide `denoiser` away from `guide_denoiser` with weight `weight` (>= 0; 1 returns `denoiser`
    itself, 0 the guide). Both receive the same conditioning. `interval` and `rescale` as in `cfg`.
    Karras et al. report their best results around w = 2-3."""
    if not callable(guide_denoiser):
        raise ValueError(f"guide_denoiser must be a denoiser callable, got {type(guide_denoiser).__name__}")
    weight = check_weight(weight, "autoguidance weight")
    interval = check_interval(interval)
    rescale = check_rescale(rescale)
    if weight == 1.0:
        return denoiser

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sig = sig.expand(x.shape[0]) if sig.ndim == 0 else sig.reshape(x.shape[0])
        inside = in_interval(sig, interval)
        if not bool(inside.any()):
            return denoiser(x, sig, **cond)
        if weight == 0.0 and rescale == 0.0 and bool(inside.all()):
            return guide_denoiser(x, sig, **cond)
        d_main = denoiser(x, sig, **cond)
        out = extrapolate(d_main, guide_denoiser(x, sig, **cond), weight, rescale)
        if not bool(inside.all()):
            out = torch.where(inside.reshape((-1,) + (1,) * (x.ndim - 1)), out, d_main)
        return out

    return guided
