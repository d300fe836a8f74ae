"""The built-in `digits` dataset: scikit-learn's real handwritten digits (UCI optdigits test set).

1797 grayscale 8x8 images of the digits 0-9 (about 180 per class), shipped inside scikit-learn, so
nothing is downloaded. Raw pixel values are counts 0..16 of "on" pixels in 4x4 blocks of the original
32x32 bitmaps, with strokes as high values. We map them linearly to [-1, 1]: 0 -> -1 (dark
background), 16 -> +1 (bright stroke), keeping bright strokes on a dark background.

Split: deterministic and stratified. Within each class the sample indices are shuffled by a
`numpy.random.RandomState(DIGITS_SPLIT_SEED)` (the legacy generator, whose stream numpy keeps
stable across versions) and the first round(15% of the class) go to "test", the rest to "train".
Both splits keep the original sklearn order. "all" is every image in sklearn order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import ImageDataset, check_channels, check_resolution

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "digits_split_indices", "load_digits"]

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.15
_SPLITS = ("train", "test", "all")


def digits_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Sorted sample indices of `split` ("train", "test" or "all") for the digits label array."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}; got {split!r}")
    if split == "all":
        return np.arange(len(labels))
    rng = np.random.RandomState(DIGITS_SPLIT_SEED)
    test = []
    for c in np.unique(labels):  # ascending classes: the random stream is consumed in a fixed order
        idx = np.flatnonzero(labels == c)
        test.append(idx[rng.permutation(len(idx))[: int(round(DIGITS_TEST_FRACTION * len(idx)))]])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test)] = True
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def load_digits(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
) -> ImageDataset:
    """Handwritten digits as an `ImageDataset` with values in [-1, 1].

    resolution: None or 8 keeps the native 8x8. Other sizes (16 and 32 are the usual choices for a
        U-Net) resample with `torch.nn.functional.interpolate(mode="bilinear", antialias=True,
        align_corners=False)`: smooth bilinear upsampling, and a proper low-pass when downsampling.
        Bilinear weights are convex, so values stay in [-1, 1].
    channels: None or 1 gives grayscale; 3 repeats the gray channel as RGB.
    labels: False drops the digit classes (all-zero labels, num_classes 0).
    hflip: recorded only (mirrored digits are not digits, so the default is False).
    """
    check_resolution(resolution)
    check_channels(channels)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}; got {split!r}")
    from sklearn.datasets import load_digits as _sk_load_digits  # bundled data file, no download

    bunch = _sk_load_digits()
    y = np.asarray(bunch.target, dtype=np.int64)
    idx = digits_split_indices(y, split)
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)[idx])  # (N, 8, 8), values 0..16
    x = (x / 8.0 - 1.0).unsqueeze(1)  # (N, 1, 8, 8) in [-1, 1]
    if resolution is not None and resolution != x.shape[-1]:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(-1.0, 1.0)  # guard against float round-off only
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    x = x.contiguous()
    if labels:
        return ImageDataset(x, torch.from_numpy(y[idx]), class_names=[str(d) for d in range(10)], name="digits", hflip=hflip)
    return ImageDataset(x, None, name="digits", hflip=hflip)
