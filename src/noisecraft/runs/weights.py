"""The weights of a run folder: raw and EMA (newest checkpoint), best (eval.keep_best), post-hoc EMA.

    RUN_DIR/checkpoints/step-*/state.safetensors   model, ema, optimizer, ... (noisecraft.runs.checkpoint)
    RUN_DIR/best/ema.safetensors                   the EMA weights of the best evaluation
    RUN_DIR/phema/snap-<samples>-<std>.safetensors post-hoc EMA snapshots (EDM2)
    RUN_DIR/phema/phema-<std>.safetensors          reconstructions written by `noisecraft ema`

Every file is read through noisecraft.io_safety (no pickle; validated headers, offsets and
values) and checked against the network's names, shapes and dtypes before loading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from safetensors.torch import save as st_save
from torch import Tensor, nn

from ..io_safety import WeightFileError, check_tensors_match, read_safetensors
from .checkpoint import CheckpointError, atomic_write_bytes, latest_checkpoint, load_checkpoint
from .errors import RunError
from .phema import MAX_STD, reconstruct

__all__ = ["MIN_PHEMA_STD", "list_snapshots", "phema_path", "best_path", "reconstruct_phema", "weight_choices",
           "load_weights"]

MIN_PHEMA_STD = 0.001  # smallest post-hoc EMA std accepted (file names keep 3 decimals)
_SNAP_FILE = re.compile(r"^snap-(\d{12})-(\d+\.\d+)\.safetensors$")


def list_snapshots(run_dir: str | Path) -> list[tuple[int, float, Path]]:
    """Post-hoc EMA snapshots (samples seen, std, file), oldest first."""
    folder = Path(run_dir) / "phema"
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _SNAP_FILE.match(p.name)
            if m:
                out.append((int(m.group(1)), float(m.group(2)), p))
    return sorted(out)


def _read(path: Path) -> dict[str, Tensor]:
    try:
        return read_safetensors(path)[0]
    except WeightFileError as e:
        raise RunError(str(e)) from None


def _load_checked(net: nn.Module, params: Any, source: str | Path, *, strict: bool = True) -> None:
    """load_state_dict after checking names, shapes and dtypes (load_state_dict would cast dtypes)."""
    try:
        check_tensors_match(net.state_dict(), params, source=source, strict=strict)
    except WeightFileError as e:
        raise RunError(str(e)) from None
    net.load_state_dict(params, strict=strict)


def phema_path(run_dir: str | Path, std: float) -> Path:
    return Path(run_dir) / "phema" / f"phema-{std:.3f}.safetensors"


def best_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "best" / "ema.safetensors"


def reconstruct_phema(run_dir: str | Path, std: float, *, write: bool = True) -> tuple[dict[str, Tensor], Path | None]:
    """EMA weights of relative std `std` at the end of the run, from the post-hoc snapshots."""
    if not MIN_PHEMA_STD <= std < MAX_STD:  # below ~1e-200 the EDM2 exponent overflows; 0.001 is still "no averaging"
        raise RunError(f"std {std} is out of range; valid: 0 < std < {MAX_STD} with std >= {MIN_PHEMA_STD}")
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise RunError(f"run {str(run_dir)!r} has no post-hoc EMA snapshots (ema.phema_every = 0, or no snapshot saved yet)")
    loaded = [(float(t), s, _read(p)) for t, s, p in snaps]
    for (_, _, w), (_, _, p) in zip(loaded[1:], snaps[1:]):  # every snapshot must hold the same tensors as the first
        try:
            check_tensors_match(loaded[0][2], w, source=p)
        except WeightFileError as e:
            raise RunError(f"{e} (compared with {snaps[0][2].name})") from None
    weights = reconstruct(loaded, std)
    out = None
    if write:
        out = phema_path(run_dir, std)
        meta = {"std": f"{std}", "samples_seen": f"{max(t for t, _, _ in snaps)}", "snapshots": f"{len(snaps)}"}
        atomic_write_bytes(out, st_save({k: v.contiguous() for k, v in weights.items()}, metadata=meta))
    return weights, out


def weight_choices(run_dir: str | Path) -> list[str]:
    """Valid `weights=` values for this run."""
    choices = ["raw", "ema"]
    if best_path(run_dir).is_file():
        choices.append("best")
    if list_snapshots(run_dir):
        choices.append("phema-<std>")
    return choices


def _invalid(run_dir: Path, weights: str) -> RunError:
    return RunError(f"weights {weights!r} is not valid; valid: {', '.join(weight_choices(run_dir))}")


def load_weights(net: nn.Module, run_dir: str | Path, weights: str = "ema") -> None:
    """Load `weights` of the run into `net` (built from the run's net config): "raw", "ema",
    "best" or "phema-<std>" (a reconstruction `noisecraft ema` wrote, else rebuilt in memory)."""
    run_dir = Path(run_dir)
    if weights == "best":
        path = best_path(run_dir)
        if not path.is_file():
            raise RunError(f"weights 'best' is not available: run {str(run_dir)!r} has no best/ weights (train with "
                           f"eval.every > 0 and eval.keep_best set); valid: {', '.join(weight_choices(run_dir))}")
        params = _read(path)
        try:
            _load_checked(net, params, path)
        except RunError:
            raise
        except Exception as e:  # noqa: BLE001 - a torn or foreign file
            raise RunError(f"best weights {path} cannot be loaded: {e}".splitlines()[0]) from None
        return
    if weights not in ("raw", "ema") and not weights.startswith("phema-"):
        raise _invalid(run_dir, weights)
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise RunError(f"run {str(run_dir)!r} has no complete checkpoint yet; train it first (or resume it with "
                       "`noisecraft train --resume`)")
    try:
        _, state = load_checkpoint(ckpt)
    except CheckpointError as e:
        raise RunError(str(e)) from None
    where = ckpt / "state.safetensors"
    try:
        model_state, ema_state = state["model"], state["ema"]["module"]
    except (KeyError, TypeError):
        raise RunError(f"checkpoint {ckpt} is corrupt: it lacks the model or EMA weights") from None
    _load_checked(net, model_state, f"{where} [model]")  # raw weights (and buffers) first
    if weights == "ema":
        _load_checked(net, ema_state, f"{where} [ema]")
    elif weights.startswith("phema-"):
        try:
            std = float(weights[len("phema-"):])
        except ValueError:
            raise _invalid(run_dir, weights) from None
        path = phema_path(run_dir, std)
        params = _read(path) if path.is_file() else reconstruct_phema(run_dir, std, write=False)[0]
        missing = set(dict(net.named_parameters())) - set(params)
        if missing:
            raise RunError(f"post-hoc EMA weights for std {std} do not match the network (missing {sorted(missing)[0]!r})")
        _load_checked(net, params, path if path.is_file() else f"post-hoc EMA snapshots of {run_dir}", strict=False)
