"""What every `noisecraft eval` report folder needs, whatever the modality: a checked output folder
and a description of the machine the figures came from."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from .features import EvalError

__all__ = ["check_report_out", "environment"]


def check_report_out(out_dir: str | Path) -> Path:
    """The report folder as a Path; EvalError if it is a file or a run folder (never overwrite a run)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise EvalError(f"out_dir {str(out)!r} is a file, not a folder")
    if (out / "run.json").exists():
        raise EvalError(f"out_dir {str(out)!r} is a run folder; write the report to another folder")
    return out


def _cpu_name() -> str:
    """The CPU model (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int) -> dict[str, Any]:
    """torch version, thread count, CPUs, machine and CPU model, for report.json."""
    return {"torch": torch.__version__, "threads": threads, "cpus": os.cpu_count(), "machine": platform.machine(),
            "cpu": _cpu_name()}
