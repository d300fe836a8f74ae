"""The moving-shapes video judge: does a clip show its caption's colour, shape and motion?

Text-to-video on the built-in `moving-shapes` data is scored by reading the three attributes off a
clip with plain measurements of its one object, each checked on real clips and on corruptions made
to break it (`benchmarks/moving_shapes_judge.py`, docs/video.md):

* **Object**: per frame, the background is the per-channel median (the object covers under 10 % of
  a frame); a pixel's contrast d is its RGB distance from it (8-bit steps). A frame whose largest d
  is under `MIN_CONTRAST` shows no object.
* **Colour**: the mean RGB of the frame's core pixels (d >= `CORE` x the largest d; interior pixels
  are the pure colour, edges are mixed with the background) is read as the nearest palette colour
  of the `shapes` renderer, or as none when it is farther than `COLOR_TOL` from all six.
* **Coverage**: alpha = the projection of (pixel - background) on (colour - background), clipped to
  [0, 1], kept within `WINDOW` px of the core pixels' centre and where it is at least `ALPHA_FLOOR`
  (faint noise elsewhere is not object); this inverts the renderer's "over" compositing, so on real
  clips alpha is the anti-aliased coverage.
* **Shape**: rotation-, scale- and translation-invariant complex moments of alpha about its
  centroid (Flusser & Suk 2006): C_pq = sum alpha z^p conj(z)^q, z = (col + i row) - centroid,
      tau3 = |C_30| / A^2.5,  tau4 = |C_40| / A^3,  A = sum alpha.
  An n-fold symmetric shape has C_pq = 0 unless n divides p - q, so a circle has tau3 = tau4 = 0, a
  square only tau4 (1/60 exactly), an equilateral triangle only tau3 (`TRIANGLE_TAU3`). A frame
  shows a triangle when tau3 is at least half a triangle's, else a square when tau4 is at least half
  a square's, else a circle (3-fold first: a small pixelated triangle also shows some 4-fold
  moment, circles and squares no 3-fold one). No classifier is fitted: the thresholds are halfway
  to the ideal shapes' moments.
* A clip shows a colour (shape) when at least `IDENTITY_SHARE` (90 %) of its frames show it.
* **Motion**: the alpha centroids of the frames form a path (T, 2), classified with the dataset's
  own motion definitions (`noisecraft.data.moving_shapes`):
  - too little travel (under half the data's slowest linear motion) -> "static";
  - a path within `MOTION_TOL` px RMS of one constant velocity -> the linear motion whose direction
    (8 sectors of 45 degrees) holds the velocity;
  - a path that turns (>= `TURN_MIN` px back) and fits a constant speed with elastic reflections
    along one axis (walls a span of `BOUNCE_SPANS` apart, any position; `video_motion.fit_bounce_axis`)
    while the other axis stays put, within `MOTION_TOL` and better than the line -> bouncing up and
    down / left and right;
  - otherwise "irregular". Frames without an object -> "no object".
  Lengths are at 32x32 and scale with the frame side.

    reading = read_moving_shapes(clips)                  # per clip: colour, shape, motion ids (-1 = none)
    rates = follow_rates(clips, dataset.attributes)      # {"color", "shape", "motion", "all"}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.moving_shapes import MOTIONS
from ..data.shapes import COLORS, PALETTE, SHAPES
from .shapes_judge import attribute_id
from .video_motion import IDENTITY_SHARE, fit_bounce_axis

__all__ = ["MovingShapesReading", "read_moving_shapes", "judge_moving_shapes", "follow_rates", "motion_of_path",
           "motion_attributes", "JUDGE_ATTRIBUTES", "MOTION_REASONS"]

JUDGE_ATTRIBUTES = ("color", "shape", "motion")
_NAMES = {"color": COLORS, "shape": SHAPES, "motion": MOTIONS}
MIN_CONTRAST = 48.0  # 8-bit steps; every palette colour is >= 150 from every background gray (8..40)
CORE = 0.7
ALPHA_FLOOR = 0.2
WINDOW = 9.0  # px at 32x32: coverage counts within this distance of the core's centre (the largest real
              # shape reaches 6.25 px from its centre), so noise elsewhere in the frame does not move the moments
MIN_AREA = 4.0  # px of coverage at 32x32; the smallest real shape (a triangle of r = 3.5) covers ~25
_PAIRS = np.linalg.norm(PALETTE[:, None] - PALETTE[None], axis=-1)
COLOR_TOL = float(_PAIRS[np.triu_indices(len(PALETTE), 1)].min() / 2)  # half the closest pair (blue-cyan): 61
SQUARE_TAU4 = 1.0 / 60.0  # |C_40| / A^3 of a square of half-side h: (16/15) h^6 / (4 h^2)^3
TRIANGLE_TAU3 = 0.06754  # |C_30| / A^2.5 of an equilateral triangle (numerical integration, tested)
# motion, in px at 32x32 (times side / 32)
MOTION_TOL = 1.0  # RMS distance between the path and its model
LINEAR_CLEAR = 0.25  # a path this close to a line is linear; no bounce is fitted
TURN_MIN = 1.0  # a bounce turns back at least this far within the clip
MIN_TRAVEL_SPEED = 0.3  # px/frame: half the data's slowest linear speed (0.6)
BOUNCE_SPANS = tuple(np.arange(14.0, 22.01, 0.5))  # the data's wall spans are 31 - 3 r = 16..20.5 px, with slack
MAX_BOUNCE_SPEED = 3.3  # px/frame: 1.5x the data's fastest bounce (2.2)
_CHUNK = 64  # clips measured at once
MOTION_REASONS = ("linear", "bounce", "static", "irregular", "no object")
# (row, col) of the 8 linear motions by 45-degree sector, counter-clockwise from "right" (row axis points down)
_SECTOR_MOTION = tuple(MOTIONS.index(m) for m in ("right", "up-right", "up", "up-left", "left", "down-left", "down",
                                                   "down-right"))
_BOUNCE_MOTION = {0: MOTIONS.index("bounce-vertical"), 1: MOTIONS.index("bounce-horizontal")}  # by axis (row, col)


@dataclass
class MovingShapesReading:
    """What the judge read off N clips of T frames. Clip-level ids are -1 where nothing qualifies."""

    color: np.ndarray  # (N,) colour id shown in >= 90 % of frames, else -1
    shape: np.ndarray  # (N,)
    motion: np.ndarray  # (N,) motion id, -1 = static / irregular / no object
    motion_reason: list[str]  # (N,) one of MOTION_REASONS
    motion_residual: np.ndarray  # (N,) RMS px (at the clip's size) between the path and the chosen model (NaN: none)
    frame_color: np.ndarray  # (N, T) per-frame colour ids (-1: no object or no palette colour)
    frame_shape: np.ndarray  # (N, T)
    frame_tau: np.ndarray  # (N, T, 2) tau3, tau4 (NaN without an object)
    path: np.ndarray  # (N, T, 2) alpha centroid (row, col) px, NaN without an object


def _check_clips(clips: Any) -> Tensor:
    if not isinstance(clips, Tensor) or clips.ndim != 5 or clips.shape[0] == 0 or clips.shape[1] != 3:
        raise ValueError("the moving-shapes judge reads RGB clips (N, 3, T, H, W) in [-1, 1], got "
                         f"{tuple(clips.shape) if isinstance(clips, Tensor) else type(clips).__name__}")
    n, _, t, h, w = clips.shape
    if h != w or h < 8:
        raise ValueError(f"the moving-shapes judge reads square frames of side >= 8, got {h}x{w}")
    if not clips.is_floating_point() or not bool(torch.isfinite(clips).all()):
        raise ValueError("clips must be finite floating-point values in [-1, 1]")
    return clips


def _frames(clips: Tensor) -> dict[str, np.ndarray]:
    """Per-frame object measurements of clips (N, 3, T, R, R)."""
    n, _, t, r, _ = clips.shape
    k = r / 32.0
    x = ((clips.detach().to("cpu", torch.float64).clamp(-1, 1) + 1.0) * 127.5).transpose(1, 2).reshape(n * t, 3, r, r)
    bg = x.flatten(2).median(-1).values  # (F, 3)
    diff = x - bg[:, :, None, None]
    d = diff.norm(dim=1)  # (F, R, R)
    dmax = d.flatten(1).max(-1).values
    core = d >= CORE * dmax[:, None, None]
    color = (x * core[:, None]).sum((2, 3)) / core.sum((1, 2)).clamp_min(1)[:, None]  # (F, 3)
    cdir = color - bg
    alpha = ((diff * cdir[:, :, None, None]).sum(1) / (cdir.norm(dim=1) ** 2).clamp_min(1e-9)[:, None, None]).clamp(0, 1)
    grid = torch.arange(r, dtype=torch.float64) + 0.5
    ncore = core.sum((1, 2)).clamp_min(1)
    ky, kx = (core.sum(2) * grid).sum(1) / ncore, (core.sum(1) * grid).sum(1) / ncore  # centre of the core pixels
    near = (grid[None, :, None] - ky[:, None, None]) ** 2 + (grid[None, None, :] - kx[:, None, None]) ** 2 \
        <= (WINDOW * k) ** 2
    alpha = torch.where((alpha < ALPHA_FLOOR) | ~near, torch.zeros_like(alpha), alpha)
    area = alpha.sum((1, 2))
    present = (dmax >= MIN_CONTRAST) & (area >= MIN_AREA * k * k)
    safe = area.clamp_min(1e-9)
    cy = (alpha.sum(2) * grid).sum(1) / safe
    cx = (alpha.sum(1) * grid).sum(1) / safe
    z = (grid[None, None, :] - cx[:, None, None]) + 1j * (grid[None, :, None] - cy[:, None, None])
    a = alpha.to(torch.complex128)
    tau3 = (a * z ** 3).sum((1, 2)).abs() / safe ** 2.5
    tau4 = (a * z ** 4).sum((1, 2)).abs() / safe ** 3
    pal = torch.from_numpy(PALETTE.astype(np.float64))
    dist = (color[:, None, :] - pal[None]).norm(dim=-1)  # (F, 6)
    cdist, cid = dist.min(1)
    cid = torch.where(present & (cdist <= COLOR_TOL), cid, torch.full_like(cid, -1))
    # 3-fold first: circles and squares have none, while a small pixelated triangle shows some 4-fold
    sid = torch.where(tau3 >= 0.5 * TRIANGLE_TAU3, 2, torch.where(tau4 >= 0.5 * SQUARE_TAU4, 1, 0))
    sid = torch.where(present, sid, torch.full_like(sid, -1))
    path = torch.stack([cy, cx], -1)
    nan = torch.full_like(path, float("nan"))
    return {"color": cid.reshape(n, t).numpy(), "shape": sid.reshape(n, t).numpy(),
            "tau": torch.where(present[:, None], torch.stack([tau3, tau4], -1), nan).reshape(n, t, 2).numpy(),
            "path": torch.where(present[:, None], path, nan).reshape(n, t, 2).numpy()}


def _majority(ids: np.ndarray, share: float = IDENTITY_SHARE) -> np.ndarray:
    """Per row of (N, T) ids: the most frequent id >= 0 if it fills >= share of the row, else -1."""
    out = np.full(ids.shape[0], -1, dtype=np.int64)
    for i, row in enumerate(ids):
        valid = row[row >= 0]
        if len(valid):
            counts = np.bincount(valid)
            if counts.max() >= share * len(row) - 1e-9:
                out[i] = int(counts.argmax())
    return out


def _rms(residual: np.ndarray) -> float:
    return float(np.sqrt((residual ** 2).sum(-1).mean())) if residual.ndim == 2 else float(np.sqrt((residual ** 2).mean()))


def motion_of_path(path: np.ndarray, side: int) -> tuple[int, str, float]:
    """(motion id or -1, reason in MOTION_REASONS, RMS residual px) of a centroid path (T, 2) (row, col)
    in a clip of side x side pixels (see the module docstring)."""
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or path.shape[0] < 2:
        raise ValueError(f"path must be an array (T, 2) with T >= 2, got shape {path.shape}")
    if not np.isfinite(path).all():
        return -1, "no object", float("nan")
    k, t_n = side / 32.0, path.shape[0]
    t = np.arange(t_n, dtype=np.float64)
    design = np.stack([np.ones_like(t), t], 1)
    coef, *_ = np.linalg.lstsq(design, path, rcond=None)  # (2, 2): start, velocity
    v = coef[1]
    e_lin = _rms(path - design @ coef)
    travel = max(float(np.linalg.norm(v)) * (t_n - 1), float((path.max(0) - path.min(0)).max()))
    if travel < MIN_TRAVEL_SPEED * min(t_n - 1, 15) * k:
        return -1, "static", e_lin
    best: tuple[float, int] | None = None
    if e_lin > LINEAR_CLEAR * k:
        for axis in (0, 1):
            across = path[:, 1 - axis] - path[:, 1 - axis].mean()
            if _rms(across) > MOTION_TOL * k:
                continue
            along = path[:, axis]
            fits = [fit_bounce_axis(along, s * k, max_speed=MAX_BOUNCE_SPEED * k) for s in BOUNCE_SPANS]
            fit = min(fits, key=lambda f: float(((along - f) ** 2).sum()))
            back = (np.abs(np.diff(fit)).sum() - abs(fit[-1] - fit[0])) / 2.0
            e_b = float(np.sqrt(((along - fit) ** 2).mean() + (across ** 2).mean()))
            if back >= TURN_MIN * k and e_b <= MOTION_TOL * k and e_b < e_lin and (best is None or e_b < best[0]):
                best = (e_b, axis)
    if best is not None:
        return _BOUNCE_MOTION[best[1]], "bounce", best[0]
    if e_lin <= MOTION_TOL * k:
        angle = np.degrees(np.arctan2(-v[0], v[1]))  # counter-clockwise from "right"; rows grow downwards
        return _SECTOR_MOTION[int(np.round(angle / 45.0)) % 8], "linear", e_lin
    return -1, "irregular", e_lin


def read_moving_shapes(clips: Tensor) -> MovingShapesReading:
    """Colour, shape and motion of every clip (N, 3, T, R, R) in [-1, 1] (see the module docstring)."""
    clips = _check_clips(clips)
    parts = [_frames(clips[i:i + _CHUNK]) for i in range(0, clips.shape[0], _CHUNK)]  # bounded memory
    f = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    side = int(clips.shape[-1])
    motions = [motion_of_path(p, side) for p in f["path"]]
    return MovingShapesReading(
        color=_majority(f["color"]), shape=_majority(f["shape"]),
        motion=np.array([m for m, _, _ in motions], dtype=np.int64), motion_reason=[r for _, r, _ in motions],
        motion_residual=np.array([e for _, _, e in motions]), frame_color=f["color"], frame_shape=f["shape"],
        frame_tau=f["tau"], path=f["path"])


def _id(key: str, value: Any) -> int:
    return attribute_id(key, value, _NAMES[key])


def motion_attributes(attributes: Sequence[Mapping[str, Any]] | np.ndarray, n: int) -> np.ndarray:
    """(n, 3) colour, shape, motion ids from a dataset's `attributes` (dicts of ids or names) or an (n, 3) array."""
    if isinstance(attributes, np.ndarray) or isinstance(attributes, Tensor):
        arr = np.asarray(attributes)
        if arr.shape != (n, 3):
            raise ValueError(f"attributes must be (N, 3) = ({n}, 3) colour, shape, motion ids, got {arr.shape}")
        rows = [{k: v for k, v in zip(JUDGE_ATTRIBUTES, row.tolist())} for row in arr]
    else:
        rows = list(attributes)
        if len(rows) != n:
            raise ValueError(f"got {len(rows)} attribute rows for {n} clips")
    out = np.empty((n, 3), dtype=np.int64)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or any(k not in row for k in JUDGE_ATTRIBUTES):
            raise ValueError(f"attribute row {i} must name color, shape and motion, got {row!r}")
        out[i] = [_id(k, row[k]) for k in JUDGE_ATTRIBUTES]
    return out


def judge_moving_shapes(clips: Tensor, attributes: Sequence[Mapping[str, Any]] | np.ndarray,
                        reading: MovingShapesReading | None = None) -> np.ndarray:
    """(N, 3) bool: does clip i show the colour, the shape, the motion of its attributes (a dataset's
    `attributes`, or `parse_motion_caption` of its prompt)?"""
    want = motion_attributes(attributes, int(_check_clips(clips).shape[0]))
    got = reading if reading is not None else read_moving_shapes(clips)
    return np.stack([got.color == want[:, 0], got.shape == want[:, 1], got.motion == want[:, 2]], 1)


def follow_rates(clips: Tensor, attributes: Sequence[Mapping[str, Any]] | np.ndarray,
                 reading: MovingShapesReading | None = None) -> dict[str, float]:
    """Share of clips that follow each attribute ("color", "shape", "motion") and all three ("all")."""
    hits = judge_moving_shapes(clips, attributes, reading)
    return {**{k: float(hits[:, i].mean()) for i, k in enumerate(JUDGE_ATTRIBUTES)}, "all": float(hits.all(1).mean())}
