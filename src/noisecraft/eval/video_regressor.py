"""The deterministic baseline of video prediction: the same network trained with MSE as a regressor.

Issue 13's third prediction baseline. A frames-conditioned run's denoiser D(x; σ, image_cond) is
trained not as a denoiser but as a plain regressor of the clip from its condition
image_cond = [x0·keep, keep] (the same frame masks, network, optimizer, steps and batch as the
diffusion run): its input x is fixed to 0 and σ to `REGRESSOR_SIGMA`, so with EDM preconditioning
(Karras et al. 2022) D(0; σ) = c_out(σ)·F(0, c_noise(σ), image_cond), a deterministic function of the
given frames. The loss is the mean squared error over the frames not given, so the optimum is the
conditional mean E[x0 | given frames] — the blurry average that PSNR rewards and that best-of-K
sampling has to beat.

    train_regressor(load_config("moving-digits-predict"), "runs/mdp-reg")   # noisecraft.train.regressor: a run folder
    pred = regress(Run.open("runs/mdp-reg").denoiser("ema"), clips, known)            # kept frames exact
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..tasks.image_cond import mask_condition
from ..tasks.inpaint import check_mask

__all__ = ["REGRESSOR_SIGMA", "RegressorLoss", "regress"]

REGRESSOR_SIGMA = 80.0  # the fixed noise level the regressor is called at (the default σ_max)


def _regress(denoiser: Any, image_cond: Tensor, shape: torch.Size) -> Tensor:
    x = torch.zeros(shape, dtype=image_cond.dtype, device=image_cond.device)
    sigma = torch.full((shape[0],), REGRESSOR_SIGMA, dtype=image_cond.dtype, device=image_cond.device)
    return denoiser(x, sigma, image_cond=image_cond)


class RegressorLoss:
    """`(denoiser, x0, generator=, image_cond=) -> loss`: mean squared error of D(0; REGRESSOR_SIGMA,
    image_cond) against x0 over the pixels of the frames not given (all of them when none is)."""

    def __call__(self, denoiser: Any, x0: Tensor, generator: Any = None, *, image_cond: Tensor | None = None,
                 **cond: Any) -> Tensor:
        if image_cond is None or cond:
            raise ValueError("the regressor baseline needs exactly one condition, image_cond = [x0·keep, keep] "
                             "(a run with [cond] image = 'frames' or 'mask' and no other condition)")
        unknown = 1.0 - image_cond[:, -1:]  # (B, 1, *spatial)
        err = (_regress(denoiser, image_cond, x0.shape) - x0).pow(2) * unknown
        return err.sum() / (unknown.sum() * x0.shape[1]).clamp_min(1.0)


def regress(denoiser: Any, clips: Tensor, known: Tensor) -> Tensor:
    """The regressor's prediction of `clips` (B, C, ...) from the pixels where `known` (1, ...) or
    (B, 1, ...) is 1; the known pixels are returned exactly."""
    keep = check_mask(known, clips)
    if keep.shape[1] != 1:
        raise ValueError(f"the regressor takes one mask for all channels, (B, 1, ...), got {tuple(known.shape)}")
    keep = keep.expand(clips.shape[0], 1, *clips.shape[2:])
    with torch.no_grad():
        out = _regress(denoiser, mask_condition(clips, keep), clips.shape)
    return torch.where(keep, clips, out.to(clips.dtype))
