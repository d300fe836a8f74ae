"""NPZ data files: one float32 array under the key "x" (fields: "field"), written atomically, read without pickle.

The file is a plain `numpy.savez` archive (uncompressed), so anything that reads NumPy reads it.
Reading never unpickles (`noisecraft.io_safety.read_npz_array`, the one place untrusted files are
parsed): the member's header is checked (key, dtype, shape) before its data is read, object arrays
are refused, and NaN/Inf are refused. Every defect is a
`DataError` that names the file and what would be valid, on one line.
"""

from __future__ import annotations

import io as _io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io_safety import read_npz_array
from .files import atomic_write
from .readers import DataError

__all__ = ["NPZ_KEY", "save_npz", "read_npz"]

NPZ_KEY = "x"


def save_npz(x: Tensor | np.ndarray, path: str | os.PathLike, *, key: str = NPZ_KEY) -> Path:
    """Write `x` (any shape) as float32 under `key` ("x"; fields: "field"). Non-finite values are refused (the reader would refuse them)."""
    arr = x.detach().to("cpu", torch.float32).numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
    bad = int(arr.size - np.isfinite(arr).sum())
    if bad:
        raise ValueError(f"cannot write {str(path)!r}: the array has {bad} non-finite value(s) (NaN/Inf); NPZ data files must be finite")
    buf = _io.BytesIO()
    np.savez(buf, **{key: np.ascontiguousarray(arr)})
    data = buf.getvalue()
    return atomic_write(path, lambda f: f.write(data))


def read_npz(path: str | os.PathLike, shape: Sequence[int] | None = None, *, key: str = NPZ_KEY) -> Tensor:
    """Read the float array `key` ("x") of an NPZ file -> float32 tensor. `shape`: the exact shape it must have."""
    path = Path(path)
    want = None if shape is None else tuple(int(s) for s in shape)
    if not path.is_file():
        raise DataError(f"NPZ file {str(path)!r} {'is not a file' if path.exists() else 'does not exist'}")
    arr = read_npz_array(path, key, shape=want)  # header checked first; never unpickles
    arr = np.asarray(arr, dtype=np.float32)
    bad = int(arr.size - np.isfinite(arr).sum())
    if bad:
        raise DataError(f"NPZ file {str(path)!r}: array {key!r} has {bad} non-finite value(s) (NaN/Inf); data must be finite")
    return torch.from_numpy(np.ascontiguousarray(arr))
