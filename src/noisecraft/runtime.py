"""Small runtime helpers shared by training, evaluation and the CLI."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch

__all__ = ["num_threads", "resolve_device", "DeviceError", "cache_root"]


def cache_root() -> Path:
    """Where noisecraft keeps derived files (fitted feature classifiers, reference features,
    synthesized datasets): $NOISECRAFT_CACHE, else ~/.cache/noisecraft."""
    env = os.environ.get("NOISECRAFT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "noisecraft"


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with torch.set_num_threads(n) (n = 0: leave as is), then restore the old value.

    Small CPU workloads on a shared 2-core machine run 10x faster on one thread than on two
    contended ones, so training, evaluation and tests pick their thread count explicitly."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class DeviceError(ValueError):
    """A device name that is invalid or not available on this machine. One line."""


def resolve_device(name: str | torch.device) -> torch.device:
    """"cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU) -> a usable torch.device.

    Raises DeviceError naming the value and what is valid, e.g. "cuda" on a machine without a GPU."""
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"device {str(name)!r} is not valid; valid: 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise DeviceError(f"device {str(name)!r} is not supported; valid: 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {str(name)!r} was asked for but CUDA is not available on this machine "
                          "(CPU build of torch or no GPU); use 'cpu' or 'auto'")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise DeviceError(f"device {str(name)!r} does not exist; this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}")
    return dev
