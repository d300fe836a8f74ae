"""The run folder as the trainer writes it: start checks, the first files, what a resume cleans
up, metrics lines and the loss curve. (Reading runs is `noisecraft.runs`.)"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
from torch import nn

from ..config import Config
from ..runs import RUN_FORMAT, RunError, is_run, list_snapshots
from ..runs.checkpoint import atomic_write_bytes, atomic_write_text
from .ema import PowerEMA

__all__ = ["check_fresh_out", "check_free_space", "prepare_fresh_run", "truncate_metrics", "plot_losses",
           "save_snapshot", "clean_after_crash"]

# hidden temp files of the atomic writer (io.files: .NAME.tmp-PID-RANDOM; older: .NAME.tmp-PID) and plot_losses
_TEMP_FILE = re.compile(r"^\..+\.tmp(-\d+(-[0-9a-f]+)?|\.png)?$")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _start_leftover(p: Path) -> bool:
    """What a start killed before run.json (the marker, written last) can leave: config.json and
    the temp files of the two atomic writes, a latent run's copy of its autoencoder (written before
    run.json). Such a folder may be started again."""
    if p.is_dir() and p.name == "autoencoder":
        return True
    return p.is_file() and (p.name == "config.json" or p.name.startswith((".config.json.tmp-", ".run.json.tmp-")))


def check_fresh_out(out: Path) -> None:
    """Refuse an out_dir that cannot hold a new run, before any data is read or anything is created:
    a file, a folder inside a file, an existing run, a non-empty folder, or an unwritable place."""
    if out.exists() and not out.is_dir():
        raise RunError(f"out_dir {str(out)!r} is a file, not a folder")
    if out.is_dir():
        if is_run(out):
            raise RunError(f"{str(out)!r} already holds a run; resume it with `noisecraft train --resume {out}` or choose another out_dir")
        if not all(_start_leftover(p) for p in out.iterdir()):
            raise RunError(f"out_dir {str(out)!r} is a non-empty folder that is not a run; choose an empty or new folder")
        where = out
    else:  # the nearest existing ancestor is where the folder would be created
        where = next((a for a in out.absolute().parents if a.exists()), Path("/"))
        if not where.is_dir():
            raise RunError(f"out_dir {str(out)!r} cannot be created: {str(where)!r} is a file, not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise RunError(f"out_dir {str(out)!r} is not writable: no write permission for {str(where)!r} (or a read-only "
                       "file system); choose a folder you can write to")


def check_free_space(out: Path, cfg: Config, net: nn.Module) -> None:
    """Refuse to start when the disk cannot hold the run's checkpoints and post-hoc EMA snapshots
    (an estimate from the parameter count; a full disk later still fails cleanly, see save_checkpoint)."""
    n = sum(p.numel() * p.element_size() for p in net.parameters())
    tracks = len(cfg.ema.phema_stds) if cfg.ema.phema_every > 0 else 0
    per_ckpt = n * (4 + tracks)  # model, EMA, two AdamW moments, post-hoc EMA tracks
    snapshots = n * tracks * (cfg.train.steps // cfg.ema.phema_every + 1) if tracks else 0
    need = per_ckpt * (cfg.train.keep_checkpoints + 1) + snapshots + (8 << 20)  # + logs, grids, plots
    where = next((a for a in [out, *out.absolute().parents] if a.exists()), Path("/"))
    free = shutil.disk_usage(where).free
    if free < need:
        raise RunError(f"not enough free space for {str(out)!r}: {free / 2**20:.0f} MiB free on {str(where)!r}, the run "
                       f"needs about {need / 2**20:.0f} MiB (checkpoints + post-hoc EMA snapshots); free space, choose "
                       "another out_dir, or lower train.keep_checkpoints / raise ema.phema_every")


def prepare_fresh_run(out: Path, cfg: Config, run_meta: dict) -> None:
    check_fresh_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", cfg.to_json() + "\n")
        # run.json last: it marks the folder as a run (a start killed before it can simply be redone)
        atomic_write_text(out / "run.json", json.dumps({"format": RUN_FORMAT, "created": _now(), **run_meta}, indent=2) + "\n")
    except OSError as e:
        raise RunError(f"cannot create the run folder {str(out)!r}: {e.strerror or e}; choose a folder you can write to") from None


def truncate_metrics(path: Path, step: int) -> list[dict]:
    """Keep metric lines up to `step` (lines of steps redone after a resume are dropped)."""
    rows: list[dict] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash
            if row.get("step", math.inf) <= step:
                rows.append(row)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def plot_losses(rows: list[dict], path: Path) -> None:
    """Loss curve PNG (log-scale loss vs samples seen)."""
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = [r["samples"] for r in rows]
    y = [r["loss"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(x, y, lw=1, label="loss (mean per log interval)")
    if len(y) >= 10:  # a trailing moving average shows the trend through the σ-sampling noise
        k = max(3, len(y) // 20)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1 :], smooth, lw=2, label=f"moving average of {k}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("loss")
    if min(y) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def save_snapshot(run_dir: Path, pema: PowerEMA, samples: int, step: int) -> None:
    from safetensors.torch import save as st_save

    folder = run_dir / "phema"
    folder.mkdir(exist_ok=True)
    for std, weights in pema.snapshot().items():
        weights = {k: v.cpu() for k, v in weights.items()}
        blob = st_save(weights, metadata={"std": f"{std}", "samples_seen": f"{samples}", "step": f"{step}"})
        atomic_write_bytes(folder / f"snap-{samples:012d}-{std:.3f}.safetensors", blob)


def clean_after_crash(out: Path, samples_seen: int) -> None:
    """Drop what a crashed process wrote after the checkpoint a resume continues from: newer
    post-hoc EMA snapshots and the temp files of the writes it was killed in."""
    for t, _, p in list_snapshots(out):
        if t > samples_seen:
            p.unlink()
    for folder in (out, out / "phema", out / "samples", out / "best"):
        if folder.is_dir():
            for p in folder.iterdir():
                if _TEMP_FILE.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
