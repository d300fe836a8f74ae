"""NPZ data files: one float32 array under the key "x", written atomically, read without pickle.

The file is a plain `numpy.savez` archive (uncompressed), so anything that reads NumPy reads it.
Reading never unpickles: the member's header is checked (key, dtype, shape) before its data is
read, `allow_pickle=False` refuses object arrays, and NaN/Inf are refused. Every defect is a
`DataError` that names the file and what would be valid, on one line.
"""

from __future__ import annotations

import io as _io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .files import atomic_write
from .readers import DataError

__all__ = ["NPZ_KEY", "save_npz", "read_npz"]

NPZ_KEY = "x"
_FLOAT_KINDS = (np.float16, np.float32, np.float64)  # read and cast to float32; anything else is refused


def save_npz(x: Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write `x` (any shape) as float32 under key "x". Non-finite values are refused (the reader would refuse them)."""
    arr = x.detach().to("cpu", torch.float32).numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
    bad = int(arr.size - np.isfinite(arr).sum())
    if bad:
        raise ValueError(f"cannot write {str(path)!r}: the array has {bad} non-finite value(s) (NaN/Inf); NPZ data files must be finite")
    buf = _io.BytesIO()
    np.savez(buf, **{NPZ_KEY: np.ascontiguousarray(arr)})
    data = buf.getvalue()
    return atomic_write(path, lambda f: f.write(data))


def _header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(s) for s in shape), np.dtype(dtype)


def read_npz(path: str | os.PathLike, shape: Sequence[int] | None = None) -> Tensor:
    """Read the float array "x" of an NPZ file -> float32 tensor. `shape`: the exact shape it must have."""
    path = Path(path)
    want = None if shape is None else tuple(int(s) for s in shape)
    if not path.is_file():
        raise DataError(f"NPZ file {str(path)!r} {'is not a file' if path.exists() else 'does not exist'}")
    member = NPZ_KEY + ".npy"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if member not in names:
                keys = sorted(n[:-4] if n.endswith(".npy") else n for n in names)
                raise DataError(f"NPZ file {str(path)!r} has no array {NPZ_KEY!r} (keys: {', '.join(keys) or 'none'}); "
                                f"save the data as numpy.savez(path, {NPZ_KEY}=array)")
            got_shape, dtype = _header(zf, member)
            if dtype.hasobject or dtype.type not in _FLOAT_KINDS:
                raise DataError(f"NPZ file {str(path)!r}: array {NPZ_KEY!r} has dtype {dtype}; valid: float16, float32, float64 "
                                "(object/pickled arrays are never loaded)")
            if want is not None and got_shape != want:
                raise DataError(f"NPZ file {str(path)!r}: array {NPZ_KEY!r} has shape {got_shape}; expected {want}")
            with zf.open(member) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
    except DataError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - not a zip, truncated, bad header: all mean "unreadable file"
        raise DataError(f"cannot read NPZ file {str(path)!r}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    arr = np.asarray(arr, dtype=np.float32)
    bad = int(arr.size - np.isfinite(arr).sum())
    if bad:
        raise DataError(f"NPZ file {str(path)!r}: array {NPZ_KEY!r} has {bad} non-finite value(s) (NaN/Inf); data must be finite")
    return torch.from_numpy(np.ascontiguousarray(arr))
