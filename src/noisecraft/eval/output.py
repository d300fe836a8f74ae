"""What every `noisecraft eval` report folder needs, whatever the modality: a checked output folder
and a description of the machine the figures came from."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .features import EvalError

__all__ = ["check_report_out", "environment", "json_values", "format_value"]


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


def json_values(v: Any) -> Any:
    """A report's values made JSON-safe: nested dicts/lists/tuples walked, numpy scalars to Python, NaN/inf to null."""
    if isinstance(v, dict):
        return {k: json_values(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_values(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v


def format_value(v: Any) -> str:
    """A report.md cell: 4 significant digits (scientific below 1e-3), "—" for a missing or NaN figure."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)
