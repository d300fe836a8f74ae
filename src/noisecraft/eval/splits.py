"""Real data for evaluation: a reference split and an independent held-out split of one dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["RealSplits", "real_splits", "HOLDOUT_FRACTION"]

HOLDOUT_FRACTION = 0.15


@dataclass
class RealSplits:
    """Reference images (what a model trains on) and an independent held-out split of the same data."""

    name: str
    images: Tensor  # (N, C, H, W) in [-1, 1]
    labels: Tensor  # (N,)
    holdout_images: Tensor
    holdout_labels: Tensor
    class_names: list[str]


def real_splits(source: str, *, resolution: int | None, channels: int | None = None, seed: int = 0,
                sample_rate: int | None = None) -> RealSplits:
    """Built-in datasets: their "train" and "test" splits. Folders: a deterministic 15% of each class
    (of all images when unlabelled), drawn with `seed`, is held out; the rest is the reference.
    sample_rate: audio data only (the rate the clips are loaded at); None for everything else."""
    from ..data import BUILTIN_DATASETS, load_dataset

    rate = {} if sample_rate is None else {"sample_rate": sample_rate}
    if source in BUILTIN_DATASETS:
        tr = load_dataset(source, resolution=resolution, channels=channels, split="train", **rate)
        te = load_dataset(source, resolution=resolution, channels=channels, split="test", **rate)
        return RealSplits(source, tr.images, tr.labels, te.images, te.labels, list(tr.class_names))
    ds = load_dataset(source, resolution=resolution, channels=channels, split="all", **rate)
    gen = torch.Generator().manual_seed(seed)
    is_test = torch.zeros(len(ds), dtype=torch.bool)
    for c in range(max(1, ds.num_classes)):
        idx = torch.nonzero(ds.labels == c).flatten()
        is_test[idx[torch.randperm(len(idx), generator=gen)[: round(HOLDOUT_FRACTION * len(idx))]]] = True
    return RealSplits(Path(source).name, ds.images[~is_test], ds.labels[~is_test], ds.images[is_test],
                      ds.labels[is_test], list(ds.class_names))
