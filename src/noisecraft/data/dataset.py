"""The one in-memory dataset every source returns (`SignalDataset`, images: `ImageDataset`), and the error type for bad data.

Datasets are small enough to decode eagerly: all examples live in one float32 tensor, so indexing is
a tensor lookup, data order is exactly reproducible, and the trainer can draw batches and flips with
its own generator. Random augmentation is never applied here (see `SignalDataset.hflip`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.readers import DataError, check_channels, to_unit_range  # noqa: F401 - re-exported
from ..modalities import Modality, default_modality, get_modality

__all__ = ["DataError", "SignalDataset", "ImageDataset"]


class SignalDataset(Dataset):
    """Examples `data` (N, C, *spatial) float32 in [-1, 1], spatial rank 1-3, plus integer class labels (N,).

    `data` is the rank-generic name; `images` is the same tensor (kept on every dataset so image code
    and rank-generic code can share one attribute). `modality` names the modality that reads, writes
    and previews the examples (`noisecraft.modalities`); by default `default_modality(sample_shape)`:
    "image" for (1 or 3, H, W), else "array". `modality_options` are its settings (audio:
    {"sample_rate": 8000}); the trainer records both in run.json, and `get_modality()` gives the
    configured modality that reads, writes and previews these examples.
    `labels` is all zeros and `num_classes` is 0 when the data is unlabeled.
    `hflip` only records whether flipping the last axis is a valid augmentation for this data;
    the trainer applies it with its own random generator so runs stay reproducible.
    `skipped` / `skipped_files` list the files left out by `on_error="skip"` (folder sources).
    """

    _ranks: tuple[int, ...] = (1, 2, 3)

    def __init__(
        self,
        data: Tensor,
        labels: Tensor | None = None,
        *,
        class_names: list[str] | None = None,
        name: str = "",
        hflip: bool = False,
        skipped_files: list[str] | None = None,
        modality: str | None = None,
        modality_options: dict | None = None,
    ) -> None:
        if not isinstance(data, Tensor) or data.dtype != torch.float32 or data.ndim - 2 not in self._ranks:
            what = f"{data.dtype} {tuple(data.shape)}" if isinstance(data, Tensor) else type(data).__name__
            raise ValueError(f"{self._data_doc()}, got {what}")
        n = data.shape[0]
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
        sample_shape = tuple(int(v) for v in data.shape[1:])
        self.modality = default_modality(sample_shape) if modality is None else modality
        m = get_modality(self.modality, modality_options)  # ValueError naming a bad name or option
        m.check_shape(sample_shape)  # ValueError naming the shape and the modality's rule
        self.modality_options = m.options()  # complete: the defaults filled in
        self.data = data  # (N, C, *spatial)
        self.labels = labels  # (N,)
        self.class_names = class_names
        self.name = name
        self.hflip = bool(hflip)
        self.skipped_files = list(skipped_files or [])

    @classmethod
    def _data_doc(cls) -> str:
        return "data must be a float32 tensor (N, C, *spatial) with spatial rank 1, 2 or 3"

    def get_modality(self) -> Modality:
        """The modality of these examples, configured with `modality_options`."""
        return get_modality(self.modality, self.modality_options)

    @property
    def images(self) -> Tensor:
        """The same tensor as `data` (the name image code has always used)."""
        return self.data

    @images.setter
    def images(self, value: Tensor) -> None:
        self.data = value

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, *spatial) of one example."""
        return tuple(int(v) for v in self.data.shape[1:])

    @property
    def spatial_rank(self) -> int:
        return self.data.ndim - 2

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def skipped(self) -> int:
        return len(self.skipped_files)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.data[i], self.labels[i]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape}, "
            f"modality={self.modality!r}, num_classes={self.num_classes}, hflip={self.hflip}, skipped={self.skipped})"
        )


class ImageDataset(SignalDataset):
    """Images (N, C, H, W) float32 in [-1, 1] plus integer class labels (N,): a `SignalDataset` of
    spatial rank 2, with `resolution` (the side length W)."""

    _ranks = (2,)

    @classmethod
    def _data_doc(cls) -> str:
        return "images must be a float32 tensor (N, C, H, W)"

    @property
    def resolution(self) -> int:
        return int(self.data.shape[-1])

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, channels={self.channels}, "  # subclasses rename it
            f"resolution={self.resolution}, num_classes={self.num_classes}, hflip={self.hflip}, skipped={self.skipped})"
        )


class AudioDataset(SignalDataset):
    """Clips (N, 1, L) float32 in [-1, 1] at `sample_rate` Hz: a `SignalDataset` of modality "audio"
    whose rate travels as its modality option (and so into run.json)."""

    _ranks = (1,)

    def __init__(self, data: Tensor, labels: Tensor | None = None, *, sample_rate: int, **kw) -> None:
        super().__init__(data, labels, modality="audio", modality_options={"sample_rate": int(sample_rate)}, **kw)

    @property
    def sample_rate(self) -> int:
        return int(self.modality_options["sample_rate"])


def check_resolution(resolution: int | None) -> None:
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0):
        raise ValueError(f"resolution must be a positive integer (e.g. 8, 16, 32, 64) or None, got {resolution!r}")
