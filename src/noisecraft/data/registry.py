"""`load_dataset`: one entry point for built-in datasets (images, 1-D waves, 3-D blobs) and image folders.

`source` is looked up among the built-in names first, then treated as a folder path; write a
folder that shares a built-in's name as a path ("./digits") to load the folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .blobs import load_blobs
from .dataset import DataError, SignalDataset, check_channels, check_resolution
from .digits import load_digits
from .images import IMAGE_EXTENSIONS, load_image_folder
from .shapes import SHAPES_SPLITS, load_shapes
from .waves import load_waves

__all__ = ["BUILTIN_DATASETS", "BUILTIN_SPLITS", "SPLITS", "ON_ERROR", "load_dataset"]

SPLITS = ("train", "test", "all")
ON_ERROR = ("strict", "skip")

# name -> loader(resolution=, split=, channels=, labels=, hflip=) -> SignalDataset (images: ImageDataset)
BUILTIN_DATASETS: dict[str, Callable[..., SignalDataset]] = {
    "digits": load_digits,
    "shapes": load_shapes,
    "waves": load_waves,  # 1-D (1, 64), modality "array"
    "blobs": load_blobs,  # 3-D (1, 8, 16, 16), modality "array"
}

# Built-ins with splits beyond SPLITS (e.g. shapes' "heldout" colour-shape pairs).
BUILTIN_SPLITS: dict[str, tuple[str, ...]] = {
    "shapes": SHAPES_SPLITS,
}


def load_dataset(
    source: str,
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    on_error: str = "strict",
    hflip: bool = False,
) -> SignalDataset:
    """Load a built-in dataset by name, or every image under a folder.

    resolution: output side length (waves: the length; blobs: the frame side); None keeps the built-in's
        native size (digits: 8, shapes: 32, waves: 64, blobs: 16) or, for a folder, the smallest shorter side found.
    split: "train", "test" or "all". Built-ins have a fixed held-out "test" split; a folder is used
        whole, so it accepts "train" and "all" (same data) and rejects "test". "shapes" also has
        "heldout" (= "test": unseen colour-shape pairs) and "test_seen" (see `BUILTIN_SPLITS`).
    channels: 1, 3, or None (from the data).
    labels: use class labels (built-in classes, or first-level sub-folders of a folder).
    on_error: folders only: "strict" raises `DataError` on the first unreadable image,
        "skip" leaves unreadable images out and lists them in `dataset.skipped_files`.
    hflip: recorded on the dataset for the trainer; no augmentation is applied here.
    """
    check_resolution(resolution)
    check_channels(channels)
    valid_splits = BUILTIN_SPLITS.get(source, SPLITS) if isinstance(source, str) else SPLITS
    if split not in valid_splits:
        raise ValueError(f"split must be one of {', '.join(valid_splits)}; got {split!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a built-in dataset name or a folder path, got {type(source).__name__}")
    opts = dict(resolution=resolution, channels=channels, labels=labels, hflip=hflip)
    if isinstance(source, str) and source in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[source](split=split, **opts)
    path = Path(source)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "is not a built-in dataset and no such folder exists"
        raise DataError(
            f"unknown dataset {str(source)!r}: it {what}. Built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}; "
            f"or give a folder of images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    if split == "test":
        raise ValueError(
            f"split='test' is only defined for built-in datasets ({', '.join(sorted(BUILTIN_DATASETS))}); "
            f"the folder {str(source)!r} is used whole: pass split='train' or 'all'"
        )
    return load_image_folder(path, on_error=on_error, **opts)
