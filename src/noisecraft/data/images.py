"""An image-folder dataset: every PNG/JPEG/WebP/BMP/GIF under a folder, decoded eagerly.

* Files are found recursively and sorted by their path relative to the root (POSIX form, plain
  string order), so the same folder always gives the same data order. Hidden files and folders
  (names starting with ".", e.g. macOS "._x.png" resource forks, our own temp files) are ignored.
* Labels: with `labels=True` and every image inside a first-level sub-folder, the sub-folder names
  are the classes (`class_names` sorted, label = index). Images nested deeper belong to their
  first-level folder. With all images directly in the root the data is unlabeled. A mix is
  ambiguous and raises `DataError` (pass `labels=False` to ignore the folders). Classes come from
  the folders holding image *files*, before decoding, so a skipped file never shifts class indices.
* Decoding (`noisecraft.io.readers`, shared with the image modality): the first frame only (GIF/animated WebP); EXIF orientation applied; palette, 1-bit,
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
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io.readers import _open, _to_channels, _why, decode_image, read_image
from .dataset import DataError, ImageDataset, check_channels, check_resolution, to_unit_range
from .folders import Skips, folder_classes, folder_files, list_files

__all__ = ["IMAGE_EXTENSIONS", "list_image_files", "load_image_folder", "read_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def list_image_files(root: str | os.PathLike) -> list[Path]:
    """Image files under `root` (recursive, hidden entries ignored), sorted by relative POSIX path."""
    return list_files(root, IMAGE_EXTENSIONS)


def square_resize(arr: np.ndarray, resolution: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> its centred square of side min(H, W), Lanczos-resampled to
    (r, r) or (r, r, 3) in one step (a frame of exactly r x r comes back unchanged)."""
    pil = Image.fromarray(arr)  # mode "L" or "RGB"
    w, h = pil.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(pil.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box))


def _decode(path: Path, resolution: int) -> np.ndarray:
    """Decode one image -> (r, r) or (r, r, 3) uint8. Raises on any defect."""
    return square_resize(decode_image(path), resolution)


def _shorter_side(path: Path) -> int:
    with _open(path) as img:
        w, h = img.size
    if min(w, h) < 1:
        raise DataError(f"image has no pixels ({w}x{h})")
    return min(w, h)


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
    root = Path(root)
    skips = Skips(root, on_error, "image")
    files = folder_files(root, IMAGE_EXTENSIONS, "image", "images")

    class_names = folder_classes(root, files, labels, "images")
    class_index = {c: i for i, c in enumerate(class_names)}

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
            skips.fail(f, _why(e), e)
            continue
        arrays.append(arr)
        label_list.append(class_index[f.relative_to(root).parts[0]] if class_names else 0)
    skips.finish(len(arrays))

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
        skipped_files=skips.files,
    )
