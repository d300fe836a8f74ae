"""Inpainting: by resampling (RePaint, Lugmayr et al. 2022) with any denoiser, or in one sampler
pass with a mask-conditioned model (`[cond] image = "mask"`, Palette-style, Saharia et al. 2022).

Each step from σ to σ' (Alg. 1 of the paper, in σ-space):

    known   = image + σ'·z'                                   the observation, forward-noised to σ'
    unknown = D + (σ_down/σ)·(x - D) + σ_up·z                 the ancestral step of `sampling.stochastic`
    x'      = mask·known + (1 - mask)·unknown                 mask = 1 on KNOWN pixels

The two halves are noised independently, so they disagree about the content; RePaint harmonizes
them by "resampling": after every `jump` steps it re-noises x back up those steps
(x ← x + sqrt(σ_hi² - σ_lo²)·z, the forward process) and denoises them again, `resample_steps`
times in all. The last step lands at σ = 0, where the known half is the image itself: known
pixels of the result equal the observation exactly.

A mask-conditioned model was trained on D(x, σ, image_cond=[x0·keep, keep]) with random boxes
`keep`, so it is itself a denoiser of p(x0 | known pixels): `method="model"` just samples it with
any solver (nfe calls, no resampling) and pastes the known pixels into the result.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..sampling import default_sigmas, sample
from ..sampling.api import check_sigmas
from ..sampling.deterministic import euler, report
from ..sampling.noise import Generators, NoiseSource
from ..sampling.registry import DEFAULT_OPTIONS, get_solver
from ..sampling.stochastic import ancestral, ancestral_step
from .image_cond import image_cond_of, mask_condition

__all__ = ["inpaint", "repaint_walk", "check_mask", "INPAINT_SOLVERS", "INPAINT_METHODS"]

INPAINT_METHODS = ("auto", "repaint", "model")

# Solvers whose update is the ancestral step (η from the registry entry; Euler/DDIM are η = 0).
INPAINT_SOLVERS = ("ddpm", "euler_ancestral", "ddim_eta", "ddim", "euler")


def repaint_walk(num_steps: int, resample_steps: int = 1, jump: int = 1) -> list[tuple[int, int]]:
    """The RePaint time-travel schedule as moves between schedule indices (0 = σ_max, num_steps =
    the end). (i, i+1) is a denoising step; (hi, lo) with hi > lo re-noises back up to sigmas[lo].
    Blocks of `jump` steps are denoised `resample_steps` times, re-noised in between."""
    for name, v in (("num_steps", num_steps), ("resample_steps", resample_steps), ("jump", jump)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    moves: list[tuple[int, int]] = []
    start = 0
    while start < num_steps:
        end = min(start + jump, num_steps)
        for r in range(resample_steps):
            moves.extend((i, i + 1) for i in range(start, end))
            if r < resample_steps - 1:
                moves.append((end, start))
        start = end
    return moves


def check_mask(mask: Tensor, image: Tensor) -> Tensor:
    """A 0/1 bool mask broadcastable to `image`, or a ValueError naming the shapes.

    Valid: the image's shape (B, C, ...); one mask for all channels (B, 1, ...); one mask for the
    whole batch (C, ...) or (1, ...)."""
    if not isinstance(image, Tensor) or image.ndim < 2 or not image.is_floating_point():
        raise ValueError(f"image must be a float tensor (B, C, ...), got {getattr(image, 'shape', type(image).__name__)}")
    if not isinstance(mask, Tensor):
        raise ValueError(f"mask must be a tensor, got {type(mask).__name__}")
    full = mask.unsqueeze(0) if mask.ndim == image.ndim - 1 else mask
    valid = f"{tuple(image.shape)}, {(image.shape[0], 1) + tuple(image.shape[2:])} or {tuple(image.shape[1:])}"
    if full.ndim != image.ndim or tuple(full.shape[2:]) != tuple(image.shape[2:]) or full.shape[0] not in (1, image.shape[0]):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match image shape {tuple(image.shape)}; valid mask shapes: {valid}"
        )
    if full.shape[1] not in (1, image.shape[1]):
        raise ValueError(
            f"mask has {full.shape[1]} channels but the image has {image.shape[1]}; valid: 1 (shared) or {image.shape[1]}"
        )
    values = torch.unique(full)
    if not bool(((values == 0) | (values == 1)).all()):
        raise ValueError(f"mask must contain only 0 (unknown) and 1 (known), got values {values.tolist()[:8]}")
    return full.to(device=image.device).bool()


def _solver_eta(solver: str, eta: float | None) -> float:
    info = get_solver(solver)
    if solver not in INPAINT_SOLVERS:
        raise ValueError(
            f"inpaint steps with the ancestral update; solver must be one of {', '.join(INPAINT_SOLVERS)}, got {solver!r}"
        )
    if info.function is euler:
        if eta not in (None, 0, 0.0):
            raise ValueError(f"solver {solver!r} is deterministic (eta = 0), got eta={eta}; use 'ddim_eta' for eta > 0")
        return 0.0
    assert info.function is ancestral
    fixed = info.fixed_options.get("eta")
    if fixed is not None:
        if eta is not None and eta != fixed:
            raise ValueError(f"solver {solver!r} fixes eta={fixed}; got eta={eta} (use 'ddim_eta')")
        return float(fixed)
    eta = DEFAULT_OPTIONS.get(solver, {}).get("eta", 1.0) if eta is None else eta
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    return float(eta)


def _inpaint_method(denoiser: Callable[..., Tensor], method: str) -> str:
    """'repaint' or 'model' for `method`, or a ValueError when the denoiser cannot run it."""
    if method not in INPAINT_METHODS:
        raise ValueError(f"unknown inpaint method {method!r}; valid: {', '.join(INPAINT_METHODS)}")
    kind, _ = image_cond_of(denoiser)
    if method == "auto":
        return "model" if kind == "mask" else "repaint"
    if method == "model" and kind in ("", "lowres"):
        what = "no image condition" if kind == "" else "a low-res condition (a super-resolution model)"
        raise ValueError(f"inpaint method 'model' needs a mask-conditioned denoiser (a run trained with [cond] image = "
                         f"'mask'); this one has {what}: use method='repaint'")
    if method == "repaint" and kind in ("mask", "lowres"):
        raise ValueError(f"RePaint needs a denoiser without an image condition, but this one is {kind}-conditioned; "
                         + ("use method='model' (or 'auto')" if kind == "mask" else "inpaint with another model"))
    return method


def inpaint(
    denoiser: Callable[..., Tensor],
    image: Tensor,
    mask: Tensor,
    *,
    method: str = "auto",
    solver: str = "ddpm",
    nfe: int = 50,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    sigmas: Tensor | list[float] | None = None,
    resample_steps: int | None = None,
    jump: int | None = None,
    eta: float | None = None,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    **cond: Any,
) -> Tensor:
    """Fill the pixels where mask == 0 given `image` where mask == 1.

    image: (B, C, ...) in the model's data range (values under mask == 0 are ignored).
    mask: 1 = known, 0 = to generate; shapes as `check_mask` (a mask-conditioned model needs one
        mask for all channels).
    method: "repaint" (resampling; any model without an image condition), "model" (one sampler
        pass of a mask-conditioned model), or "auto": "model" for a denoiser tagged as
        mask-conditioned (`Run.denoiser` of a run trained with `[cond] image = "mask"`), else "repaint".
    solver: RePaint: one of INPAINT_SOLVERS; it sets η and, with nfe/sigma_min/sigma_max, the
        schedule as `sample()` would (`sigmas` overrides). The denoiser is called about
        nfe·resample_steps times (`len(repaint_walk(...))` minus the re-noise moves).
        "model": any solver of `sample()`, nfe calls.
    resample_steps: U, how often each block is denoised (RePaint only; default 5, 1 = plain replacement).
    jump: j, the length of the blocks re-noised together (RePaint only; default 1; the paper uses
        j = 10, U = 10 on 250 steps).
    generator: a torch.Generator or one per sample (per-sample reproducibility as in `sample()`).
    cond: conditioning passed to the denoiser (e.g. class_labels).
    """
    known = check_mask(mask, image)
    method = _inpaint_method(denoiser, method)
    if "image_cond" in cond:
        raise ValueError("inpaint builds image_cond from the image and the mask itself; do not pass image_cond=")
    if method == "model":
        if resample_steps not in (None, 1) or jump not in (None, 1):
            raise ValueError(f"resample_steps={resample_steps} and jump={jump} apply to method 'repaint' only; "
                             "a mask-conditioned model samples in one pass (leave them unset)")
        return _inpaint_with_model(denoiser, image, known, solver=solver, nfe=nfe, sigma_min=sigma_min,
                                   sigma_max=sigma_max, sigmas=sigmas, eta=eta, generator=generator,
                                   callback=callback, cond=cond)
    resample_steps = 5 if resample_steps is None else resample_steps
    jump = 1 if jump is None else jump
    eta = _solver_eta(solver, eta)
    sig = check_sigmas(sigmas) if sigmas is not None else default_sigmas(solver, nfe, sigma_min, sigma_max).tolist()
    if sig[-1] != 0:
        raise ValueError(f"inpaint needs a schedule that ends in 0 (a clean result), got sigmas[-1]={sig[-1]}")
    noise = NoiseSource(generator)
    b = image.shape[0]

    def den(x: Tensor, s: float) -> Tensor:
        return denoiser(x, torch.full((b,), s, dtype=x.dtype, device=x.device), **cond)

    with torch.no_grad():
        x = sig[0] * noise(image)
        for i, (a, c) in enumerate(repaint_walk(len(sig) - 1, resample_steps, jump)):
            s, s_next = sig[a], sig[c]
            if s_next > s:  # re-noise back up: the forward process from σ to σ'
                x = x + math.sqrt(s_next**2 - s**2) * noise(x)
                continue
            d = den(x, s)
            unknown = ancestral_step(x, d, s, s_next, eta, noise)
            observed = image + s_next * noise(image) if s_next > 0 else image
            x = torch.where(known, observed.to(x.dtype), unknown)
            report(callback, i, x, s, s_next, d)
    return x


def _inpaint_with_model(denoiser: Callable[..., Tensor], image: Tensor, known: Tensor, *, solver: str, nfe: int,
                        sigma_min: float, sigma_max: float, sigmas: Tensor | list[float] | None, eta: float | None,
                        generator: Generators, callback: Callable[[dict], None] | None, cond: dict[str, Any]) -> Tensor:
    """One `sample()` pass of a mask-conditioned denoiser, then the known pixels pasted in exactly."""
    if known.shape[1] > 1:
        if not bool((known == known[:, :1]).all()):
            raise ValueError(f"a mask-conditioned model takes one mask for all channels; the mask of shape "
                             f"{tuple(known.shape)} differs between channels (give a (B, 1, H, W) mask)")
        known = known[:, :1]
    keep = known.expand(image.shape[0], 1, *image.shape[2:])
    options: dict[str, Any] = {} if eta is None else {"eta": eta}
    noise = NoiseSource(generator)(image)
    with torch.no_grad():
        x = sample(denoiser, noise, solver=solver, nfe=nfe, sigma_min=sigma_min, sigma_max=sigma_max, sigmas=sigmas,
                   generator=generator, callback=callback, image_cond=mask_condition(image, keep), **options, **cond)
    return torch.where(known, image.to(x.dtype), x)
