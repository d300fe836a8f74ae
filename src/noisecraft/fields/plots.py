"""Heat maps of reconstructions: one PNG per quantity (mean, std, error), channels side by side."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.files import atomic_write_bytes
from ..io.images import save_image
from ..modalities.array import heat_colors, tile, upscale

__all__ = ["write_heat_map", "write_posterior_npz"]


def write_heat_map(x: Tensor, path: str | os.PathLike, *, lo: float | None = None, hi: float | None = None,
                   scale: int = 4) -> Path:
    """A field (C, H, W) as viridis heat maps (one per channel, left to right) on the range [lo, hi]
    (default: the field's own min and max), enlarged `scale` times by pixel repetition."""
    v = x.detach().to(torch.float64).cpu().numpy()
    lo = float(np.min(v)) if lo is None else lo
    hi = float(np.max(v)) if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    panels = [upscale(heat_colors(2 * (ch - lo) / span - 1), scale) for ch in v]
    img = tile(panels, len(panels), gap=scale)
    return save_image(torch.from_numpy(img.transpose(2, 0, 1)).float() * 2 - 1, path)


def write_posterior_npz(path: str | os.PathLike, samples: Tensor, mean: Tensor, std: Tensor) -> Path:
    """posterior.npz: samples (n, C, H, W), mean and std (C, H, W), float32, written atomically."""
    buf = io.BytesIO()
    np.savez(buf, samples=samples.detach().float().cpu().numpy(), mean=mean.detach().float().cpu().numpy(),
             std=std.detach().float().cpu().numpy())
    return atomic_write_bytes(path, buf.getvalue())
