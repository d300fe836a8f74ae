"""What the generated single-channel built-ins (`waves`, `blobs`) share: argument checks, the
train/test split by seed, and the `SignalDataset` they return."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .dataset import SignalDataset, check_resolution

__all__ = ["SPLIT_SEEDS", "SYNTHETIC_SPLITS", "synthetic_dataset"]

SPLIT_SEEDS = {"train": 0, "test": 1}  # the generator seed of each split: they never share an example
SYNTHETIC_SPLITS = ("train", "test", "all")


def synthetic_dataset(name: str, generate: Callable[[int, int, int], tuple[np.ndarray, np.ndarray]], *,
                      sizes: Mapping[str, int], size: int, split: str, channels: int | None, labels: bool,
                      hflip: bool, class_names: Sequence[str], what: str) -> SignalDataset:
    """`generate(n, seed, size) -> (x (n, 1, ...), labels (n,))` for each part of `split`, checked and
    wrapped. `what` names the examples in the channel error ("signals", "clips")."""
    if channels not in (None, 1):
        raise ValueError(f"channels must be 1 or None for {name!r} (single-channel {what}), got {channels!r}")
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SYNTHETIC_SPLITS)} for {name!r}; got {split!r}")
    parts = ("train", "test") if split == "all" else (split,)
    xs, ys = zip(*(generate(sizes[p], SPLIT_SEEDS[p], size) for p in parts))
    x = torch.from_numpy(np.concatenate(xs))
    y = torch.from_numpy(np.concatenate(ys))
    return SignalDataset(x, y if labels else None, class_names=list(class_names) if labels else None,
                         name=name, hflip=hflip, modality="array")


def check_size(resolution: int | None, native: int) -> int:
    check_resolution(resolution)
    return resolution or native
