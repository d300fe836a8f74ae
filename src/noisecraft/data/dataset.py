"""The one in-memory image dataset every source returns, and the error type for bad data.

Datasets are small enough to decode eagerly: all images live in one float32 tensor, so indexing is
a tensor lookup, data order is exactly reproducible, and the trainer can draw batches and flips with
its own generator. Random augmentation is never applied here (see `ImageDataset.hflip`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.readers import DataError, check_channels, to_unit_range  # noqa: F401 - re-exported

__all__ = ["DataError", "ImageDataset"]


class ImageDataset(Dataset):
    """Images (N, C, H, W) float32 in [-1, 1] plus integer class labels (N,).

    `labels` is all zeros and `num_classes` is 0 when the data is unlabeled.
    `hflip` only records whether horizontal flips are a valid augmentation for this data;
    the trainer applies them with its own random generator so runs stay reproducible.
    `skipped` / `skipped_files` list the files left out by `on_error="skip"` (folder sources).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        class_names: list[str] | None = None,
        name: str = "",
        hflip: bool = False,
        skipped_files: list[str] | None = None,
    ) -> None:
        if images.ndim != 4 or images.dtype != torch.float32:
            raise ValueError(f"images must be a float32 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        n = images.shape[0]
        class_names = list(class_names or [])
        if labels is None:
            labels = torch.zeros(n, dtype=torch.long)
        labels = labels.to(torch.long)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if n and class_names and not (0 <= int(labels.min()) and int(labels.max()) < len(class_names)):
            raise ValueError(f"labels must lie in [0, {len(class_names)}), got [{int(labels.min())}, {int(labels.max())}]")
        if not class_names and n and bool(labels.any()):
            raise ValueError("unlabeled data (no class_names) must have all-zero labels")
        self.images = images  # (N, C, H, W)
        self.labels = labels  # (N,)
        self.class_names = class_names
        self.name = name
        self.hflip = bool(hflip)
        self.skipped_files = list(skipped_files or [])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def skipped(self) -> int:
        return len(self.skipped_files)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i], self.labels[i]

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, channels={self.channels}, "
            f"resolution={self.resolution}, num_classes={self.num_classes}, hflip={self.hflip}, skipped={self.skipped})"
        )


def check_resolution(resolution: int | None) -> None:
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0):
        raise ValueError(f"resolution must be a positive integer (e.g. 8, 16, 32, 64) or None, got {resolution!r}")
