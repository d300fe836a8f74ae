"""Concatenation conditioning on an image built from x0 (`[cond] image = "mask" | "lowres"`).

The network reads the condition concatenated to its input (`cond_channels` of the net config):
SR3-style super-resolution (Saharia et al. 2021) and Palette-style inpainting (Saharia et al.
2022). The format is `noisecraft.tasks.image_cond`'s, the one the inference tasks build from a
user's input, so training and inference cannot disagree:

    "mask"    keep = 1 outside 1..mask_boxes random boxes, each side uniform in
              [mask_min, mask_max]·side at a uniform position  ->  image_cond = [x0·keep, keep]
    "lowres"  y = f×f block average of x0 (f = lowres_factor)  ->  image_cond = nearest-upsampled y

Masks are drawn from each sample's generator (keyed by the step and its position), so bitwise
resume holds and the draw does not depend on the process count. The condition is never dropped (it is not guided): guidance applies to the other
conditions of the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..tasks.image_cond import image_cond_channels, lowres_condition, mask_condition
from ..core import rng
from ..tasks.operators import Downsample
from .base import Batch, ConditionError, Conditioner

__all__ = ["ImageCondition", "random_box_masks"]

PREVIEW_SEED = 0x9C0D  # previews draw their masks from a generator of their own, never the trainer's


def random_box_masks(n: int, height: int, width: int, *, boxes: int, side_min: float, side_max: float,
                     generator: rng.Generators) -> Tensor:
    """keep masks (n, 1, H, W), 1 = known, 0 inside the union of 1..boxes random boxes (`generator`:
    one, or one per mask)."""
    k = boxes

    def sides(size: int) -> tuple[int, int]:
        lo = max(1, round(side_min * size))
        return lo, max(lo, min(size, round(side_max * size)))

    (lo_h, hi_h), (lo_w, hi_w) = sides(height), sides(width)
    dev = rng.generator_device(generator) or torch.device("cpu")
    bh = rng.randint(generator, lo_h, hi_h + 1, n, k)  # (n, k) box heights
    bw = rng.randint(generator, lo_w, hi_w + 1, n, k)
    top = (rng.rand(generator, n, k) * (height - bh + 1)).floor().long()  # uniform in 0..H-h
    left = (rng.rand(generator, n, k) * (width - bw + 1)).floor().long()
    count = rng.randint(generator, 1, k + 1, n)  # boxes used per image
    rows = torch.arange(height, device=dev)[None, None, :]  # (1, 1, H)
    cols = torch.arange(width, device=dev)[None, None, :]
    in_rows = (rows >= top[..., None]) & (rows < (top + bh)[..., None])  # (n, k, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + bw)[..., None])  # (n, k, W)
    used = torch.arange(k, device=dev)[None, :] < count[:, None]  # (n, k)
    unknown = (in_rows[..., :, None] & in_cols[..., None, :] & used[..., None, None]).any(dim=1)  # (n, H, W)
    return (~unknown).float()[:, None]


class ImageCondition(Conditioner):
    key = "image_cond"
    kind = "image"
    guided = False

    def __init__(self, image: str, channels: int, *, lowres_factor: int = 2, mask_min: float = 0.25,
                 mask_max: float = 0.75, mask_boxes: int = 1) -> None:
        if image not in ("mask", "lowres"):
            raise ValueError(f"image condition {image!r} is not valid; valid: 'mask', 'lowres'")
        self.image, self.channels = image, int(channels)
        self.lowres_factor, self.mask_min, self.mask_max, self.mask_boxes = lowres_factor, mask_min, mask_max, mask_boxes

    @property
    def cond_channels(self) -> int:
        return image_cond_channels(self.image, self.channels)

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "image": self.image, "channels": self.channels, "lowres_factor": self.lowres_factor,
                "mask_min": self.mask_min, "mask_max": self.mask_max, "mask_boxes": self.mask_boxes}

    def net_overrides(self) -> dict[str, Any]:
        return {"cond_channels": self.cond_channels}

    def build(self, x0: Tensor, generator: rng.Generators) -> Tensor:
        """The condition of a batch x0 (B, C, H, W), on x0's device."""
        if self.image == "mask":
            keep = random_box_masks(x0.shape[0], x0.shape[-2], x0.shape[-1], boxes=self.mask_boxes,
                                    side_min=self.mask_min, side_max=self.mask_max, generator=generator)
            return mask_condition(x0, keep.to(x0.device, x0.dtype))
        return lowres_condition(Downsample(self.lowres_factor)(x0), self.lowres_factor)

    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator, device) -> dict[str, Tensor]:
        return {"image_cond": self.build(batch.x0, generator)}

    def prepare(self, value: Any, n: int) -> Tensor:
        if value is None:
            return self.default_value(n)
        if not isinstance(value, Tensor) or value.ndim < 3 or value.shape[-3 if value.ndim == 3 else 1] != self.cond_channels:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ConditionError(f"image_cond must be a tensor (n, {self.cond_channels}, H, W) for this {self.image}-"
                                 f"conditioned model (build it with noisecraft.tasks.{self.image}_condition), got {got}")
        value = value.unsqueeze(0) if value.ndim == 3 else value
        if value.shape[0] == 1:
            value = value.expand(n, *value.shape[1:])
        if value.shape[0] != n:
            raise ConditionError(f"image_cond has {value.shape[0]} rows for {n} samples; give one for all or one per sample")
        return value

    def default_value(self, n: int) -> Tensor:
        use = ("noisecraft inpaint RUN --image ... --mask ..." if self.image == "mask"
               else "noisecraft upscale RUN --image ...")
        raise ConditionError(f"a {self.image}-conditioned model ([cond] image = {self.image!r}) needs a condition "
                             f"image to draw from; use `{use}` (or tasks.inpaint / super_resolve)")

    def sample_inputs(self, net: nn.Module, values: Tensor, device) -> dict[str, Tensor]:
        return {"image_cond": values.to(device)}

    def preview_values(self, dataset: Any, idx: Tensor) -> Tensor:
        gen = torch.Generator().manual_seed(PREVIEW_SEED)
        return self.build(dataset.data[idx], gen)

    def preview_rows(self, values: Tensor) -> Tensor:
        """What the model was given: the masked image (unknown pixels 0, mid-gray), or the upsampled low-res image."""
        if self.image == "mask":
            return values[:, :-1] * values[:, -1:]
        return values
