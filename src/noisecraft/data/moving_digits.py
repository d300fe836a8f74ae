"""The built-in `moving-digits` dataset: real handwritten digits moving and bouncing, for video models.

Each clip is (C, T, R, R) with T = `frames` (default 16) frames of R x R pixels (R = `resolution`,
default 32), values in [-1, 1] (background -1, strokes up to +1), at 10 fps. One or two of
scikit-learn's 8x8 digits (the images of the `digits` built-in, same [-1, 1] mapping) move with
constant velocity and bounce off the frame edges (Moving MNIST, Srivastava et al. 2015, with real
sklearn digits):

* **Sprite**: the 8x8 digit drawn as an S x S square, S = R/2 (16 px at 32x32), by bilinear
  sampling (`grid_sample`, align_corners=False: at whole-pixel positions this is the `digits`
  built-in's bilinear upsampling) at the digit's exact sub-pixel position, so motion is smooth.
  Outside its 8x8 cell a digit fades to the background over half a cell (S/16 px).
* **Motion**: the sprite centre starts uniformly in [S/2 + S/16, R - S/2 - S/16] on both axes (the cell
  and its fall-off stay inside the frame) and moves with speed uniform in [1, 2.5] px per frame
  (times R/32) in a direction uniform in [0, 2 pi). At a wall the velocity component across it flips
  sign (elastic reflection, `noisecraft.data.video.bounce`); speed is kept. Two digits pass through
  each other; where they overlap the brighter stroke wins (pixel-wise max).
* **Trajectories** for evaluation: `ds.positions` / `ds.velocities` (N, 2, T, 2), the sprite centre
  (row, col) in pixels and its velocity towards the next frame (NaN in slot 1 for one-digit clips);
  `ds.digits` (N, 2) the digit classes and `ds.image_index` (N, 2) the sklearn image indices (-1 for none);
  `ds.walls` (N, 2) the (low, high) bounds of the centre on both axes.

Splits are by the underlying digit images: a "train" clip only uses images of the `digits`
built-in's train split, a "test" clip only its test split (15 % of each class, `digits_split_indices`),
so no test digit image is ever seen in training. "train" 2000 clips (seed 0), "test" 400 (seed 1),
"all" = train then test; `num_clips` / `seed` override one split's size / seed.

Labels. Class c (0-9, named "0".."9") = the clip shows the digit c; the first digit's class is exactly
balanced (clip i gets class i mod 10, shuffled). Two-digit clips have no single class, so they are
kept out of labelled data: `two_digit_fraction` (the share of clips with a second digit, drawn
uniformly from the split's images) defaults to 0 when `labels=True` (class-conditional training) and
to 0.25 when `labels=False`; asking for two-digit clips with labels is an error. `ds.digits` names
both digits either way. Deterministic: the same arguments give the same clips, bit for bit
(`MOVING_DIGITS_VERSION` is bumped whenever the pixels, motion or splits change).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..modalities.video import check_fps
from .dataset import check_channels, check_resolution
from .digits import digits_split_indices
from .video import VIDEO_SPLITS, VideoDataset, bounce, check_count, check_frames

__all__ = ["MOVING_DIGITS_VERSION", "MOVING_DIGITS_SPLIT_SIZES", "MOVING_DIGITS_FRAMES", "load_moving_digits",
           "render_sprites"]

MOVING_DIGITS_VERSION = 1
MOVING_DIGITS_SPLIT_SIZES = {"train": 2000, "test": 400}
MOVING_DIGITS_FRAMES = 16
NATIVE_SIDE = 32
MIN_SIDE = 8
_SPLIT_SEEDS = {"train": 0, "test": 1}
_SPEED = (1.0, 2.5)  # px per frame at 32x32
_TWO_DIGIT_FRACTION = 0.25  # unlabelled default
_CHUNK = 128  # clips rendered at once (bounds the memory of the sampling grids)


def render_sprites(sprites: torch.Tensor, centres: np.ndarray, size: float, side: int) -> torch.Tensor:
    """Ink (M, T, side, side) in [0, 1] of sprites (M, h, w) in [0, 1] drawn as size x size squares
    centred at `centres` (M, T, 2) (row, col, pixels; NaN = absent, drawn empty) by bilinear sampling."""
    m, t = centres.shape[:2]
    out = torch.zeros(m, t, side, side, dtype=torch.float32)
    pix = torch.arange(side, dtype=torch.float64) + 0.5  # pixel centres
    for a in range(0, m, _CHUNK):
        b = min(m, a + _CHUNK)
        c = torch.from_numpy(np.nan_to_num(centres[a:b], nan=-1e6))  # absent: far outside, samples zeros
        # sprite-local normalized coordinates in [-1, 1] across the square (grid_sample, align_corners=False)
        gy = 2.0 * (pix[None, None, :] - c[..., 0:1]) / size  # (B, T, side): rows
        gx = 2.0 * (pix[None, None, :] - c[..., 1:2]) / size  # (B, T, side): cols
        grid = torch.stack(torch.broadcast_tensors(gx[:, :, None, :], gy[:, :, :, None]), dim=-1)  # (B, T, side, side, 2)
        src = sprites[a:b, None].expand(-1, t, -1, -1).reshape((b - a) * t, 1, *sprites.shape[1:])
        ink = F.grid_sample(src, grid.reshape((b - a) * t, side, side, 2).to(torch.float32), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        out[a:b] = ink.reshape(b - a, t, side, side)
    return out.clamp_(0.0, 1.0)


def _generate(split: str, n: int, seed: int, side: int, frames: int, two_fraction: float):
    from sklearn.datasets import load_digits as _sk_load_digits  # bundled data file, no download

    bunch = _sk_load_digits()
    y = np.asarray(bunch.target, dtype=np.int64)
    pool = digits_split_indices(y, split)  # the split's digit images only
    rng = np.random.RandomState([seed, 0])  # legacy generator: its stream is frozen across numpy versions
    first_class = rng.permutation(np.arange(n) % 10)
    image = np.full((n, 2), -1, dtype=np.int64)
    for c in range(10):
        rows = np.flatnonzero(first_class == c)
        image[rows, 0] = rng.choice(pool[y[pool] == c], size=len(rows))
    two = rng.random_sample(n) < two_fraction
    image[two, 1] = rng.choice(pool, size=int(two.sum()))
    k = side / NATIVE_SIDE
    size = side / 2.0
    low, high = size / 2 + size / 16, side - size / 2 - size / 16
    start = low + (high - low) * rng.random_sample((n, 2, 2))  # (clip, slot, axis)
    speed = k * (_SPEED[0] + (_SPEED[1] - _SPEED[0]) * rng.random_sample((n, 2)))
    angle = 2.0 * np.pi * rng.random_sample((n, 2))
    vel0 = speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (n, 2, 2) (row, col)
    pos, vel = bounce(start, vel0, frames, low, high)  # (n, 2, 2, T): clip, slot, axis, frame
    pos, vel = pos.transpose(0, 1, 3, 2).copy(), vel.transpose(0, 1, 3, 2).copy()  # (n, 2, T, 2)
    pos[~two, 1], vel[~two, 1] = np.nan, np.nan
    sprites = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)  # (1797, 8, 8) ink in [0, 1]
    ink = render_sprites(sprites[image[:, 0]], pos[:, 0], size, side)  # (n, T, R, R)
    if two.any():
        ink[two] = torch.maximum(ink[two], render_sprites(sprites[image[two, 1]], pos[two, 1], size, side))
    x = (2.0 * ink - 1.0).unsqueeze(1)  # (n, 1, T, R, R) in [-1, 1]
    digits = np.where(image >= 0, y[np.maximum(image, 0)], -1)
    return x, digits, image, pos, vel, np.tile([low, high], (n, 1))


def load_moving_digits(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
    frames: int = MOVING_DIGITS_FRAMES,
    two_digit_fraction: float | None = None,
    num_clips: int | None = None,
    seed: int | None = None,
    fps: int = 10,
) -> VideoDataset:
    """`moving-digits` as a `VideoDataset` (N, C, T, R, R) (see the module docstring).

    resolution: the frame side R (None: 32; at least 8). frames: T (default 16). channels: None or 1
    (gray), 3 (gray repeated). labels: digit classes 0-9 (single-digit clips only) or none.
    two_digit_fraction: share of clips with a second digit (None: 0 with labels, 0.25 without).
    num_clips / seed: override the split's size / seed (not with split="all"). fps: the clips' frame
    rate, recorded for the video files (one of 1, 2, 4, 5, 10, 20, 25, 50). hflip: refused.
    """
    check_resolution(resolution)
    check_channels(channels)
    if split not in VIDEO_SPLITS:
        raise ValueError(f"split must be one of {', '.join(VIDEO_SPLITS)} for 'moving-digits'; got {split!r}")
    if hflip:
        raise ValueError("hflip=True is not valid for 'moving-digits': mirrored digits are not digits; pass hflip=False")
    side = resolution or NATIVE_SIDE
    if side < MIN_SIDE:
        raise ValueError(f"resolution {side} is too small for 'moving-digits'; valid: >= {MIN_SIDE} (frame side in pixels)")
    frames = check_frames(frames)
    fps = check_fps(fps)  # before the work, not after
    num_clips = check_count(num_clips, "num_clips")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32):
        raise ValueError(f"seed must be an integer in 0..2**32-1 or None (the split's pinned seed), got {seed!r}")
    if two_digit_fraction is None:
        two_digit_fraction = 0.0 if labels else _TWO_DIGIT_FRACTION
    if isinstance(two_digit_fraction, bool) or not isinstance(two_digit_fraction, (int, float)) \
            or not 0.0 <= two_digit_fraction <= 1.0:
        raise ValueError(f"two_digit_fraction must be in [0, 1] or None, got {two_digit_fraction!r}")
    if labels and two_digit_fraction > 0:
        raise ValueError(f"two_digit_fraction {two_digit_fraction} needs labels=False (data.conditional = false): a "
                         "two-digit clip has no single class; use 0 for class-conditional training")
    if split == "all" and (num_clips is not None or seed is not None):
        raise ValueError("split='all' concatenates the pinned splits; num_clips and seed apply to one split only")
    parts = ("train", "test") if split == "all" else (split,)
    out = [_generate(p, num_clips or MOVING_DIGITS_SPLIT_SIZES[p], _SPLIT_SEEDS[p] if seed is None else int(seed),
                     side, frames, float(two_digit_fraction)) for p in parts]
    x, digits, image, pos, vel, walls = (np.concatenate([o[i] for o in out]) if i else torch.cat([o[0] for o in out])
                                         for i in range(6))
    if channels == 3:
        x = x.repeat(1, 3, 1, 1, 1)
    ds = VideoDataset(x.contiguous(), torch.from_numpy(digits[:, 0]) if labels else None, fps=fps, positions=pos,
                      velocities=vel, walls=walls, class_names=[str(d) for d in range(10)] if labels else None,
                      name="moving-digits", hflip=False)
    ds.digits, ds.image_index = digits, image
    return ds
