"""The image modality: (C, H, W) with C = 1 (gray) or 3 (RGB), stored as 8-bit PNG.

Files are written at the display scale (default `IMAGE_DISPLAY_SCALE` = 4: each pixel becomes a 4x4
block) and read at either size: the native (H, W), or exactly (scale*H, scale*W), which is reduced
by the mean of each scale x scale block. For a file we wrote, every block holds one value, so the
mean returns the written image exactly (computed in float64, where a sum of up to 4096 equal
float32 values is exact). Any other size is refused with an error naming both valid sizes.

PNG holds 8 bits per channel: values on the grid k/127.5 - 1 (k = 0..255) round-trip bitwise;
others come back rounded to that grid (error <= 1/255); values outside [-1, 1] are clamped.
Masks are 1-channel images read the same way (`read_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..io.images import make_grid, save_image
from ..io.readers import read_image
from .base import Modality, check_nrow, check_scale, to_float_cpu

__all__ = ["ImageModality", "IMAGE_DISPLAY_SCALE"]

IMAGE_DISPLAY_SCALE = 4


class ImageModality(Modality):
    name = "image"
    ranks = (2,)
    file_ext = ".png"
    display_scale = IMAGE_DISPLAY_SCALE
    eval_features = "classifier"

    def shape_doc(self) -> str:
        return "(C, H, W) with C = 1 (gray) or 3 (RGB)"

    def _check_channels(self, shape: tuple[int, ...]) -> None:
        if shape[0] not in (1, 3):
            raise ValueError(f"image sample shape {shape} is not valid: expected {self.shape_doc()}")

    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        self.check_sample(x)
        s = check_scale(scale, self.display_scale)
        return save_image(x, self.check_path(path), scale=s)

    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None) -> Tensor:
        self.check_shape(shape)
        c, h, w = (int(v) for v in shape)
        s = check_scale(scale, self.display_scale)
        x = read_image(path, c)  # (C, h', w') in [-1, 1]; DataError if unreadable
        got_h, got_w = x.shape[-2:]
        if (got_h, got_w) == (h, w):
            return x
        if s > 1 and (got_h, got_w) == (s * h, s * w):
            # block mean (float64: exact for constant blocks) inverts nearest-neighbour upscaling
            return F.avg_pool2d(x.to(torch.float64)[None], s)[0].to(torch.float32)
        sizes = f"{w}x{h} (native)" + (f" or {s * w}x{s * h} (display scale {s})" if s > 1 else "")
        raise ValueError(f"image {str(path)!r} is {got_w}x{got_h}; valid sizes: {sizes}")

    def read_mask(self, path: str | Path, spatial: Sequence[int], *, scale: int | None = None) -> Tensor:
        """A 1-channel mask of size `spatial` = (H, W), native or display size -> (1, H, W) float32 in [-1, 1]
        (white = +1). What the mask means (which side is "known") is the caller's convention."""
        spatial = tuple(int(v) for v in spatial)
        if len(spatial) != 2:
            raise ValueError(f"mask size must be (H, W), got {spatial}")
        return self.read(path, (1, *spatial), scale=scale)

    def preview_image(self, x: Tensor, *, nrow: int, scale: int | None = None) -> Tensor:
        """Grid of the batch (1-px dark gutters, `nrow` per row), enlarged by the display scale; gray -> RGB."""
        self.check_batch(x)
        s = check_scale(scale, self.display_scale)
        grid = make_grid(to_float_cpu(x), check_nrow(nrow))  # (C, H', W') in [-1, 1]
        grid = torch.nan_to_num(grid, nan=0.0).clamp(-1.0, 1.0)
        if grid.shape[0] == 1:
            grid = grid.expand(3, -1, -1)
        if s > 1:
            grid = grid.repeat_interleave(s, dim=1).repeat_interleave(s, dim=2)
        return ((grid + 1.0) / 2.0).contiguous()  # (3, H, W) in [0, 1]
