"""The built-in `waves` dataset: 1-D periodic signals of four shapes, a toy for rank-1 diffusion.

Each example is (1, L) (L = `resolution`, default 64) in [-1, 1]: one of four wave shapes
(`WAVE_CLASSES`: sine, square, sawtooth, triangle; the class label) drawn as

    x(t) = A * shape(f * t / L + phase),   t = 0 .. L-1,

with f (cycles per window) uniform in [1.5, 6], phase uniform in [0, 1) and amplitude A uniform in
[0.5, 0.95]. The signals are continuous functions sampled at L points, so any length renders the
same waves directly (nothing is resampled).

Splits (pinned; `WAVES_VERSION` is bumped if anything changes): "train" 2000 examples (seed 0),
"test" 400 (seed 1), "all" = train then test. Classes are balanced (each exactly n/4) and shuffled.
Generation is vectorized numpy (a few milliseconds); random draws use `numpy.random.Generator(PCG64)`
whose streams NumPy keeps stable across versions.
"""

from __future__ import annotations

import numpy as np

from .dataset import SignalDataset
from .synthetic import check_size, synthetic_dataset

__all__ = ["WAVES_VERSION", "WAVE_CLASSES", "WAVES_SPLIT_SIZES", "load_waves", "wave_shape"]

WAVES_VERSION = 1
WAVE_CLASSES = ("sine", "square", "sawtooth", "triangle")
WAVES_SPLIT_SIZES = {"train": 2000, "test": 400}
NATIVE_LENGTH = 64


def wave_shape(kind: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The unit-amplitude wave of class `kind` at phase `u` (cycles), broadcast together."""
    frac = u - np.floor(u)  # [0, 1)
    return np.select(
        [kind == 0, kind == 1, kind == 2],
        [np.sin(2 * np.pi * u), np.where(frac < 0.5, 1.0, -1.0), 2.0 * frac - 1.0],
        1.0 - 4.0 * np.abs(frac - 0.5),  # triangle: +1 at frac 0, -1 at frac 0.5
    )


def _generate(n: int, seed: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.permutation(np.arange(n) % len(WAVE_CLASSES))
    freq = rng.uniform(1.5, 6.0, n)
    phase = rng.uniform(0.0, 1.0, n)
    amp = rng.uniform(0.5, 0.95, n)
    t = np.arange(length) / length
    u = freq[:, None] * t[None, :] + phase[:, None]  # (n, L) in cycles
    x = amp[:, None] * wave_shape(labels[:, None], u)
    return x[:, None, :].astype(np.float32), labels.astype(np.int64)  # (n, 1, L), (n,)


def load_waves(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
) -> SignalDataset:
    """`waves` as a `SignalDataset` (N, 1, L), modality "array".

    resolution: the length L (None: 64). channels: None or 1 (the data is single-channel).
    labels: False drops the classes. hflip: recorded only (time reversal turns a rising sawtooth
    into a falling one, so it is off by default).
    """
    return synthetic_dataset("waves", _generate, sizes=WAVES_SPLIT_SIZES, size=check_size(resolution, NATIVE_LENGTH),
                             split=split, channels=channels, labels=labels, hflip=hflip, class_names=WAVE_CLASSES,
                             what="signals")
