"""What the built-in video datasets share: the dataset types, the motion model and the argument checks.

* `VideoDataset`: clips (N, C, T, H, W) in [-1, 1], modality "video" at `fps`, with the per-clip
  trajectories of the moving objects for evaluation:
  `positions` / `velocities` (N, K, T, 2) float64 as (row, col) in output pixels (pixel (i, j) covers
  [i, i+1) x [j, j+1), so the frame centre is (R/2, R/2)); `velocities[:, :, t]` is the motion from
  frame t to frame t+1 in px per frame (its sign flips at the frame after a bounce); K object slots,
  NaN where a clip has fewer objects (`num_objects` (N,)); `walls` (N, 2) the (low, high) bounds of
  the centres on both axes, where bouncing objects turn.
* `CaptionedVideoDataset`: plus `captions` (one list per clip) and `attributes` (one dict per clip),
  which is what text conditioning (`noisecraft.conditioning.text`) reads.
* `bounce(start, velocity, frames, low, high)`: constant velocity with elastic reflection at the
  walls `low` and `high`, in closed form (a triangle wave), so positions at every frame are exact.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .dataset import SignalDataset
from .shapes import CaptionedImageDataset, check_captions

__all__ = ["VideoDataset", "CaptionedVideoDataset", "bounce", "check_frames", "VIDEO_SPLITS"]

VIDEO_SPLITS = ("train", "test", "all")


def check_frames(frames: object) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or not 1 <= frames <= 256:
        raise ValueError(f"frames must be an integer in 1..256 (frames per clip), got {frames!r}")
    return int(frames)


def check_count(value: object, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None (the split's pinned value), got {value!r}")
    return None if value is None else int(value)


def bounce(start: np.ndarray, velocity: np.ndarray, frames: int, low: np.ndarray | float,
           high: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities (..., T) of a point starting at `start` (...) with `velocity` (...)
    px/frame between walls `low` < `high`, reflected elastically (speed kept, sign flipped).

    With L = high - low, the path is low + tri(u0 + |v| t) for the triangle wave tri(w) = L - |L - w mod 2L|
    (tri is even, so a negative velocity starts at u0 = -(start - low)); the velocity at frame t is the
    right derivative |v| * tri'(w), i.e. the motion towards frame t + 1. Needs |v| < L (at most one
    bounce between two frames), which the callers guarantee.
    """
    start, velocity = np.asarray(start, dtype=np.float64), np.asarray(velocity, dtype=np.float64)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    span = (high - low)[..., None]  # (..., 1)
    speed = np.abs(velocity)[..., None]
    u0 = (np.where(velocity < 0, -1.0, 1.0) * (start - low))[..., None]
    w = np.mod(u0 + speed * np.arange(frames, dtype=np.float64), 2.0 * span)  # (..., T) in [0, 2L)
    pos = low[..., None] + span - np.abs(span - w)
    vel = np.where(w < span, speed, -speed)
    return pos, vel


class VideoDataset(SignalDataset):
    """Clips (N, C, T, H, W) float32 in [-1, 1] at `fps` (modality "video"), with object trajectories."""

    _ranks = (3,)

    def __init__(self, data: Tensor, labels: Tensor | None = None, *, fps: int, positions: np.ndarray | None = None,
                 velocities: np.ndarray | None = None, walls: np.ndarray | None = None, **kw) -> None:
        super().__init__(data, labels, modality="video", modality_options={"fps": int(fps)}, **kw)
        n, t = int(data.shape[0]), int(data.shape[2])
        for name, a in (("positions", positions), ("velocities", velocities)):
            if a is not None and (a.ndim != 4 or a.shape[0] != n or a.shape[2:] != (t, 2)):
                raise ValueError(f"{name} must have shape ({n}, K, {t}, 2), got {a.shape}")
        if walls is not None and walls.shape != (n, 2):
            raise ValueError(f"walls must have shape ({n}, 2), got {walls.shape}")
        self.positions = positions
        self.velocities = velocities
        self.walls = walls

    @classmethod
    def _data_doc(cls) -> str:
        return "clips must be a float32 tensor (N, C, T, H, W)"

    @property
    def fps(self) -> int:
        return int(self.modality_options["fps"])

    @property
    def frames(self) -> int:
        return int(self.data.shape[2])

    @property
    def num_objects(self) -> np.ndarray | None:
        """Objects per clip (N,) (slots whose positions are not NaN), or None without trajectories."""
        return None if self.positions is None else (~np.isnan(self.positions[:, :, 0, 0])).sum(1)


class CaptionedVideoDataset(VideoDataset):
    """A `VideoDataset` whose clips carry captions (one list per clip) and attributes (one dict per clip)."""

    def __init__(self, data: Tensor, labels: Tensor | None = None, *, captions: list[list[str]], attributes: list[dict],
                 **kw) -> None:
        super().__init__(data, labels, **kw)
        check_captions(captions, attributes, len(self), "clip")
        self.captions = captions
        self.attributes = attributes

    # one caption per index, uniformly among the clip's captions (the same rule as captioned images)
    sample_captions = CaptionedImageDataset.sample_captions

