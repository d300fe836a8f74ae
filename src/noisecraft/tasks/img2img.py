"""SDEdit / img2img (Meng et al. 2022): noise an image part of the way and denoise it again.
The result keeps the image's coarse structure (what survives at that noise level) and is
otherwise a sample of the model.

Strength -> noise level. strength s ∈ (0, 1] picks the start σ on the EDM ramp (Karras et al. 2022,
Eq. 5, ρ = 7) between sigma_min and sigma_max:

    σ_start(s) = (σ_min^(1/ρ) + s·(σ_max^(1/ρ) - σ_min^(1/ρ)))^ρ

s = 1 starts from σ_max (x ≈ pure noise: plain sampling), s → 0 from σ_min (nearly no change).
It is the ramp the EDM sampler spaces its steps on, so equal strength differences cost about
equal numbers of steps; linear σ would put almost all strengths at high noise, log σ too many
near σ_min. With the defaults (0.002, 80): s = 0.25 -> σ ≈ 0.17, 0.5 -> σ ≈ 2.5, 0.75 -> σ ≈ 17.5
(for data scaled to [-1, 1], σ ≈ 0.5 keeps layout and colours, σ ≈ 2.5 mainly the layout).

The run itself is `sample()` on the solver's own schedule from σ_start down to sigma_min (and 0)
with the full `nfe` budget, starting at x = image + σ_start·ε.
"""

from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import Any, Callable

from torch import Tensor

from ..sampling import default_sigmas, sample
from ..sampling.noise import Generators, randn
from ..sampling.registry import get_solver

__all__ = ["img2img", "strength_to_sigma", "check_strength"]


def check_strength(strength: Any) -> float:
    number = not isinstance(strength, bool) and isinstance(strength, Real)
    if not number or not math.isfinite(strength) or not 0 < strength <= 1:
        raise ValueError(f"strength must be a number in (0, 1] (1 = start from pure noise at sigma_max), got {strength!r}")
    return float(strength)


def strength_to_sigma(strength: float, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> float:
    """The start σ for an img2img strength (module docstring); strength 1 gives exactly sigma_max."""
    s = check_strength(strength)
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if s == 1.0:
        return float(sigma_max)
    a, b = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return float((a + s * (b - a)) ** rho)


def img2img(
    denoiser: Callable[..., Tensor],
    image: Tensor,
    strength: float,
    *,
    solver: str = "dpmpp_2m",
    nfe: int = 20,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    noise: Tensor | None = None,
    generator: Generators = None,
    **options: Any,
) -> Tensor:
    """Re-generate `image` (B, ...) from noise level strength_to_sigma(strength).

    noise: ε for the start point x = image + σ_start·ε (default: drawn from `generator`, which then
        also drives stochastic solvers). nfe: denoiser calls spent on the run from σ_start.
    options: solver options, callback and conditioning, as for `sample()`.
    """
    strength = check_strength(strength)
    if not isinstance(image, Tensor) or image.ndim < 1 or not image.is_floating_point():
        raise ValueError(f"image must be a float tensor (B, ...), got {getattr(image, 'shape', type(image).__name__)}")
    sigma_start = strength_to_sigma(strength, sigma_min, sigma_max)
    if not sigma_start > sigma_min * (1 + 1e-9):
        raise ValueError(
            f"strength {strength} is too small: its start sigma {sigma_start:.6g} is not above sigma_min={sigma_min}"
        )
    if noise is None:
        noise = randn(image.shape, generator, dtype=image.dtype, device=image.device)
    elif noise.shape != image.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} must equal the image shape {tuple(image.shape)}")
    solver_options = {k: v for k, v in options.items() if k != "callback"}
    sigmas = default_sigmas(solver, nfe, sigma_min, sigma_start, **_schedule_options(solver, solver_options))
    # sample() starts at sigmas[0]·noise; this start makes x = image + σ_start·ε.
    start = (image + sigma_start * noise) / sigma_start
    return sample(denoiser, start, solver=solver, nfe=nfe, sigmas=sigmas, generator=generator, **options)


def _schedule_options(solver: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options that shape a solver's step count (e.g. pc_langevin's corrector_steps); the rest
    (conditioning) must not reach default_sigmas."""
    params = inspect.signature(get_solver(solver).function).parameters
    keys = {k for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
    return {k: v for k, v in options.items() if k in keys}
