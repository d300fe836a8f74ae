"""The field modality: physical fields (C, H, W) with any channel count, stored as NPZ under key "field".

A field is an array of spatial rank 2 (the `grf`, `darcy` and `navier-stokes` built-ins, and
reconstructions of them): files are plain `numpy.savez` archives holding one float32 array
`field` of shape (C, H, W), bitwise round trip, read without unpickling (shape, dtype and finiteness
checked as for the array modality). Previews are the array modality's viridis heat maps (one per
channel, fixed range [-1, 1] in the dataset's normalized units).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from ..io.arrays import read_npz, save_npz
from .array import ArrayModality
from .base import check_scale

__all__ = ["FieldModality", "FIELD_KEY"]

FIELD_KEY = "field"


class FieldModality(ArrayModality):
    name = "field"
    ranks = (2,)
    eval_features = "field-statistics"  # noisecraft.eval.field_run: power spectrum, pixel statistics, Darcy residual

    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        """Bitwise float32 NPZ under key "field"; `scale` is checked but does not apply to data files."""
        self.check_sample(x)
        check_scale(scale, self.display_scale)
        return save_npz(x, self.check_path(path), key=FIELD_KEY)

    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None) -> Tensor:
        self.check_shape(shape)
        check_scale(scale, self.display_scale)
        return read_npz(path, shape, key=FIELD_KEY)
