"""Atomic file writes: a reader (or a crash) never sees a half-written file.

The bytes go to a hidden temp file in the target folder (same filesystem, so the final
`os.replace` is atomic), are flushed and fsynced, get the permissions a plain `open()` would
have given them, and are then moved into place. Missing parent folders are created.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]

# Read the process umask once (at import, normally single-threaded): mkstemp creates files 0600,
# and we give the finished file the permissions a plain open() would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(f)` on a temp file next to `path`, then move it to `path`. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
