"""Zero-shot inverse problems y = A·x0 + σ_y·n with any unconditional denoiser, as
Denoiser -> Denoiser wrappers (so every sampler can run them) plus `solve_inverse_problem` and
`super_resolve`, which call `sample()`. `super_resolve(..., method="model")` instead samples a
model trained on low-res conditions (`[cond] image = "lowres"`; SR3, Saharia et al. 2021).

Every wrapper corrects the posterior-mean estimate D(x, σ) ≈ E[x0 | x] towards the measurement.
By Tweedie (D = x + σ²·∇ log p_σ(x)) a corrected denoiser is a corrected score, so the sampler then
follows ∇ log p_σ(x | y) instead of ∇ log p_σ(x).

* `projection` (DDNM, Wang et al. 2023, in the noise-aware form of ΠGDM, Song et al. 2023). Treat
  x0 | x as Gaussian around D with variance r² = σ²·σ_d²/(σ² + σ_d²) (the posterior variance for
  data of variance σ_d²) and condition it on y exactly:

      D'(x, σ) = D + r²·Aᵀ·(r²·A·Aᵀ + σ_y²·I)⁻¹·(y - A·D).

  With σ_y = 0 this is D + A⁺(y - A·D) = A⁺y + (I - A⁺A)·D: the range-space part of D replaced by
  the measurement (DDNM). With σ_y > 0 the correction shrinks where the noise dominates. No
  gradient: cheap. For a Gaussian prior of std σ_d it is the exact posterior denoiser; for
  multi-modal data it pulls the unobserved part only through later denoiser calls, so it
  under-weights modes that the measurement favours (test_inverse measures this bias).

* `projection(..., jacobian=True)` ("pigdm" in `solve_inverse_problem`; ΠGDM, Song et al. 2023):
  the same correction pulled back through the denoiser's Jacobian,

      D'(x, σ) = D + σ²·(∂D/∂x)ᵀ·Aᵀ·(r²·A·Aᵀ + σ_y²·I)⁻¹·(y - A·D).

  σ²·∂D/∂x = Cov[x0 | x] for an exact denoiser, so unobserved pixels move with the measurement as
  far as the model correlates them. One vector-Jacobian product per call; the most accurate here.
  With σ_y = 0 the range-space part is then replaced by A⁺y as in DDNM (the measurement is exact).

* `dps` (Chung et al. 2023, "Diffusion posterior sampling for general noisy inverse problems",
  Alg. 1): a gradient step on the residual norm, for any differentiable A. DPS steps
  ζ/‖r‖·∇‖r‖² with r = y - A·D; as a score correction, with √m (m = measurements per sample)
  making ζ independent of the measurement size:

      D'(x, σ) = D - ζ·σ²·√m·∇_x ‖y - A·D(x, σ)‖        (per-sample norm, gradient through D).

  For an exact denoiser this is D + ζ·Cov[x0 | x]·Aᵀ·r/rms(r): bounded at every σ. It does not fit
  y exactly (DPS trades fit for sample quality through ζ).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable

import torch
from torch import Tensor

from ..core.precond import expand_sigma
from ..sampling import sample
from ..sampling.noise import Generators, randn
from .image_cond import image_cond_of, lowres_condition
from .operators import Downsample, LinearOperator

__all__ = ["dps", "projection", "solve_inverse_problem", "super_resolve", "upscale_factor", "METHODS", "SR_METHODS"]

METHODS = ("projection", "pigdm", "dps")
SR_METHODS = METHODS + ("model",)  # "model": a low-res-conditioned model ([cond] image = "lowres")


def _sigma_vector(sigma: Tensor | float, x: Tensor) -> Tensor:
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return s.expand(x.shape[0]) if s.ndim == 0 else s.reshape(x.shape[0])


def _check_number(name: str, value: Any, *, positive: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def dps(
    denoiser: Callable[..., Tensor], operator: Callable[[Tensor], Tensor], y: Tensor, *, step_size: float = 3.0
) -> Callable[..., Tensor]:
    """Diffusion posterior sampling as a denoiser: D - ζ·σ²·√m·∇‖y - A·D‖ (module docstring).

    operator: a `LinearOperator` or any differentiable function x -> y. step_size: ζ > 0; larger
    fits y more tightly but over-weights the modes that fit best (ζ ≈ 3 gave the most accurate
    posterior on the Gaussian-mixture oracle; tune per task).
    """
    step_size = _check_number("DPS step_size", step_size, positive=True)
    forward = operator.forward if isinstance(operator, LinearOperator) else operator
    m = math.prod(y.shape[1:])
    checked: list[tuple[int, ...]] = []

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sig = _sigma_vector(sigma, x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = denoiser(xg, sig, **cond)
            pred = forward(d)
            if tuple(x.shape) not in checked:
                if pred.shape != y.shape:
                    raise ValueError(
                        f"measurement y has shape {tuple(y.shape)}, but the operator maps x of shape "
                        f"{tuple(x.shape)} to {tuple(pred.shape)}"
                    )
                checked.append(tuple(x.shape))
            r = (y.to(pred.dtype) - pred).reshape(x.shape[0], -1)
            # sqrt(‖r‖² + tiny): the gradient of the norm stays finite when the fit is exact.
            norm = (r.pow(2).sum(1) + torch.finfo(r.dtype).tiny).sqrt()
            (grad,) = torch.autograd.grad(norm.sum(), xg)  # samples are independent: per-sample gradients
        return d.detach() - (step_size * math.sqrt(m)) * expand_sigma(sig, x) ** 2 * grad

    return guided


def projection(
    denoiser: Callable[..., Tensor],
    operator: LinearOperator,
    y: Tensor,
    *,
    sigma_y: float = 0.0,
    sigma_data: float = 0.5,
    jacobian: bool = False,
) -> Callable[..., Tensor]:
    """Range-space projection as a denoiser (DDNM; noise-aware ΠGDM form); module docstring.

    sigma_y: measurement noise std (0 = exact measurements: A·D' = y).
    sigma_data: data std, for the prior variance r² of x0 | x (matters when sigma_y > 0 or jacobian).
    jacobian: pull the correction back through ∂D/∂x (ΠGDM); needs a differentiable denoiser.
    """
    if not isinstance(operator, LinearOperator):
        raise ValueError(
            "projection needs a LinearOperator (Masking, Downsample, Blur, SparsePoints), got "
            f"{type(operator).__name__}; use dps for other operators"
        )
    sigma_y = _check_number("sigma_y", sigma_y, positive=False)
    sigma_data = _check_number("sigma_data", sigma_data, positive=True)
    checked: list[tuple[int, ...]] = []

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        if tuple(x.shape) not in checked:
            operator.check_measurement(y, x.shape)
            checked.append(tuple(x.shape))
        sig = _sigma_vector(sigma, x)
        r2 = sig**2 * sigma_data**2 / (sig**2 + sigma_data**2)  # (B,)
        if not jacobian:
            d = denoiser(x, sig, **cond)
            residual = y.to(d.dtype) - operator.forward(d)
            if sigma_y == 0:
                return d + operator.pinv(residual)
            return d + expand_sigma(r2, d) * operator.transpose(operator.gram_solve(residual, r2, sigma_y**2))
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = denoiser(xg, sig, **cond)
            pred = operator.forward(d)
            v = operator.gram_solve(y.to(pred.dtype) - pred.detach(), r2, sigma_y**2)  # (r²AAᵀ + σ_y²)⁻¹ r
            (grad,) = torch.autograd.grad((pred * v).sum(), xg)  # (∂D/∂x)ᵀ Aᵀ v, per sample
        out = d.detach() + expand_sigma(sig, x) ** 2 * grad
        if sigma_y == 0:  # exact measurements: E[A·x0 | x, y] = y, so fit the range space exactly
            out = out + operator.pinv(y.to(out.dtype) - operator.forward(out))
        return out

    return guided


def solve_inverse_problem(
    denoiser: Callable[..., Tensor],
    operator: LinearOperator,
    y: Tensor,
    *,
    method: str = "projection",
    step_size: float = 3.0,
    sigma_y: float = 0.0,
    sigma_data: float = 0.5,
    noise: Tensor | None = None,
    solver: str = "ddpm",
    nfe: int | None = None,
    generator: Generators = None,
    **options: Any,
) -> Tensor:
    """Posterior samples x0 ~ p(x0 | y) (approximately) for y = A·x0 + σ_y·n.

    method: 'projection' (DDNM: linear A, no gradient), 'pigdm' (projection through the denoiser's
        Jacobian: linear A, most accurate) - both use sigma_y, sigma_data - or 'dps' (any
        differentiable A, uses step_size).
    noise: the starting noise (B, ...) of x's shape; default drawn from `generator` with the shape
        of A⁺y. nfe: default 100 (or what `sigmas` needs). Other keywords (sigma_min, sigma_max,
        sigmas, callback, solver options, conditioning) go to `sample()`. Any solver works; the
        default 'ddpm' is DPS's sampler, and ancestral solvers gave the most accurate posteriors
        on the Gaussian-mixture oracle for pigdm and dps.
    """
    if method in ("projection", "pigdm"):
        den = projection(denoiser, operator, y, sigma_y=sigma_y, sigma_data=sigma_data, jacobian=method == "pigdm")
    elif method == "dps":
        den = dps(denoiser, operator, y, step_size=step_size)
    else:
        raise ValueError(f"unknown inverse-problem method {method!r}; valid: {', '.join(METHODS)}")
    if noise is None:
        if not isinstance(operator, LinearOperator):
            raise ValueError("pass noise=... (x's shape is not known for a non-linear operator)")
        noise = randn(operator.pinv(y).shape, generator, dtype=y.dtype, device=y.device)
    if nfe is None and options.get("sigmas") is None:
        nfe = 100
    return sample(den, noise, solver=solver, nfe=nfe, generator=generator, **options)


def upscale_factor(low_size: tuple[int, int], resolution: int, trained_factor: int | None = None) -> int:
    """The factor f that takes a (h, w) low-res image to the model's resolution x resolution, or a
    ValueError naming the size and what is valid: the image must be square with a side that divides
    the resolution at least twice; `trained_factor` (a low-res-conditioned run's) must equal f."""
    h, w = low_size
    r = resolution
    if h != w or r % h or r // h < 2:
        raise ValueError(f"image is {w}x{h}; the model was trained at {r}x{r}, so the low-res image must be square "
                         f"with a side that divides {r} at least twice (e.g. {r // 2}x{r // 2})")
    if trained_factor is not None and r // h != trained_factor:
        f = trained_factor
        raise ValueError(f"image is {w}x{h}, but this run upscales by its lowres_factor {f}: give a {r // f}x{r // f} image")
    return r // h


def super_resolve(
    denoiser: Callable[..., Tensor],
    low_res: Tensor,
    factor: int,
    *,
    method: str | None = None,
    **kwargs: Any,
) -> Tensor:
    """Super-resolution: x (B, C, f·h, f·w) given `low_res` (B, C, h, w), its f×f block averages.

    method: "model" samples a low-res-conditioned model (a run trained with `[cond] image =
        "lowres"` and `lowres_factor = factor`): one `sample()` pass with image_cond = the
        nearest-upsampled low_res. "projection" (exact block means), "pigdm" and "dps" are the
        zero-shot methods of `solve_inverse_problem` with Downsample(f) for a model without an image
        condition. None (default): "model" for a denoiser tagged as low-res-conditioned
        (`Run.denoiser` of such a run), else "projection".
    kwargs: as `solve_inverse_problem` (zero-shot); for "model": solver (default "ddpm"), nfe,
        sigma_min, sigma_max, sigmas, noise, generator, callback, solver options and conditioning.
    """
    if not isinstance(low_res, Tensor) or low_res.ndim < 3 or not low_res.is_floating_point():
        got = getattr(low_res, "shape", type(low_res).__name__)
        raise ValueError(f"low_res must be a float tensor (B, C, h, w), got {got}")
    kind, trained_factor = image_cond_of(denoiser)
    if method is None:
        method = "model" if kind == "lowres" else "projection"
    if method not in SR_METHODS:
        raise ValueError(f"unknown super-resolution method {method!r}; valid: {', '.join(SR_METHODS)}")
    if "image_cond" in kwargs:
        raise ValueError("super_resolve builds image_cond from low_res itself; do not pass image_cond=")
    if method != "model":
        if kind in ("mask", "lowres"):
            raise ValueError(f"zero-shot method {method!r} needs a denoiser without an image condition, but this one is "
                             f"{kind}-conditioned" + ("; use method='model'" if kind == "lowres" else ""))
        return solve_inverse_problem(denoiser, Downsample(factor), low_res, method=method, **kwargs)
    if kind in ("", "mask"):
        what = "no image condition" if kind == "" else "a mask condition (an inpainting model)"
        raise ValueError(f"super-resolution method 'model' needs a low-res-conditioned denoiser (a run trained with "
                         f"[cond] image = 'lowres'); this one has {what}: use a zero-shot method ({', '.join(METHODS)})")
    if trained_factor and factor != trained_factor:
        h, w = low_res.shape[-2:]
        raise ValueError(f"this low-res model was trained for factor {trained_factor} ({h * trained_factor}x{w * trained_factor} "
                         f"from {h}x{w}) but factor {factor} was asked; give a low-res image 1/{trained_factor} of the "
                         "model's size or use a zero-shot method")
    for key, default in (("sigma_y", 0.0), ("step_size", None)):
        if kwargs.get(key, default) != default:
            raise ValueError(f"{key}={kwargs[key]!r} applies to the zero-shot methods only, not to method 'model'")
        kwargs.pop(key, None)
    kwargs.pop("sigma_data", None)  # zero-shot only; harmless here
    image_cond = lowres_condition(low_res, factor)
    noise = kwargs.pop("noise", None)
    generator = kwargs.get("generator")
    if noise is None:
        noise = randn(image_cond.shape, generator, dtype=low_res.dtype, device=low_res.device)
    kwargs.setdefault("solver", "ddpm")
    with torch.no_grad():
        return sample(denoiser, noise, image_cond=image_cond, **kwargs)
