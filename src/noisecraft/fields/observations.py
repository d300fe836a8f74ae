"""Sparse point observations of a field: the OBS.npz file and the linear operator A that takes them.

OBS.npz (a plain `numpy.savez` file, read by `io_safety.read_npz_numbers`: never unpickled) holds

    idx        (M, 2) integers, the (row, column) pixel of each observation, 0 <= row < H, 0 <= col < W, distinct
    values     (M,) for a 1-channel field, or (M, C): every channel at each point; finite floats
    noise_std  optional scalar >= 0: the std of Gaussian noise on the values (default 0 = exact)
    channels   optional (K,) distinct channel indices: only these channels are observed, values (M, K) in
               this order (e.g. [1]: the pressure u of a Darcy pair alone); default every channel

in the dataset's normalized units (what `noisecraft data export` writes). `read_observations` checks
all of it and names the first defect on one line (DataError).

`PointObservation` is the operator y = A·x0 for the existing zero-shot inverse-problem wrappers
(`noisecraft.tasks.projection` / `dps`, ΠGDM): it picks the M·K observed entries of each sample,
point-major (y[:, m·K + k] = x[:, channels[k], row_m, col_m]); its rows are orthonormal, so Aᵀ = A⁺ and
A·Aᵀ = I.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..io.readers import DataError
from ..io_safety import read_npz_numbers
from ..tasks.operators import SparsePoints

__all__ = ["Observations", "PointObservation", "read_observations", "write_observations", "random_observations"]

_MAX_POINTS = 1 << 22


@dataclass(frozen=True)
class Observations:
    """idx (M, 2) int64 (row, col); values (M, K) float64; noise_std >= 0; channels: the K observed channels
    (None: all C, K = C)."""

    idx: Tensor
    values: Tensor
    noise_std: float = 0.0
    channels: tuple[int, ...] | None = None

    @property
    def count(self) -> int:
        return int(self.idx.shape[0])

    def observed_channels(self, num_channels: int) -> tuple[int, ...]:
        """The observed channel indices of a field of `num_channels` channels, in the order of values' columns."""
        return tuple(range(num_channels)) if self.channels is None else self.channels

    def operator(self, shape: Sequence[int]) -> "PointObservation":
        return PointObservation(self.idx, shape, self.channels)

    def measurement(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """y (1, M·C) in the operator's point-major order."""
        return self.values.reshape(1, -1).to(dtype)


def _checked_channels(channels: Sequence[int], c: int) -> tuple[int, ...]:
    """`channels` as a tuple of distinct indices of a c-channel field, or a ValueError naming them."""
    chans = tuple(int(v) for v in channels)
    if not chans or len(set(chans)) != len(chans) or any(not 0 <= v < c for v in chans):
        raise ValueError(f"channels {list(chans)} must be distinct indices in 0..{c - 1} of a {c}-channel field")
    return chans


class PointObservation(SparsePoints):
    """Observe K channels (default all C) of a (C, H, W) field at M pixels: x (B, C, H, W) -> y (B, M·K), point-major."""

    def __init__(self, idx: Tensor | np.ndarray, shape: Sequence[int], channels: Sequence[int] | None = None):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"PointObservation needs a field shape (C, H, W), got {shape}")
        c, h, w = shape
        chans = torch.arange(c) if channels is None else torch.as_tensor(_checked_channels(channels, c), dtype=torch.long)
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long).reshape(-1, 2)
        flat = idx[:, 0] * w + idx[:, 1]  # (M,)
        indices = (flat[:, None] + chans[None, :] * (h * w)).reshape(-1)  # (M·K,) point-major
        super().__init__(indices, shape)
        self.idx, self.channels = idx, tuple(chans.tolist())


def _fail(path: Path, what: str) -> DataError:
    return DataError(f"observations file {str(path)!r}: {what}")


def read_observations(path: str | os.PathLike, shape: Sequence[int]) -> Observations:
    """OBS.npz (module notes) for fields of shape (C, H, W), checked; DataError naming the first defect."""
    path = Path(path)
    c, h, w = (int(s) for s in shape)
    if not path.is_file():
        raise _fail(path, "does not exist" if not path.exists() else "is not a file")
    try:
        arrays = read_npz_numbers(path, max_elements=_MAX_POINTS * 2 * max(c, 1))  # header-checked, never unpickled
    except DataError as e:
        raise _fail(path, f"is not a readable NPZ of numeric arrays ({str(e).split(': ', 1)[-1][:160]})") from None
    keys = set(arrays)
    missing = [k for k in ("idx", "values") if k not in keys]
    if missing:
        raise _fail(path, f"missing key {missing[0]!r} (keys: {', '.join(sorted(keys)) or 'none'}); valid: "
                          "idx (M, 2) int, values (M,) or (M, C) float, optional noise_std")
    extra = sorted(keys - {"idx", "values", "noise_std", "channels"})
    if extra:
        raise _fail(path, f"unknown key {extra[0]!r}; valid keys: idx, values, noise_std, channels")
    idx, values = arrays["idx"], arrays["values"]
    if idx.dtype.kind not in "iu" or idx.ndim != 2 or idx.shape[1] != 2:
        raise _fail(path, f"idx is {idx.dtype} {idx.shape}; valid: integers of shape (M, 2) (row, column)")
    m = idx.shape[0]
    if not 1 <= m <= min(h * w, _MAX_POINTS):
        raise _fail(path, f"idx holds {m} points; valid: 1..{h * w} for a {h}x{w} field")
    bad = np.nonzero((idx[:, 0] < 0) | (idx[:, 0] >= h) | (idx[:, 1] < 0) | (idx[:, 1] >= w))[0]
    if len(bad):
        raise _fail(path, f"idx[{bad[0]}] = {idx[bad[0]].tolist()} is outside the {h}x{w} field; valid: 0 <= row < {h}, "
                          f"0 <= column < {w}")
    flat = idx[:, 0].astype(np.int64) * w + idx[:, 1]
    if len(np.unique(flat)) != m:
        uniq, counts = np.unique(flat, return_counts=True)
        dup = int(uniq[counts > 1][0])
        raise _fail(path, f"idx names pixel {[dup // w, dup % w]} more than once; each point must be distinct")
    channels = _read_channels(path, arrays.get("channels"), c)
    k = c if channels is None else len(channels)
    if values.dtype.kind not in "fiu":
        raise _fail(path, f"values has dtype {values.dtype}; valid: floats")
    given = values.shape
    if values.ndim == 1 and k == 1:
        values = values[:, None]
    if values.shape != (m, k):
        what = f"the field {c} channel(s)" if channels is None else f"channels {list(channels)} are observed"
        want = f"({m},) or ({m}, 1)" if k == 1 else f"({m}, {k}) (every observed channel at each point)"
        raise _fail(path, f"values has shape {given} but idx has {m} points and {what}; valid: {want}")
    finite = np.isfinite(values.astype(np.float64))
    if not finite.all():
        i = int(np.argwhere(~finite)[0][0])
        raise _fail(path, f"values[{i}] is not finite ({values[i].tolist()}); NaN/Inf are not observations")
    noise = 0.0
    if "noise_std" in arrays:
        ns = arrays["noise_std"]
        if ns.dtype.kind not in "fiu" or ns.size != 1 or not math.isfinite(float(ns.reshape(-1)[0])) or float(ns.reshape(-1)[0]) < 0:
            raise _fail(path, f"noise_std is {ns.dtype} {ns.shape} {ns.reshape(-1)[:3].tolist()}; valid: one finite number >= 0")
        noise = float(ns.reshape(-1)[0])
    return Observations(torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(values.astype(np.float64)), noise,
                        channels)


def _read_channels(path: Path, arr: np.ndarray | None, c: int) -> tuple[int, ...] | None:
    if arr is None:
        return None
    ok = arr.dtype.kind in "iu" and arr.ndim == 1 and 1 <= arr.size <= c
    chans = arr.astype(np.int64).tolist() if ok else []
    if not ok or any(not 0 <= v < c for v in chans) or len(set(chans)) != len(chans):
        raise _fail(path, f"channels is {arr.dtype} {arr.shape} {arr.reshape(-1)[:8].tolist()}; valid: 1..{c} distinct "
                          f"integers in 0..{c - 1} (the observed channels of this {c}-channel field)")
    return tuple(chans)


def write_observations(path: str | os.PathLike, obs: Observations) -> Path:
    """Write `obs` as OBS.npz (values (M,) for one channel)."""
    path = Path(path)
    vals = obs.values.numpy()
    extra = {} if obs.channels is None else {"channels": np.asarray(obs.channels, dtype=np.int64)}
    np.savez(path, idx=obs.idx.numpy().astype(np.int64), values=vals[:, 0] if vals.shape[1] == 1 else vals,
             noise_std=np.float64(obs.noise_std), **extra)
    return path


def random_observations(field: Tensor, fraction: float, seed: int, noise_std: float = 0.0,
                        channels: Sequence[int] | None = None) -> Observations:
    """Observe `fraction` of the pixels of one field (C, H, W), chosen uniformly without replacement
    from `seed`, with Gaussian noise of std `noise_std` on every value; `channels` (default all) at each pixel.
    The pixels do not depend on `channels`."""
    c, h, w = field.shape
    chans = None if channels is None else _checked_channels(channels, c)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    m = max(1, int(round(fraction * h * w)))
    rng = np.random.Generator(np.random.PCG64(seed))
    flat = np.sort(rng.choice(h * w, size=m, replace=False))
    idx = np.stack([flat // w, flat % w], 1)
    vals = field.to(torch.float64)[:, idx[:, 0], idx[:, 1]].T.numpy()  # (M, C)
    vals = vals + noise_std * rng.standard_normal(vals.shape)  # every channel's noise: the same draw for any subset
    if chans is not None:
        vals = vals[:, list(chans)]
    return Observations(torch.from_numpy(idx), torch.from_numpy(np.ascontiguousarray(vals)), float(noise_std), chans)
