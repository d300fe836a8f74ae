"""Reading image files: any Pillow image -> float32 (C, H, W) in [-1, 1], by one set of decoding rules.

Shared by the image-folder datasets (`noisecraft.data.images`) and the image modality
(`noisecraft.modalities`), so a file decodes the same whether it is training data or a task input:
first frame only (GIF/animated WebP); EXIF orientation applied; palette, 1-bit, CMYK and YCbCr images
become RGB; 16-bit grayscale is scaled 0..65535 -> 0..255; transparency is composited on black (alpha
premultiplied); RGB -> gray by the ITU-R 601 luma weights, gray -> RGB by repetition; a decompression
bomb (Pillow's `MAX_IMAGE_PIXELS`) is refused. Every defect is a `DataError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = ["DataError", "check_channels", "to_unit_range", "read_image", "decode_image"]


class DataError(Exception):
    """Data cannot be read: missing/empty folder, unreadable or invalid file, unknown dataset name."""


def check_channels(channels: int | None) -> None:
    if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or None (from the data), got {channels!r}")


def to_unit_range(u8: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 [-1, 1] (0 -> -1, 255 -> +1)."""
    return u8.to(torch.float32) / 127.5 - 1.0


_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _open(path: Path) -> Image.Image:
    """Open lazily (header only), turning Pillow's decompression-bomb warning into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise DataError(f"decompression bomb refused (limit Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS}): {e}") from e


def _composite_on_black(arr: np.ndarray) -> np.ndarray:
    """(H, W, K+1) uint8 with alpha last -> premultiplied colour, i.e. over a black background:
    (H, W) for gray + alpha (K = 1), (H, W, 3) for RGBA."""
    color, alpha = arr[..., :-1].astype(np.uint32), arr[..., -1:].astype(np.uint32)
    out = ((color * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _normalize(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> (H, W) gray or (H, W, 3) RGB uint8 array, alpha composited on black."""
    mode = img.mode
    transparent = "transparency" in img.info and img.info["transparency"] is not None
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.int64)
        return ((np.clip(arr, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)  # 16-bit range -> 8-bit
    if mode == "F":
        return np.asarray(img.convert("L"))
    if mode in _GRAY_MODES:  # "1", "L", "LA", "La"
        if mode in ("LA", "La") or transparent:
            return _composite_on_black(np.asarray(img.convert("LA")))
        return np.asarray(img.convert("L"))
    if mode in ("RGBA", "RGBa", "PA") or transparent:  # alpha channel, or P/RGB with a transparent colour key
        return _composite_on_black(np.asarray(img.convert("RGBA")))
    return np.asarray(img.convert("RGB"))  # RGB, P, CMYK, YCbCr, LAB, HSV


def decode_image(path: Path) -> np.ndarray:
    """Decode one image at its own size -> (H, W) gray or (H, W, 3) RGB uint8. Raises on any defect."""
    with _open(path) as img:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.seek(0)  # first frame of GIF / animated WebP
            img.load()  # full decode now: truncated or corrupt data fails here, not later
        img = ImageOps.exif_transpose(img)
        return np.ascontiguousarray(_normalize(img))


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """One image file at its own size -> float32 (C, H, W) in [-1, 1], decoded by the same rules as
    `load_image_folder` (first frame, EXIF orientation, alpha on black). channels: 1 or 3 converts
    (RGB -> gray by ITU-R 601 luma, gray -> RGB by repetition); None keeps 1 for grayscale files, else 3.
    An unreadable or missing file raises `DataError` naming it."""
    check_channels(channels)
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise DataError(f"image {str(path)!r} {what}")
    try:
        arr = decode_image(path)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable file"
        raise DataError(f"cannot read image {str(path)!r}: {_why(e)}") from e
    if channels is None:
        channels = 1 if arr.ndim == 2 else 3
    arr = _to_channels(arr, channels)
    if not arr.flags.writeable:  # a read-only decoder buffer: torch.from_numpy warns on it
        arr = arr.copy()
    return to_unit_range(torch.from_numpy(arr).permute(2, 0, 1).contiguous())


def _why(e: Exception) -> str:
    return str(e) if isinstance(e, DataError) else f"{type(e).__name__}: {e}"


def _to_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (H, W, channels) uint8."""
    if a.ndim == 2:
        return np.repeat(a[..., None], channels, axis=-1)
    if channels == 3:
        return a
    # ITU-R 601-2 luma, the weights Pillow uses for RGB -> "L"
    luma = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
