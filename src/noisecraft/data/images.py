"""An image-folder dataset: every PNG/JPEG/WebP/BMP/GIF under a folder, decoded eagerly.

* Files are found recursively and sorted by their path relative to the root (POSIX form, plain
  string order), so the same folder always gives the same data order. Hidden files and folders
  (names starting with ".", e.g. macOS "._x.png" resource forks, our own temp files) are ignored.
* Labels: with `labels=True` and every image inside a first-level sub-folder, the sub-folder names
  are the classes (`class_names` sorted, label = index). Images nested deeper belong to their
  first-level folder. With all images directly in the root the data is unlabeled. A mix is
  ambiguous and raises `DataError` (pass `labels=False` to ignore the folders). Classes come from
  the folders holding image *files*, before decoding, so a skipped file never shifts class indices.
* Decoding: the first frame only (GIF/animated WebP); EXIF orientation applied; palette, 1-bit,
  CMYK and YCbCr images become RGB; 16-bit grayscale is scaled 0..65535 -> 0..255 (Pillow's own
  conversion would clip it); transparency is composited on black (alpha premultiplied), which
  matches the -1 background of the built-in data. ICC profiles are ignored.
* `channels=None` picks 1 when every image is stored as grayscale, else 3. RGB -> gray uses the
  ITU-R 601 luma weights (as Pillow's "L" conversion); gray -> RGB repeats the channel.
* Geometry: the centered square of side min(W, H) is resampled to `resolution` x `resolution` with
  Pillow's Lanczos filter (antialiased) in one step, which equals "resize the shorter side, then
  center-crop" without intermediate rounding. `resolution=None` uses the smallest shorter side in
  the folder, so nothing is upsampled.
* Errors: an unreadable file (undecodable, truncated, empty, or a decompression bomb by Pillow's
  `MAX_IMAGE_PIXELS` limit) raises `DataError` naming the first such file in sorted order with
  `on_error="strict"`; with `on_error="skip"` it is left out and listed in `skipped_files`.

Everything is held in memory (uint8 while decoding, float32 in the dataset): right for the small
datasets this library trains on; convert big collections to a smaller resolution first.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .dataset import DataError, ImageDataset, check_channels, check_resolution, to_unit_range

__all__ = ["IMAGE_EXTENSIONS", "list_image_files", "load_image_folder", "read_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
_ON_ERROR = ("strict", "skip")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _ext_list() -> str:
    return ", ".join(IMAGE_EXTENSIONS)


def list_image_files(root: str | os.PathLike) -> list[Path]:
    """Image files under `root` (recursive, hidden entries ignored), sorted by relative POSIX path."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath, f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


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


def _decode_full(path: Path) -> np.ndarray:
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
        arr = _decode_full(path)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable file"
        raise DataError(f"cannot read image {str(path)!r}: {_why(e)}") from e
    if channels is None:
        channels = 1 if arr.ndim == 2 else 3
    return to_unit_range(torch.from_numpy(_to_channels(arr, channels)).permute(2, 0, 1).contiguous())


def _decode(path: Path, resolution: int) -> np.ndarray:
    """Decode one image -> (r, r) or (r, r, 3) uint8. Raises on any defect."""
    arr = _decode_full(path)
    pil = Image.fromarray(arr)  # mode "L" or "RGB"
    w, h = pil.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    out = np.asarray(pil.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box))
    return out


def _shorter_side(path: Path) -> int:
    with _open(path) as img:
        w, h = img.size
    if min(w, h) < 1:
        raise DataError(f"image has no pixels ({w}x{h})")
    return min(w, h)


def _why(e: Exception) -> str:
    return str(e) if isinstance(e, DataError) else f"{type(e).__name__}: {e}"


def load_image_folder(
    root: str | os.PathLike,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    labels: bool = True,
    on_error: str = "strict",
    hflip: bool = False,
) -> ImageDataset:
    """Decode every image under `root` into an `ImageDataset` (see the module docstring for the rules)."""
    check_resolution(resolution)
    check_channels(channels)
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be 'strict' (raise on the first unreadable file) or 'skip', got {on_error!r}")
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"image folder {str(root)!r} {what}; expected a folder of images ({_ext_list()})")
    files = list_image_files(root)
    if not files:
        raise DataError(f"no images found in {str(root)!r} (searched recursively for {_ext_list()})")

    class_names: list[str] = []
    if labels:
        parts = [f.relative_to(root).parts for f in files]
        at_root = [f for f, p in zip(files, parts) if len(p) == 1]
        if len(at_root) < len(files):
            if at_root:
                raise DataError(
                    f"{str(root)!r} has images both in class sub-folders and directly in the folder (e.g. {str(at_root[0])!r}); "
                    "move them into a sub-folder per class, or pass labels=False"
                )
            class_names = sorted({p[0] for p in parts})
    class_index = {c: i for i, c in enumerate(class_names)}

    skipped: list[str] = []
    reasons: list[str] = []

    def fail(path: Path, e: Exception) -> None:
        if on_error == "strict":
            raise DataError(f"cannot read image {str(path)!r}: {_why(e)} (pass on_error='skip' to leave such files out)") from e
        skipped.append(str(path))
        reasons.append(_why(e))

    # Shorter sides are read from headers only, so an unknown resolution costs no extra decoding.
    # A header failure is remembered and reported at that file's place in sorted order.
    header_error: dict[Path, Exception] = {}
    if resolution is None:
        sides = []
        for f in files:
            try:
                sides.append(_shorter_side(f))
            except MemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable file"
                header_error[f] = e
        resolution = min(sides) if sides else 1

    arrays: list[np.ndarray] = []
    label_list: list[int] = []
    for f in files:
        try:
            if f in header_error:
                raise header_error[f]
            arr = _decode(f, resolution)
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001
            fail(f, e)
            continue
        arrays.append(arr)
        label_list.append(class_index[f.relative_to(root).parts[0]] if class_names else 0)

    if not arrays:
        raise DataError(f"no readable images in {str(root)!r}: all {len(skipped)} files were skipped; first: {skipped[0]!r} ({reasons[0]})")
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {str(root)!r}; first: {skipped[0]!r} ({reasons[0]})",
            stacklevel=2,
        )

    if channels is None:
        channels = 1 if all(a.ndim == 2 for a in arrays) else 3
    stacked = np.stack([_to_channels(a, channels) for a in arrays])  # (N, H, W, C) uint8
    images = to_unit_range(torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous())  # (N, C, H, W)
    return ImageDataset(
        images,
        torch.tensor(label_list, dtype=torch.long),
        class_names=class_names,
        name=str(root),
        hflip=hflip,
        skipped_files=skipped,
    )


def _to_channels(a: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (H, W, channels) uint8."""
    if a.ndim == 2:
        return np.repeat(a[..., None], channels, axis=-1)
    if channels == 3:
        return a
    # ITU-R 601-2 luma, the weights Pillow uses for RGB -> "L"
    luma = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
