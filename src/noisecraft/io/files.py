"""Atomic file writes, the one implementation: a reader (or a crash) never sees a half-written file.

The bytes go to a hidden temp file `.NAME.tmp-PID-RANDOM` in the target folder (same filesystem,
so the final `os.replace` is atomic), are flushed and fsynced, get the permissions a plain `open()`
would have given them, are moved into place, and the folder itself is fsynced so the rename
survives a power cut. Missing parent folders are created. On any failure (e.g. ENOSPC) the old
file is left as it was and the temp file is removed. Checkpoints, run metadata, images, NPZ arrays
and exports all write through here (tests simulate a full disk by patching `write_synced`).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_output", "atomic_write", "atomic_write_bytes", "atomic_write_text", "write_synced", "fsync_dir"]

# Read the process umask once (at import, normally single-threaded): mkstemp creates files 0600,
# and we give the finished file the permissions a plain open() would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` (created or truncated) and fsync it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that renames inside it are durable (a no-op where folders can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield the temp path to write instead of `path`; when the block ends normally the temp file is
    fsynced and moved over `path` (the folder fsynced too), on any error it is removed and `path`
    stays as it was. keep_suffix: end the temp name with `path`'s suffix, for writers that pick the
    format from it (ffmpeg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = path.with_name(f".{path.stem}.{tag}{path.suffix}" if keep_suffix else f".{path.name}.{tag}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so readers see the old or the new file, never a partial one. Returns `path`."""
    with atomic_output(path) as tmp:
        write_synced(tmp, data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(f)` on an in-memory file, then write its bytes atomically to `path`. Returns `path`."""
    buf = io.BytesIO()
    write(buf)
    return atomic_write_bytes(path, buf.getvalue())
