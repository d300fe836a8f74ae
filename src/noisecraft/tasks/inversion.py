"""ODE inversion ("DDIM inversion", Song et al. 2021a Sec. 5.4; Dhariwal & Nichol 2021 App. F) and
spherical interpolation of noise.

The probability-flow ODE dx/dσ = (x - D(x, σ))/σ is deterministic and invertible: integrating it
upwards from an image gives the noise that `sample()` maps back to that image. `invert` runs the
same solver on the same schedule as `sample(denoiser, noise, solver=..., nfe=..., ...)`, reversed:

    sampling:   σ_max -> ... -> σ_min -> 0     (the last step returns D(x, σ_min))
    inversion:  σ_min -> ... -> σ_max           starting from x(σ_min) with D(x, σ_min) ≈ image

The solvers are written for any σ sequence, so running them on an increasing one integrates the
ODE forward in σ. Reconstruction error = the solver's discretization error both ways (it shrinks
at the solver's order as nfe grows) plus the model's inconsistency along the path.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Callable

import torch
from torch import Tensor

from ..sampling import SOLVERS, default_sigmas
from ..sampling.api import GuardedDenoiser
from ..sampling.registry import get_solver

__all__ = ["invert", "interpolate", "INVERTIBLE_SOLVERS"]

INVERTIBLE_SOLVERS = tuple(n for n, i in SOLVERS.items() if not i.stochastic and not i.adaptive)


def invert(
    denoiser: Callable[..., Tensor],
    image: Tensor,
    *,
    solver: str = "dpmpp_2m",
    nfe: int = 50,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    **cond: Any,
) -> Tensor:
    """The noise (B, ...) that `sample(denoiser, noise, solver=solver, nfe=nfe, sigma_min=sigma_min,
    sigma_max=sigma_max, **cond)` maps back to `image` (approximately).

    solver: a deterministic, non-adaptive solver (INVERTIBLE_SOLVERS). The inversion walks the same
    schedule with every correction the solver has (up to ~2·nfe calls for 2-call solvers), plus
    one call at σ_min that undoes the final denoising step to first order:
    x(σ_min) = 2·image - D(image, σ_min), so that D(x(σ_min), σ_min) = image + O(‖∂D/∂x - I‖²).
    """
    info = get_solver(solver)
    if solver not in INVERTIBLE_SOLVERS:
        raise ValueError(
            f"invert needs a deterministic fixed-schedule solver; valid: {', '.join(INVERTIBLE_SOLVERS)}, got {solver!r}"
        )
    if not isinstance(image, Tensor) or image.ndim < 1 or not image.is_floating_point():
        raise ValueError(f"image must be a float tensor (B, ...), got {getattr(image, 'shape', type(image).__name__)}")
    schedule = default_sigmas(solver, nfe, sigma_min, sigma_max).tolist()
    up = [s for s in schedule if s > 0][::-1]  # σ_min ... σ_max
    if len(up) < 2:
        raise ValueError(f"nfe={nfe} gives {solver!r} a single step σ_max -> 0, which has no inverse; use nfe >= 2")
    budget = info.max_calls(up, {})
    with torch.no_grad():
        sig = torch.full((image.shape[0],), up[0], dtype=image.dtype, device=image.device)
        d = denoiser(image, sig, **cond).to(image.dtype)
        x = 2 * image - d
        x = info.function(GuardedDenoiser(denoiser, budget, up, cond), x, up, nfe=budget, callback=None)
    return x / sigma_max


def interpolate(noise_a: Tensor, noise_b: Tensor, t: float) -> Tensor:
    """Spherical interpolation (slerp, Shoemake 1985) between two noise batches, per sample:

        slerp(a, b, t) = sin((1-t)θ)/sin θ · a + sin(tθ)/sin θ · b,   θ = angle(a, b),

    which keeps Gaussian noise at its typical norm (a linear blend would shrink it towards the
    origin, where no training input ever was). t ∈ [0, 1]; nearly parallel pairs fall back to lerp."""
    if not isinstance(noise_a, Tensor) or not isinstance(noise_b, Tensor) or noise_a.shape != noise_b.shape:
        raise ValueError(
            "noise_a and noise_b must be tensors of the same shape, got "
            f"{getattr(noise_a, 'shape', None)} and {getattr(noise_b, 'shape', None)}"
        )
    if noise_a.ndim < 1:
        raise ValueError("noise must have a batch dimension (B, ...)")
    if isinstance(t, bool) or not isinstance(t, Real) or not 0 <= t <= 1:
        raise ValueError(f"t must be a number in [0, 1], got {t!r}")
    a = noise_a.reshape(noise_a.shape[0], -1).to(torch.float64)
    b = noise_b.reshape(noise_b.shape[0], -1).to(torch.float64)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)
    theta = torch.arccos(cos.clamp(-1, 1))[:, None]  # (B, 1)
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, torch.full_like(sin, 1 - t), torch.sin((1 - t) * theta) / safe)
    wb = torch.where(parallel, torch.full_like(sin, float(t)), torch.sin(t * theta) / safe)
    return (wa * a + wb * b).reshape(noise_a.shape).to(noise_a.dtype)
