"""The array modality: any (C, *spatial) of spatial rank 1-3, stored bitwise as NPZ ("x", float32).

This is the fallback for signals without a dedicated modality (1-D series, 3-D stacks, fields with
any channel count) and the base the later audio / video / field modalities build on: they keep the
shape rules and override the file format and/or `panel` (how one sample is drawn).

Previews draw each sample as one panel and tile the panels in a grid (`nrow` per row), enlarged by
the display scale `ARRAY_DISPLAY_SCALE` (nearest-neighbour, so cells stay crisp):

* rank 1 (C, L): a line plot, L*s wide and LINE_HEIGHT*s high, one colour per channel (tab10),
  on a dark background with faint lines at -1, 0 and +1; values outside [-1, 1] are clipped to the frame.
* rank 2 (C, H, W): one viridis heat map per channel, stacked vertically.
* rank 3 (C, T, H, W): per channel a strip of the T frames as heat maps (one row per channel).

Heat maps use the fixed data range [-1, 1] (not a per-sample normalization), so previews from
different steps of a run can be compared; NaN is drawn at the middle of the colour map.
The NPZ data file itself is never scaled: `scale` only applies to previews.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.arrays import read_npz, save_npz
from .base import Modality, check_nrow, check_scale, to_float_cpu

__all__ = ["ArrayModality", "ARRAY_DISPLAY_SCALE", "LINE_HEIGHT", "heat_colors"]

ARRAY_DISPLAY_SCALE = 4
LINE_HEIGHT = 32  # height of a 1-D line plot in source pixels (times the display scale)
GUTTER = (0.85, 0.85, 0.85)  # light gray between frames and between panels: distinct from viridis' dark end
_LINE_BG = np.array([0.08, 0.08, 0.08])
_LINE_GUIDE = np.array([0.28, 0.28, 0.28])
_LUT: np.ndarray | None = None


def _tab10() -> np.ndarray:
    from matplotlib import colormaps  # colour tables only; no figure is drawn

    return np.asarray(colormaps["tab10"].colors, dtype=np.float64)  # (10, 3)


def heat_colors(v: np.ndarray) -> np.ndarray:
    """Values (...) in [-1, 1] -> viridis RGB (..., 3) in [0, 1] (clipped; NaN -> middle colour)."""
    global _LUT
    if _LUT is None:
        from matplotlib import colormaps

        _LUT = np.asarray(colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3], dtype=np.float64)  # (256, 3)
    u = np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0)
    idx = np.rint((np.clip(u, -1.0, 1.0) + 1.0) * 127.5).astype(np.int64)
    return _LUT[idx]


def upscale(img: np.ndarray, s: int) -> np.ndarray:
    """(h, w, 3) -> (h*s, w*s, 3) by pixel repetition."""
    return img if s == 1 else np.repeat(np.repeat(img, s, axis=0), s, axis=1)


def tile(panels: Sequence[np.ndarray], ncol: int, gap: int, fill: Sequence[float] = GUTTER) -> np.ndarray:
    """Equal-size panels (h, w, 3) -> one (rows*(h+gap)+gap, cols*(w+gap)+gap, 3) image, row-major,
    `ncol` per row (fewer if there are fewer panels), `gap` pixels of `fill` around every panel."""
    n = len(panels)
    h, w = panels[0].shape[:2]
    cols = min(ncol, n)
    rows = math.ceil(n / cols)
    out = np.empty((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), dtype=np.float64)
    out[:] = np.asarray(fill, dtype=np.float64)
    for i, p in enumerate(panels):
        top, left = gap + (i // cols) * (h + gap), gap + (i % cols) * (w + gap)
        out[top : top + h, left : left + w] = p
    return out


def panel_grid(m: Modality, x: Tensor, *, nrow: int, scale: int | None) -> Tensor:
    """A batch (N, C, *spatial) -> one preview (3, H, W): `m.panel(sample, s)` of every sample, tiled
    `nrow` per row with gutters, at the display scale s (the previews of array and audio data)."""
    m.check_batch(x)
    s = check_scale(scale, m.display_scale)
    ncol = check_nrow(nrow)
    panels = [m.panel(a, s) for a in to_float_cpu(x).numpy()]
    img = tile(panels, ncol, gap=2 * s)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(torch.float32).clamp(0.0, 1.0)


class ArrayModality(Modality):
    name = "array"
    ranks = (1, 2, 3)
    file_ext = ".npz"
    display_scale = ARRAY_DISPLAY_SCALE

    # --- files --------------------------------------------------------------------------------------
    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        """Bitwise float32 NPZ; `scale` is checked but does not apply to data files."""
        self.check_sample(x)
        check_scale(scale, self.display_scale)
        return save_npz(x, self.check_path(path))

    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None) -> Tensor:
        self.check_shape(shape)
        check_scale(scale, self.display_scale)
        return read_npz(path, shape)

    # --- previews -----------------------------------------------------------------------------------
    def preview_image(self, x: Tensor, *, nrow: int, scale: int | None = None) -> Tensor:
        return panel_grid(self, x, nrow=nrow, scale=scale)

    def panel(self, x: np.ndarray, s: int) -> np.ndarray:
        """One sample (C, *spatial) -> RGB (h, w, 3) in [0, 1]; the hook a subclass overrides."""
        if x.ndim == 2:
            return self.line_panel(x, s)
        if x.ndim == 3:
            return self.frames_panel(x[:, None], s)
        return self.frames_panel(x, s)

    def line_panel(self, x: np.ndarray, s: int) -> np.ndarray:
        """(C, L) -> a line plot (LINE_HEIGHT*s, L*s, 3): each column joins the curve to the previous
        column's value with a vertical run of pixels, so the line is connected at any slope."""
        c, length = x.shape
        hgt, wid = LINE_HEIGHT * s, length * s
        img = np.empty((hgt, wid, 3), dtype=np.float64)
        img[:] = _LINE_BG
        for v in (-1.0, 0.0, 1.0):
            img[int(round((1.0 - (v + 1.0) / 2.0) * (hgt - 1)))] = _LINE_GUIDE
        t = (np.arange(wid) + 0.5) / s - 0.5  # column centres in sample units
        rows = np.arange(hgt)[:, None]
        colors = _tab10()
        for ch in range(c):
            v = np.interp(t, np.arange(length), np.clip(x[ch].astype(np.float64), -1.0, 1.0))  # NaN propagates
            y = (1.0 - (v + 1.0) / 2.0) * (hgt - 1)  # row of each column
            prev = np.concatenate([y[:1], y[:-1]])
            lo, hi = np.floor(np.minimum(y, prev)), np.ceil(np.maximum(y, prev))
            on = (rows >= lo) & (rows <= hi) & np.isfinite(y)  # (hgt, wid)
            img[on] = colors[ch % len(colors)]
        return img

    def frames_panel(self, x: np.ndarray, s: int) -> np.ndarray:
        """(C, T, H, W) -> heat maps, one row per channel, one column per frame, `s` px gutters."""
        c, t, h, w = x.shape
        frames = [upscale(heat_colors(x[ch, k]), s) for ch in range(c) for k in range(t)]
        return tile(frames, t, gap=s)[s:-s, s:-s]  # no outer border: the panel grid adds one
