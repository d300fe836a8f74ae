"""Inpainting with a latent diffusion model: RePaint (Lugmayr et al. 2022) on the latent grid, then
the known pixels pasted back in pixel space.

    x = latent_inpaint(ae, denoiser, image, known, nfe=50, resample_steps=5, generator=gens)

1. The known image is encoded (unknown pixels set to 0, mid-gray, first, so what was there does not
   leak in): z_img = ae.encode(image · known).
2. The pixel mask is reduced to the latent grid: a latent cell is known iff every pixel of its f x f
   block (in every channel) is known (`latent_known_mask`); cells touching the unknown region are generated.
3. `tasks.inpaint` runs RePaint on the latents: at every step the known cells are replaced by z_img
   forward-noised to the step's σ, and at σ = 0 by z_img itself.
4. The result is decoded, and every pixel the mask marks as known is replaced by the input pixel:
   `torch.where(known, image, decoded)`. So known pixels are returned exactly (bitwise); the decoder
   shapes only the unknown region and its seam.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..tasks.inpaint import check_mask, inpaint
from .autoencoder import Autoencoder

__all__ = ["latent_known_mask", "latent_inpaint"]


def latent_known_mask(known: Tensor, factor: int) -> Tensor:
    """Bool known-pixel mask (B, C|1, H, W) -> (B, 1, H/f, W/f): True where the whole f x f block is known."""
    k = known.to(torch.float32).amin(dim=1, keepdim=True)  # known in every channel
    return (-F.max_pool2d(-k, factor)) > 0.5  # min-pool over each block


def latent_inpaint(ae: Autoencoder, denoiser: Callable[..., Tensor], image: Tensor, mask: Tensor, *,
                   method: str = "repaint", **kwargs: Any) -> Tensor:
    """Fill the pixels where mask == 0 with a latent model; pixels where mask == 1 are returned exactly.

    image: (B, C, H, W) in [-1, 1] of the autoencoder's data shape; mask: 1 = known, shapes as
    `tasks.inpaint.check_mask`. kwargs go to `tasks.inpaint` (solver, nfe, resample_steps, jump,
    eta, generator, callback, conditions such as class_labels or context)."""
    if method not in ("repaint", "auto"):
        raise ValueError(f"latent inpainting uses RePaint in latent space; method must be 'repaint' (or 'auto'), got {method!r}")
    known = check_mask(mask, image)  # (B|1, C|1, H, W) bool
    ae.check_data_shape(tuple(image.shape[1:]), "the image")
    z_img = ae.encode(torch.where(known, image, torch.zeros_like(image)))  # (B, c, h, w)
    z_known = latent_known_mask(known.expand(image.shape[0], *known.shape[1:]), ae.config.downsample)
    z = inpaint(denoiser, z_img, z_known.to(z_img.dtype), method="repaint", **kwargs)
    x = ae.decode(z)
    return torch.where(known, image.to(x.dtype), x)
