"""Text-to-video on `moving-shapes`: guidance chosen on seen prompts, then held-out triples scored on fresh seeds.

    PYTHONPATH=src python benchmarks/video_text.py tune RUN [RUN ...] [--guidance 1.5,3,5] [--seed 0] [--n 90] \
        [--jobs 1] [--out benchmarks/results/video_text_tune.json]
    PYTHONPATH=src python benchmarks/video_text.py report RUN [RUN ...] --guidance W [--seed 5000] [--n 180] \
        [--jobs 1] [--out benchmarks/results/video_text.json]

Each RUN is a text-conditional `moving-shapes` run (e.g. `noisecraft train benchmarks/configs/moving-shapes-t2v.toml
--seed S`, one per training seed). Both commands call `noisecraft eval RUN --seed SEED --n N --guidance W` (the moving-shapes
judge: colour, shape and motion read off every clip; docs/video.md) for the run's [sample] solver and NFE
and collect each report's rates. `--jobs J` runs J evaluations at a time (each one thread); every row's CPU seconds
are its own process's (`os.wait4`), whatever runs beside it.

* `tune`: every run at every weight; the weight with the highest **seen** "all three" rate, averaged over
  the runs, is the choice (the held-out rates are listed, not used).
* `report`: every run at one weight on another seed and more clips; the mean held-out "all three" rate over
  runs with its standard error over runs, and per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

KEYS = [f"{g}_{k}" for g in ("heldout", "seen") for k in ("all", "color", "shape", "motion")]


def _run_timed(cmd: list[str]) -> tuple[int, str, float]:
    """Run cmd; its exit code, its output and its own CPU seconds (user + sys, children included)."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        return proc.returncode, log.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime


def evaluate(run: str, guidance: float, seed: int, n: int) -> dict:
    """One `noisecraft eval` of RUN; its rates, floors, motion readings and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "noisecraft", "eval", run, "--out", f"{tmp}/r", "--seed", str(seed),
               "--n", str(n), "--guidance", str(guidance), "--quiet"]
        code, output, cpu = _run_timed(cmd)
        if code:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{output}")
        report = json.loads(Path(f"{tmp}/r/report.json").read_text())
    return {"run": run, "guidance": guidance, "seed": seed, "n": n, "solver": report["solver"], "nfe": report["nfe"],
            "generated": {k: report["generated"][k] for k in KEYS},
            "floor": {k: report["noise_floor"][k] for k in KEYS},
            "motion_readings": {g: d["motion_readings"] for g, d in report["details"]["generated"].items()},
            "cpu_seconds": round(cpu, 1)}


def _mean_se(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
    return {"mean": float(a.mean()), "se": se, "values": [float(v) for v in a]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["tune", "report"])
    p.add_argument("runs", nargs="+")
    p.add_argument("--guidance", default="1.5,3,5", help="tune: weights to try; report: the one weight")
    p.add_argument("--seed", type=int)
    p.add_argument("--n", type=int)
    p.add_argument("--jobs", type=int, default=1, help="evaluations at a time (default 1)")
    p.add_argument("--out")
    a = p.parse_args()
    if a.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {a.jobs}")
    weights = [float(w) for w in a.guidance.split(",")]
    tune = a.mode == "tune"
    if not tune and len(weights) != 1:
        raise SystemExit(f"report takes one --guidance weight, got {a.guidance!r}")
    seed = a.seed if a.seed is not None else (0 if tune else 5000)
    n = a.n if a.n is not None else (90 if tune else 180)
    out = Path(a.out or f"benchmarks/results/video_text{'_tune' if tune else ''}.json")
    t0 = time.time()
    tasks = [(run, w) for run in a.runs for w in weights]
    rows = []
    with ThreadPoolExecutor(a.jobs) as pool:  # the threads only wait on the eval processes
        for row in pool.map(lambda t: evaluate(t[0], t[1], seed, n), tasks):  # in task order
            rows.append(row)
            g = row["generated"]
            print(f"{row['run']} w={row['guidance']}: held-out all {g['heldout_all']:.3f} (colour {g['heldout_color']:.3f}, "
                  f"shape {g['heldout_shape']:.3f}, motion {g['heldout_motion']:.3f}); seen all {g['seen_all']:.3f}; "
                  f"{row['cpu_seconds']} CPU-s", flush=True)
    summary = {}
    for w in weights:
        mine = [r for r in rows if r["guidance"] == w]
        summary[str(w)] = {k: _mean_se([r["generated"][k] for r in mine]) for k in KEYS}
    result = {"mode": a.mode, "runs": a.runs, "seed": seed, "n_per_group": n, "rows": rows, "by_guidance": summary,
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "wall_seconds": round(time.time() - t0)}
    if tune:
        result["rule"] = "the weight with the highest seen_all averaged over the runs"
        result["chosen_guidance"] = max(weights, key=lambda w: summary[str(w)]["seen_all"]["mean"])
        print(f"chosen guidance (seen prompts only): {result['chosen_guidance']}")
    else:
        s = summary[str(weights[0])]
        print(f"held-out all three: {s['heldout_all']['mean']:.3f} +- {s['heldout_all']['se']:.3f} (SE over "
              f"{len(a.runs)} runs); seen {s['seen_all']['mean']:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
