"""Image writers: tensors in [-1, 1] -> PNG/JPEG/WebP files, grids and GIF animations.

Values map linearly [-1, 1] -> [0, 255] (clamped, rounded; NaN becomes 0 = mid gray). Tensors are
(C, H, W) with C = 1 (grayscale), 3 (RGB) or 4 (RGBA). `scale` enlarges by an integer factor with
nearest-neighbour repetition, so tiny samples (8x8 digits) stay crisp and viewable.

Every write is atomic (`noisecraft.io.files.atomic_write`): the file is written to a hidden temp file
in the target folder and moved into place with `os.replace`, so a reader (or a crash) never sees a
half-written image. Missing parent folders are created.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .files import _UMASK, atomic_write  # noqa: F401 - _UMASK re-exported for tests

__all__ = ["to_uint8", "save_image", "make_grid", "save_grid", "save_gif"]

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_uint8(x: Tensor) -> np.ndarray:
    """[-1, 1] tensor (..., C, H, W) -> uint8 array (..., H, W, C), channels last as image libraries expect."""
    if x.ndim < 3:
        raise ValueError(f"expected a tensor (..., C, H, W), got shape {tuple(x.shape)}")
    x = torch.nan_to_num(x.detach().to("cpu", torch.float32), nan=0.0)
    u8 = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return u8.movedim(-3, -1).numpy()


def _upscale(arr: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, C) -> (H*scale, W*scale, C) by pixel repetition."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    return arr if scale == 1 else np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)


def _to_pil(x: Tensor, scale: int) -> Image.Image:
    if x.ndim != 3 or x.shape[0] not in _MODES:
        raise ValueError(f"expected an image tensor (C, H, W) with C in 1, 3, 4; got shape {tuple(x.shape)}")
    arr = _upscale(to_uint8(x), scale)
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr))  # L, RGB or RGBA


def _format_for(path: Path) -> str:
    exts = Image.registered_extensions()
    fmt = exts.get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"cannot tell the image format from {str(path)!r}; use a suffix such as .png, .jpg, .webp")
    return fmt


def _atomic_save(img: Image.Image, path: str | os.PathLike, fmt: str, **params) -> Path:
    return atomic_write(path, lambda f: img.save(f, format=fmt, **params))


def save_image(x: Tensor, path: str | os.PathLike, *, scale: int = 1) -> Path:
    """Write one image (C, H, W) in [-1, 1]; the format follows the suffix (.png, .jpg, .webp, ...)."""
    path = Path(path)
    return _atomic_save(_to_pil(x, scale), path, _format_for(path))


def make_grid(images: Tensor | Sequence[Tensor], nrow: int, padding: int = 1, pad_value: float = -1.0) -> Tensor:
    """Tile (N, C, H, W) into one (C, H', W') image, `nrow` images per row, row-major.

    Every cell is surrounded by `padding` pixels of `pad_value` (outer border included):
    H' = rows * (H + padding) + padding, W' = cols * (W + padding) + padding, with
    cols = min(nrow, N) and rows = ceil(N / cols). Unused trailing cells are filled with `pad_value`.
    """
    if not isinstance(images, Tensor):
        images = torch.stack(list(images))
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch (N, C, H, W), got shape {tuple(images.shape)}")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow (images per row) must be an integer >= 1, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = images.new_full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for i in range(n):
        top = padding + (i // cols) * (h + padding)
        left = padding + (i % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def save_grid(
    images: Tensor | Sequence[Tensor], path: str | os.PathLike, nrow: int, *, scale: int = 1, padding: int = 1
) -> Path:
    """`make_grid` then `save_image`; padding is in source pixels (scaled along with the images)."""
    return save_image(make_grid(images, nrow, padding=padding), path, scale=scale)


def save_gif(
    frames: Sequence[Tensor] | Tensor,
    path: str | os.PathLike,
    *,
    duration_ms: int | Sequence[int] = 100,
    scale: int = 1,
    loop: int = 0,
) -> Path:
    """Write frames (each (C, H, W) in [-1, 1]) as an animated GIF that loops `loop` times (0 = forever).

    RGB frames are reduced to a 256-colour palette per frame by Pillow; grayscale frames are exact.
    Note that Pillow merges a frame identical to the previous one into it (adding up the durations),
    so the file can hold fewer frames than given while showing the same animation.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"save_gif writes GIF files; the path should end in .gif, got {str(path)!r}")
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"all frames must have the same shape, got {sorted(shapes)}")
    pil = [_to_pil(f, scale) for f in frames]
    if pil[0].mode == "RGBA":
        raise ValueError("GIF has no alpha channel: pass frames with 1 or 3 channels")
    if not isinstance(duration_ms, int):
        duration_ms = list(duration_ms)
        if len(duration_ms) != len(pil):
            raise ValueError(f"duration_ms has {len(duration_ms)} entries for {len(pil)} frames")
    return _atomic_save(pil[0], path, "GIF", save_all=True, append_images=pil[1:], duration=duration_ms, loop=loop)
