"""`export_dataset`: real examples of a built-in dataset as files, in its modality's format.

    export_dataset("digits", split="test", n=64, out="real-digits")   # 000000.png ... + labels.csv
    export_dataset("waves", split="train", n=100, out="real-waves")   # 000000.npz ... + labels.csv
    export_dataset("notes", split="test", n=32, out="real-notes")     # 000000.wav (16-bit, 8 kHz) ... + labels.csv
    export_dataset("moving-digits", split="test", n=4, out="real-md") # 000000.gif (looping, 10 fps) ... + labels.csv
    export_dataset("navier-stokes-forecast", split="test", n=8, out="ns-traj")  # 000000.npz: one trajectory each

The files are what `noisecraft sample` writes for a model of the same data (same format, same
display scale), so real and generated examples can be compared side by side, and each reads back
with `ds.get_modality().read(path, ds.sample_shape)`.

* The N examples are a seeded uniform random subset of the split, without replacement, written in
  dataset order (`subset_indices`); the same (name, split, n, seed) always gives the same files.
* `labels.csv` has the header `file,label` (label = class name; empty for unlabeled data) plus
  `caption` for captioned data (shapes: the example's first caption) and one column per physical
  parameter for data that carries them (grf-scales: `length`, the field's ℓ, as `repr` of the float).
* Forecasting data (`navier-stokes-forecast`) is exported by trajectory: N trajectories, each NPZ holding
  `trajectory` (steps + 1, C, H, W), the solver's states `interval` apart, and `field` = its first state,
  so one file is both the `--state` and the `--truth` of `noisecraft forecast`.
* `out` must not exist or be an empty folder: nothing is ever overwritten. Files are written into a
  hidden temp folder next to `out` that is renamed to `out` at the end, so an interrupted export
  leaves no half-filled folder behind.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..io.files import _UMASK, atomic_write
from .registry import BUILTIN_DATASETS, BUILTIN_SPLITS, SPLITS

__all__ = ["export_dataset", "subset_indices", "LABELS_FILE"]

LABELS_FILE = "labels.csv"


def subset_indices(size: int, n: int, seed: int) -> np.ndarray:
    """`n` distinct indices of range(size), uniformly at random from `seed`, sorted."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.sort(rng.choice(size, size=n, replace=False))


def _check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def _check_out(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"out {str(out)!r} is a file; give a new folder (or an empty one)")
        if any(out.iterdir()):
            raise ValueError(f"out {str(out)!r} is a folder that is not empty; give a new folder (files are never overwritten)")
    return out


def export_dataset(
    name: str,
    *,
    split: str,
    n: int,
    seed: int = 0,
    out: str | os.PathLike,
    scale: int | None = None,
) -> Path:
    """Write `n` examples of the built-in dataset `name` (split `split`) to the folder `out`.

    One file per example (`000000.png`, ... `.npz`, `.wav` or `.gif`, by the dataset's modality), in the order
    of the dataset, plus `labels.csv`. `scale`: the display scale of image files (None: the modality's,
    4 for images); array and audio data ignore it. Returns `out`.
    """
    if not isinstance(name, str) or name not in BUILTIN_DATASETS:
        raise ValueError(f"name {name!r} is not a built-in dataset; valid: {', '.join(sorted(BUILTIN_DATASETS))}")
    valid_splits = BUILTIN_SPLITS.get(name, SPLITS)
    if split not in valid_splits:
        raise ValueError(f"split {split!r} is not a split of {name!r}; valid: {', '.join(valid_splits)}")
    n = _check_int(n, "n", 1)
    seed = _check_int(seed, "seed", 0, 2**63 - 1)
    out = _check_out(out)
    ds = BUILTIN_DATASETS[name](split=split)
    modality = ds.get_modality()
    if scale is not None:  # validated by the modality too; checked here so a bad value fails before any work
        _check_int(scale, "scale", 1, 64)
    trajectories = getattr(ds, "trajectories", None)
    size = len(ds) if trajectories is None else len(trajectories)
    what = "examples" if trajectories is None else "trajectories"
    if n > size:
        raise ValueError(f"n {n} is larger than the {split!r} split of {name!r}, which has {size} {what}; valid: n in 1..{size}")
    idx = subset_indices(size, n, seed)
    captions = getattr(ds, "captions", None)
    pnames, pvalues = getattr(ds, "param_names", None) or [], getattr(ds, "param_values", None)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        rows = []
        for k, i in enumerate(idx.tolist()):
            fname = f"{k:06d}{modality.file_ext}"
            if trajectories is not None:
                _write_trajectory(trajectories[i], tmp / fname)
                rows.append([fname, ""])
                continue
            modality.write(ds.data[i], tmp / fname, scale=scale)
            label = ds.class_names[int(ds.labels[i])] if ds.class_names else ""
            rows.append([fname, label] + ([captions[i][0]] if captions is not None else [])
                        + ([repr(float(v)) for v in pvalues[i].tolist()] if pnames else []))
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["file", "label"] + (["caption"] if captions is not None else []) + list(pnames))
        w.writerows(rows)
        atomic_write(tmp / LABELS_FILE, lambda f: f.write(text.getvalue().encode("utf-8")))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it 0700; give the folder a plain mkdir's mode
        if out.exists():
            out.rmdir()  # empty (checked above); a file appearing since is an error here, not an overwrite
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out



def _write_trajectory(traj, path: Path) -> None:
    """One trajectory (K + 1, C, H, W) as float32 NPZ: `trajectory` and `field` (its first state)."""
    arr = np.ascontiguousarray(traj.numpy().astype(np.float32))
    buf = io.BytesIO()
    np.savez(buf, field=arr[0], trajectory=arr)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))
