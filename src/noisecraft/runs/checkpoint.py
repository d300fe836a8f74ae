"""Checkpoints: one folder per save, tensors in safetensors, everything else in JSON.

    RUN_DIR/checkpoints/
        ckpt-00000500/
            state.safetensors   model, EMA, optimizer moments, post-hoc EMA tracks
            state.json          config, step, samples seen, RNG states, data position, optimizer hyper-state
            COMPLETE            sha256 of the two files; written last
        latest                  name of the newest complete checkpoint

Saving is atomic: both files are written and fsynced inside a temporary folder next to the
final one, the folder is renamed into place (os.replace), then COMPLETE and `latest` are written
(each by write-temp + fsync + os.replace). A crash at any point leaves `latest` pointing at the
previous complete checkpoint (tests/train/test_crash_kill.py SIGKILLs inside each stage; the
environment variable NOISECRAFT_TEST_SAVE_PAUSE=<seconds>, unset by default, makes every stage
sleep so a test can do that). A write that fails (disk full, read-only) raises
`CheckpointWriteError` naming the folder, after removing whatever this save wrote. Non-finite
tensors are refused before anything is written. Loading verifies the checksums and refuses non-finite tensors.

Nested state (dicts of tensors and plain values) is flattened with '/' separators:
tensors go to safetensors, everything else to JSON. Integer dict keys (optimizer state) are
written as '#<int>' and restored as ints. Nothing is pickled; `torch.load` is never used.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import save as st_save
from torch import Tensor

from ..io import files as _files
from ..io_safety import WeightFileError, load_safetensors_bytes

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "flatten_state",
    "unflatten_state",
    "encode_bytes",
    "decode_bytes",
    "save_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "atomic_write_bytes",
    "atomic_write_text",
]

_NAME = re.compile(r"^ckpt-(\d{8,})$")
MARKER = "COMPLETE"
FORMAT = "noisecraft-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, incomplete, corrupt or inconsistent. One line."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, read-only or unwritable folder). One line that
    names the folder; `errno` is the failed write's. Nothing of the failed save is left behind."""

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] ..." format
        return str(self.args[0]) if self.args else ""


_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


# ------------------------------------------------------------------------------------------------
# Flattening nested state


def _enc_key(k: Any) -> str:
    if isinstance(k, bool) or not isinstance(k, (str, int)):
        raise TypeError(f"state keys must be str or int, got {k!r}")
    if isinstance(k, int):
        return f"#{k}"
    if "/" in k or k.startswith("#"):
        raise ValueError(f"state key {k!r} may not contain '/' or start with '#'")
    return k


def _dec_key(k: str) -> Any:
    return int(k[1:]) if k.startswith("#") else k


def flatten_state(state: dict, prefix: str = "") -> tuple[dict[str, Tensor], dict]:
    """Split nested state into ({'a/b/c': tensor}, json-able nested dict without tensors)."""
    tensors: dict[str, Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, Tensor):
            tensors[path] = node.detach().cpu().contiguous().clone()
            return {"__tensor__": path}
        if isinstance(node, dict):
            return {_enc_key(k): walk(v, f"{path}/{_enc_key(k)}" if path else _enc_key(k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store {type(node).__name__} at {path!r} in a checkpoint")

    meta = walk(state, prefix)
    return tensors, meta


def unflatten_state(tensors: dict[str, Tensor], meta: Any) -> Any:
    """Inverse of flatten_state."""
    if isinstance(meta, dict):
        if set(meta) == {"__tensor__"}:
            key = meta["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"checkpoint is missing tensor {key!r}")
            return tensors[key]
        return {_dec_key(k): unflatten_state(tensors, v) for k, v in meta.items()}
    if isinstance(meta, list):
        return [unflatten_state(tensors, v) for v in meta]
    return meta


def encode_bytes(t: Tensor) -> str:
    """A uint8 tensor (e.g. a torch.Generator state) as base64 text for JSON."""
    return base64.b64encode(t.detach().cpu().to(torch.uint8).numpy().tobytes()).decode("ascii")


def decode_bytes(text: str) -> Tensor:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone()


# ------------------------------------------------------------------------------------------------
# Atomic file writes


# One atomic writer for the whole package (io/files.py); called through the module so that a test
# patching `files.write_synced` (a simulated full disk) reaches every write.
def _fsync_dir(path: Path) -> None:
    _files.fsync_dir(path)


def _write_synced(path: Path, data: bytes) -> None:
    _files.write_synced(path, data)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old or the new file, never a partial one."""
    _files.atomic_write_bytes(path, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    _files.atomic_write_bytes(path, text.encode("utf-8"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------
# Save / find / load


def _step_of(path: Path) -> int:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else -1


def _is_complete(path: Path) -> bool:
    return path.is_dir() and _NAME.match(path.name) is not None and (path / MARKER).is_file()


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `ckpt_dir`, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted((p for p in ckpt_dir.iterdir() if _is_complete(p)), key=_step_of)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names if it is complete, else the newest complete one, else None."""
    ckpt_dir = Path(ckpt_dir)
    pointer = ckpt_dir / "latest"
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if _NAME.match(name) and _is_complete(ckpt_dir / name):
            return ckpt_dir / name
    done = list_checkpoints(ckpt_dir)
    return done[-1] if done else None


def _remove_tree(path: Path) -> None:
    # Rename first so a half-deleted folder never looks like a checkpoint.
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _test_pause() -> None:
    """Crash-test hook (inert by default): with NOISECRAFT_TEST_SAVE_PAUSE=<seconds> in the environment,
    every stage of a save sleeps that long, so a test can SIGKILL the process inside a save
    (tests/train/test_crash_kill.py). Unset, empty or 0, nothing happens."""
    value = os.environ.get("NOISECRAFT_TEST_SAVE_PAUSE", "")
    if value:
        time.sleep(max(0.0, float(value)))


def save_checkpoint(
    ckpt_dir: str | Path,
    step: int,
    state: dict,
    *,
    keep: int = 2,
    _before_rename: Callable[[Path], None] | None = None,
) -> Path:
    """Save nested `state` (tensors + JSON-able values) as checkpoint `step`; keep the newest `keep`.

    A failed write (disk full, read-only, permissions) raises `CheckpointWriteError` naming the
    folder, after removing what this save wrote: the previous checkpoint and `latest` are untouched.
    Non-finite floating-point tensors are refused before anything is written.
    `_before_rename` is a test hook called with the temporary folder after the files are written.
    """
    ckpt_dir = Path(ckpt_dir)
    name = f"ckpt-{step:08d}"
    final = ckpt_dir / name
    tensors, meta = flatten_state(state)
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"refusing to save checkpoint {name}: tensor {k!r} has non-finite values")
    blob = st_save(tensors, metadata={"format": FORMAT})
    text = json.dumps({"format": FORMAT, "step": step, "state": meta}, indent=1).encode("utf-8")

    tmp = ckpt_dir / f".tmp-{name}-{os.getpid()}"
    renamed = False
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_synced(tmp / "state.safetensors", blob)
        _write_synced(tmp / "state.json", text)
        _fsync_dir(tmp)
        _test_pause()  # killed here: a temp folder, removed by the next save
        if _before_rename is not None:
            _before_rename(tmp)
        if final.exists():  # a stale (e.g. incomplete) folder of the same step from an earlier attempt
            _remove_tree(final)
        os.replace(tmp, final)
        renamed = True
        _fsync_dir(ckpt_dir)
        _test_pause()  # killed here: a folder without COMPLETE, never loaded, removed later
        marker = {"format": FORMAT, "files": {"state.safetensors": _sha256(blob), "state.json": _sha256(text)}}
        atomic_write_text(final / MARKER, json.dumps(marker))
        _test_pause()  # killed here: complete, but `latest` still names the previous one (both valid)
        atomic_write_text(ckpt_dir / "latest", name + "\n")
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if renamed:  # undo: the folder is not (or not yet named) the latest checkpoint
            shutil.rmtree(final, ignore_errors=True)
        prev = latest_checkpoint(ckpt_dir)
        kept = f"the previous checkpoint {prev.name} is intact" if prev is not None else "no earlier checkpoint exists"
        err = CheckpointWriteError(f"cannot write checkpoint {name} in {str(ckpt_dir)!r}: {e.strerror or e}"
                                   f"{' (disk full)' if e.errno in _DISK_FULL else ''}; {kept} - free space or fix "
                                   "the folder, then resume")
        err.errno, err.filename = e.errno, e.filename
        raise err from e

    # Retention: the newest `keep` complete checkpoints stay; leftovers of crashed saves go.
    done = list_checkpoints(ckpt_dir)
    for old in done[:-keep]:
        if old != final:
            _remove_tree(old)
    for p in ckpt_dir.iterdir():
        if p.name.startswith((".tmp-", ".trash-")) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".latest.tmp-") and p.is_file():  # a `latest` write killed half-way
            p.unlink(missing_ok=True)
        elif _NAME.match(p.name) and p.is_dir() and not _is_complete(p) and _step_of(p) < step:
            shutil.rmtree(p, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> tuple[int, dict]:
    """(step, nested state) of a complete checkpoint folder; checksums and finiteness verified."""
    path = Path(path)
    if not (path / MARKER).is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (no {MARKER} marker)")
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        expected = marker["files"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint {path} has an unreadable {MARKER} marker") from None
    data = {}
    for fname in ("state.safetensors", "state.json"):
        try:
            data[fname] = (path / fname).read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {path} is missing {fname}") from None
        if _sha256(data[fname]) != expected.get(fname):
            raise CheckpointError(f"checkpoint {path} is corrupt: {fname} does not match its recorded checksum")
    # Validated by noisecraft.io_safety (header, offsets, NaN/Inf) even when the checksums match:
    # COMPLETE is as easy to forge as the file it describes.
    try:
        tensors, _ = load_safetensors_bytes(data["state.safetensors"], name=path / "state.safetensors")
    except WeightFileError as e:
        raise CheckpointError(f"checkpoint file {e.path} is refused: {e.problem}") from None
    try:
        doc = json.loads(data["state.json"].decode("utf-8"))
        step, meta = int(doc["step"]), doc["state"]
    except Exception as e:  # noqa: BLE001 - any parse failure is corruption
        raise CheckpointError(f"checkpoint {path} is corrupt: {type(e).__name__}: {e}".splitlines()[0]) from None
    try:
        return step, unflatten_state(tensors, meta)
    except (TypeError, ValueError, AttributeError, RecursionError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt: its state.json does not fit its tensors ({e})".splitlines()[0]) from None
