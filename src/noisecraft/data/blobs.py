"""The built-in `blobs` dataset: short clips of a Gaussian blob moving in a straight line (rank 3).

Each example is (1, T, R, R) with T = `BLOBS_FRAMES` = 8 frames of R x R pixels (R = `resolution`,
default 16), values in [-1, 1]: background -1, a Gaussian blob of peak +1 and width sigma = 1.5 px
(scaled with R / 16). The blob moves with constant velocity in one of four directions
(`BLOB_DIRECTIONS`: right, left, down, up; the class label) at a speed uniform in [0.6, 1.0] px per
frame (times R / 16), from a random start chosen so the blob centre stays at least 2.5 px (times
R / 16) inside the frame for the whole clip. Image axes: "down" is increasing row index.

Splits (pinned; `BLOBS_VERSION` is bumped if anything changes): "train" 1000 clips (seed 0),
"test" 200 (seed 1), "all" = train then test. Classes are balanced and shuffled. Rendering is
analytic (numpy), so any R draws the same motion directly.
"""

from __future__ import annotations

import numpy as np

from .dataset import SignalDataset
from .synthetic import check_size, synthetic_dataset

__all__ = ["BLOBS_VERSION", "BLOB_DIRECTIONS", "BLOBS_FRAMES", "BLOBS_SPLIT_SIZES", "load_blobs"]

BLOBS_VERSION = 1
BLOB_DIRECTIONS = ("right", "left", "down", "up")
BLOBS_FRAMES = 8
BLOBS_SPLIT_SIZES = {"train": 1000, "test": 200}
NATIVE_SIDE = 16
_VELOCITY = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])  # (row, col) per direction


def _generate(n: int, seed: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    k = side / NATIVE_SIDE
    labels = rng.permutation(np.arange(n) % len(BLOB_DIRECTIONS))
    speed = rng.uniform(0.6, 1.0, n) * k
    vel = _VELOCITY[labels] * speed[:, None]  # (n, 2) px / frame
    margin = 2.5 * k
    travel = vel * (BLOBS_FRAMES - 1)
    lo = margin - np.minimum(travel, 0.0)  # start range so start and end stay inside the margin
    hi = (side - 1 - margin) - np.maximum(travel, 0.0)
    start = lo + rng.uniform(0.0, 1.0, (n, 2)) * (hi - lo)  # (n, 2)
    t = np.arange(BLOBS_FRAMES)
    centre = start[:, None, :] + t[None, :, None] * vel[:, None, :]  # (n, T, 2)
    grid = np.arange(side, dtype=np.float64)
    d2 = (grid[None, None, :, None] - centre[..., 0, None, None]) ** 2 + (grid[None, None, None, :] - centre[..., 1, None, None]) ** 2
    sigma = 1.5 * k
    x = 2.0 * np.exp(-d2 / (2 * sigma**2)) - 1.0  # (n, T, R, R) in [-1, 1]
    return x[:, None].astype(np.float32), labels.astype(np.int64)


def load_blobs(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
) -> SignalDataset:
    """`blobs` as a `SignalDataset` (N, 1, 8, R, R), modality "array".

    resolution: the frame side R (None: 16). channels: None or 1. labels: False drops the directions.
    hflip: refused (mirroring swaps "left" and "right" and would contradict the labels).
    """
    if hflip:
        raise ValueError("hflip=True is not valid for 'blobs': a flip swaps left and right and contradicts the labels; pass hflip=False")
    return synthetic_dataset("blobs", _generate, sizes=BLOBS_SPLIT_SIZES, size=check_size(resolution, NATIVE_SIDE),
                             split=split, channels=channels, labels=labels, hflip=False, class_names=BLOB_DIRECTIONS,
                             what="clips")
