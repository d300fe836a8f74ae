"""Small helpers shared by the benchmark scripts: machine description, timing, output files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["machine_info", "machine_markdown", "median_time", "write_outputs", "field_summary", "reconstruction_results"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    """Where the numbers came from: platform, CPU, thread count and library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for package in ("diffusers", "numpy", "scipy", "noisecraft"):
        info[package] = _version(package)
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
        info["load_average_at_start"] = " ".join(load)
    except OSError:
        pass
    return info


def machine_markdown(info: dict[str, Any]) -> str:
    gpu = info["cuda"] or "none"
    return (
        f"Machine: {info['platform']}, CPU {info['cpu']} ({info['logical_cpus']} logical CPUs, "
        f"torch threads {info['torch_threads']}), GPU {gpu}; Python {info['python']}, torch {info['torch']}, "
        f"diffusers {info['diffusers']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"noisecraft {info['noisecraft']}. Load average at start: {info.get('load_average_at_start', 'n/a')}."
    )


def median_time(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_outputs(out_dir: Path, name: str, markdown: str, data: dict[str, Any]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{name}.md", out_dir / f"{name}.json"
    md.write_text(markdown)
    js.write_text(json.dumps(data, indent=1, default=str))
    return md, js


def _stats(values: list[float]) -> dict[str, float]:
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if not len(x):
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": float(np.median(x)), "min": float(x.min()), "max": float(x.max()), "n": int(len(x))}


def field_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max over fields of every score, per "fraction/method" (the field benchmarks' rows:
    {"fraction", "results": {method: {score: value}}}); None scores are left out, NaN values ignored."""
    summary = {}
    for frac in sorted({r["fraction"] for r in rows}):
        for m in dict.fromkeys(m for r in rows for m in r["results"]):
            vals = [r["results"][m] for r in rows if r["fraction"] == frac and m in r["results"]]
            if not vals:  # e.g. a method run on the first fields only
                continue
            keys = [key for key in vals[0] if vals[0][key] is not None]
            summary[f"{frac}/{m}"] = {"fields": len(vals)} | {key: _stats([v[key] for v in vals]) for key in keys}
    return summary


def reconstruction_results(truth, obs, k: int, prior, methods, score: Callable[..., dict], *, n: int, solver: str,
                           nfe: int, sigma_data: float, zeta: float | None = None, flat=None,
                           baselines: bool = True, physics: dict | None = None, flat_std=None) -> dict[str, dict]:
    """One field's row of the field reconstruction benchmarks: {name: score(truth, mean, std, samples) + cpu_s /
    wall_s where timed} for fitted-GP kriging (always), cubic interpolation and the mean field `flat` (with
    `baselines`), and each method of `methods` (`noisecraft.fields.reconstruct`, n samples from seed 1000·k;
    zeta: DPS's step size, for "dps" and "dps+physics"; "dps+physics": DPS with `physics`, the keywords
    physics / physics_step / physics_sigma_max of `reconstruct`). A channel the observations leave out is
    predicted by `flat` (and `flat_std`) in the kriging and cubic rows: they have nothing else to go on."""
    from noisecraft.fields import cubic_baseline, gp_baseline, reconstruct

    def filled(est, fill):
        if fill is None:
            return est
        hole = est.isnan().flatten(1).all(1)  # whole channels without observations
        return torch.where(hole[:, None, None], fill.to(est.dtype), est)

    t, w = time.process_time(), time.perf_counter()
    gm, gs = gp_baseline(obs, truth.shape, restarts=0)
    gm, gs = filled(gm, flat), filled(gs, flat_std)
    res = {"gp": score(truth, gm, gs) | {"cpu_s": time.process_time() - t, "wall_s": time.perf_counter() - w}}
    if baselines:
        res["cubic"] = score(truth, filled(cubic_baseline(obs, truth.shape), flat))
        res["mean"] = score(truth, flat)
    for m in methods:
        extra = {"step_size": zeta} if m in ("dps", "dps+physics") and zeta is not None else {}
        if m == "dps+physics":
            if physics is None:
                raise ValueError("method dps+physics needs `physics` (the residual and its weights)")
            extra |= physics
        t, w = time.process_time(), time.perf_counter()
        post = reconstruct(prior, obs, tuple(truth.shape), n=n, method=m.split("+")[0], solver=solver, nfe=nfe,
                           dtype=torch.float32, seed=1000 * k, sigma_data=sigma_data, **extra)
        cpu, wall = time.process_time() - t, time.perf_counter() - w
        res[m] = score(truth, post.mean.double(), post.std.double(), post.samples.double()) | {"cpu_s": cpu,
                                                                                             "wall_s": wall}
    return res
