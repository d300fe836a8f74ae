"""The image conditions of concatenation-conditioned models, shared by training and the tasks.

A model trained with `[cond] image = "mask"`, `"frames"` or `"lowres"` reads an extra image `image_cond`
concatenated to its input x along the channels (SR3, Saharia et al. 2021; Palette, Saharia et al.
2022). The trainer builds the condition from x0 and the tasks from the user's input with the same
functions below, so the two can never disagree about the format:

    "mask"    mask_condition(image, known)   = [image·keep, keep]       (B, C + 1, H, W), keep = 1 on known pixels
    "frames"  mask_condition(clip, known)    = [clip·keep, keep]        (B, C + 1, T, H, W), keep = 1 on kept frames
    "lowres"  lowres_condition(low_res, f)   = nearest-upsampled low_res (B, C, f·h, f·w)

The low-res image is the f×f block average of the full image (`operators.Downsample(f)`, the
measurement of zero-shot `super_resolve`), and nearest upsampling is that operator's
pseudo-inverse A⁺, so a low-res model and the zero-shot methods see the same measurement.

"mask" and "frames" (MASK_CONDS) share the format, so the tasks treat them alike: a frames model is
a mask model whose training masks were whole frames of a clip (MCVD, Voleti et al. 2022).
`image_cond_of(denoiser)` says which condition a denoiser needs, from its network's
`cond_channels` (or a class that declares `image_cond`); None when it cannot be told; it names
either mask-form kind "mask" (the channel count cannot tell them apart).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .operators import Downsample

__all__ = ["IMAGE_CONDS", "MASK_CONDS", "mask_condition", "lowres_condition", "image_cond_of", "image_cond_channels"]

IMAGE_CONDS = ("", "mask", "lowres", "frames", "previous", "points")
MASK_CONDS = ("mask", "frames", "points")  # the kinds whose condition is [x0·keep, keep]


def image_cond_channels(kind: str, channels: int) -> int:
    """Channels of the condition for signals of `channels` channels: mask / frames / points C + 1, lowres /
    previous C, none 0."""
    if kind not in IMAGE_CONDS:
        raise ValueError(f"unknown image condition {kind!r}; valid: {', '.join(repr(k) for k in IMAGE_CONDS)}")
    return {"": 0, "mask": channels + 1, "frames": channels + 1, "points": channels + 1, "lowres": channels,
            "previous": channels}[kind]


def mask_condition(image: Tensor, keep: Tensor) -> Tensor:
    """[image·keep, keep]: (B, C + 1, *spatial) from image (B, C, *spatial) (an image (B, C, H, W) or a
    clip (B, C, T, H, W)) and keep (B, 1, *spatial) or (1, *spatial), 1 = known. The unknown pixels of
    `image` never reach the network (they are zeroed)."""
    if not isinstance(image, Tensor) or image.ndim not in (4, 5) or not image.is_floating_point():
        raise ValueError(f"image must be a float tensor (B, C, H, W) or a clip (B, C, T, H, W), "
                         f"got {getattr(image, 'shape', type(image).__name__)}")
    keep = keep.unsqueeze(0) if keep.ndim == image.ndim - 1 else keep
    if keep.ndim != image.ndim or keep.shape[1] != 1 or keep.shape[2:] != image.shape[2:] or keep.shape[0] not in (1, image.shape[0]):
        want = (image.shape[0], 1) + tuple(image.shape[2:])
        axes = "(B, 1, H, W)" if image.ndim == 4 else "(B, 1, T, H, W)"
        raise ValueError(f"the mask of a mask-conditioned model must have shape {axes} = "
                         f"({', '.join(map(str, want))}) (one mask for all channels), got {tuple(keep.shape)}")
    keep = keep.to(image.dtype).expand(image.shape[0], 1, *image.shape[2:])
    return torch.cat([image * keep, keep], dim=1)


def lowres_condition(low_res: Tensor, factor: int) -> Tensor:
    """Nearest-upsampled low_res (B, C, h, w) -> (B, C, f·h, f·w): the net's input-size condition."""
    if not isinstance(low_res, Tensor) or low_res.ndim != 4 or not low_res.is_floating_point():
        got = getattr(low_res, "shape", type(low_res).__name__)
        raise ValueError(f"low_res must be a float tensor (B, C, h, w), got {got}")
    return Downsample(factor).pinv(low_res)


def image_cond_of(denoiser: Any) -> tuple[str | None, int]:
    """(kind, lowres_factor) of the condition `denoiser` needs: kind "" (none), "mask", "lowres",
    or None when it cannot be told (a plain function); lowres_factor is 0 when unknown.

    A denoiser class may declare its condition (class attributes `image_cond` and
    `lowres_factor`, as the test oracles do); otherwise it is read from the network a `Precond`
    wraps: `cond_channels` = 0 none, = in_channels + 1 a mask, = in_channels a low-res image.
    """
    kind = getattr(type(denoiser), "image_cond", None)
    if isinstance(kind, str):
        return kind, int(getattr(type(denoiser), "lowres_factor", 0) or 0) if kind == "lowres" else 0
    net = getattr(denoiser, "net", None)
    cfg = getattr(net, "cfg", None) or getattr(getattr(net, "net", None), "cfg", None)  # a text run wraps the net
    cond, channels = getattr(cfg, "cond_channels", None), getattr(cfg, "in_channels", None)
    if cond is None:
        return None, 0
    if cond == 0:
        return "", 0
    if channels is not None and cond == channels + 1:
        return "mask", 0
    if channels is not None and cond == channels:
        return "lowres", 0
    return None, 0
