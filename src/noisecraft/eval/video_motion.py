"""Motion measures of clips (N, C, T, H, W) in [-1, 1] with one bright object on a dark background.

* `centroids(clips)`: the ink centroid (row, col) of every frame in pixels (pixel (i, j) covers
  [i, i+1) x [j, j+1), as `ds.positions`); ink = (x + 1)/2 clipped to [0, 1], averaged over channels.
  NaN for a frame without ink.
* `fit_bounce(path, span)`: the best constant-velocity-with-reflections path for a centroid path
  (T, 2), each axis on its own (elastic reflection keeps the axes independent):
      c(t) = a + tri(u0 + s·t),  tri(w) = L - |L - (w mod 2L)|
  the closed form of `noisecraft.data.video.bounce` with walls a and a + L. The wall span L is known
  (the dataset's `walls`: the object's centre stays within them); the walls' position a is free, because
  the ink centroid sits at a fixed offset from the sprite centre the data's walls bound. For each
  (u0, s) the best a is the mean of c - tri (least squares), so (u0, s) is searched on a grid
  (s in [0, min(L, s_max)], u0 in [0, 2L)) and refined on a finer grid around the best point.
* `trajectory_residuals(clips, span)`: per clip, the RMS distance (px) between the centroid path and
  its fit; ≈ 0 for real clips (a rigid sprite's centroid moves exactly like its centre), large for
  jumps, stops, changes of speed and reversals that are not a wall span apart. Since the walls'
  position is free, one reversal anywhere fits as a bounce. Clips with an empty frame get +inf (no
  object to follow).
* `identity_consistency(pred)`: per clip, the share of frames predicted as the clip's most frequent
  class, and whether it is >= 0.9.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["centroids", "fit_bounce", "fit_bounce_axis", "trajectory_residuals", "identity_consistency", "IDENTITY_SHARE", "check_clips"]

IDENTITY_SHARE = 0.9  # a clip keeps its identity when >= 90 % of its frames show the same class
_COARSE_U = 0.25  # px: coarse grid step of the phase u0
_COARSE_S = 0.05  # px/frame: coarse grid step of the speed s (at 32 px frames)
_CANDIDATES = 24  # coarse grid points refined


def check_clips(clips: Tensor, name: str = "clips") -> Tensor:
    if not isinstance(clips, Tensor) or clips.ndim != 5 or clips.shape[0] == 0 or not clips.is_floating_point():
        raise ValueError(f"{name} must be a non-empty float tensor (N, C, T, H, W), got "
                         f"{getattr(clips, 'shape', type(clips).__name__)}")
    return clips


def centroids(clips: Tensor) -> np.ndarray:
    """Ink centroids (N, T, 2) float64 (row, col) in pixels; NaN where a frame has no ink."""
    x = check_clips(clips).detach().to("cpu", torch.float64)
    ink = ((x.mean(1) + 1.0) / 2.0).clamp(0.0, 1.0)  # (N, T, H, W)
    h, w = ink.shape[-2:]
    rows = torch.arange(h, dtype=torch.float64) + 0.5
    cols = torch.arange(w, dtype=torch.float64) + 0.5
    mass = ink.sum((-2, -1))  # (N, T)
    r = (ink.sum(-1) * rows).sum(-1) / mass
    c = (ink.sum(-2) * cols).sum(-1) / mass
    out = torch.stack([r, c], -1).numpy()
    out[mass.numpy() <= 0] = np.nan
    return out


def _tri(w: np.ndarray, span: float) -> np.ndarray:
    return span - np.abs(span - np.mod(w, 2.0 * span))


def _sse(y: np.ndarray, span: float, u0: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sse, a) of one axis path y (T,) for every (u0, s) of the grid u0 x s (least-squares offset a)."""
    t = np.arange(y.shape[0], dtype=np.float64)
    f = _tri(u0[:, None, None] + s[None, :, None] * t, span)  # (U, S, T)
    a = (y - f).mean(-1)
    return ((y - f - a[..., None]) ** 2).sum(-1), a  # (U, S) each


def _refine(y: np.ndarray, span: float, u0: float, s: float, du: float, ds: float, top: float) -> tuple[float, float, float, float]:
    """Two finer grids around (u0, s), each 10x finer: the best (sse, a, u0, s)."""
    for _ in range(2):
        du, ds = du / 10.0, ds / 10.0
        us, ss = u0 + du * np.arange(-10, 11), np.clip(s + ds * np.arange(-10, 11), 0.0, top)
        sse, a = _sse(y, span, us, ss)
        i, j = np.unravel_index(int(np.argmin(sse)), sse.shape)
        u0, s = float(us[i]), float(ss[j])
    return float(sse[i, j]), float(a[i, j]), u0, s


def fit_bounce_axis(y: np.ndarray, span: float, *, max_speed: float | None = None) -> np.ndarray:
    """The best constant-speed-with-reflections path (T,) for one axis of a path, walls `span` px apart
    at a free position (see the module docstring; `fit_bounce` fits each axis with it)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or not np.isfinite(y).all():
        raise ValueError(f"y must be a finite array (T,), got shape {y.shape}")
    if not (np.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive number of pixels, got {span!r}")
    top = span * 0.999 if max_speed is None else min(float(max_speed), span * 0.999)
    k = span / 14.0  # steps scale with the frame (the wall span is 14 px at 32x32 for moving-digits)
    du, ds = _COARSE_U * k, _COARSE_S * k
    u_grid, s_grid = np.arange(0.0, 2.0 * span, du), np.arange(0.0, top + ds / 2, ds)
    sse, _ = _sse(y, span, u_grid, s_grid)
    # The coarse optimum can sit in the wrong basin (another wall position fits nearly as well at
    # coarse resolution), so the best _CANDIDATES coarse points are refined and the best kept.
    flat = np.argsort(sse, axis=None)[:_CANDIDATES]
    best = min(_refine(y, span, float(u_grid[i]), float(s_grid[j]), du, ds, top)
               for i, j in zip(*np.unravel_index(flat, sse.shape)))
    _, a, u0, s = best
    return a + _tri(u0 + s * np.arange(y.shape[0], dtype=np.float64), span)


def fit_bounce(path: np.ndarray, span: float, *, max_speed: float | None = None) -> np.ndarray:
    """The best constant-velocity-with-reflections path (T, 2) for a centroid path (T, 2) whose object
    bounces between walls `span` px apart (see the module docstring). max_speed: px/frame searched
    (default: the span, i.e. at most one bounce between frames)."""
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or not np.isfinite(path).all():
        raise ValueError(f"path must be a finite array (T, 2), got shape {path.shape}")
    return np.stack([fit_bounce_axis(path[:, axis], span, max_speed=max_speed) for axis in range(2)], 1)


def trajectory_residuals(clips: Tensor, span: float, *, max_speed: float | None = None) -> np.ndarray:
    """Per clip (N,): RMS distance in px between the ink-centroid path and its best bouncing fit
    (+inf for a clip with an empty frame)."""
    paths = centroids(clips)
    out = np.full(paths.shape[0], np.inf)
    for i, p in enumerate(paths):
        if np.isfinite(p).all():
            fit = fit_bounce(p, span, max_speed=max_speed)
            out[i] = float(np.sqrt(((p - fit) ** 2).sum(-1).mean()))
    return out


def identity_consistency(pred: np.ndarray, share: float = IDENTITY_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """(share of each clip's frames predicted as its most frequent class (N,), that share >= `share` (N,))."""
    pred = np.asarray(pred)
    if pred.ndim != 2 or pred.shape[1] == 0:
        raise ValueError(f"pred must be per-frame classes (N, T), got shape {pred.shape}")
    top = np.array([np.bincount(row.astype(np.int64)).max() for row in pred]) / pred.shape[1]
    return top, top >= share - 1e-12
