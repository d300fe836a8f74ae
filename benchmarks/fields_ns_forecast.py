"""Ensemble forecasts of Kolmogorov flow with a trained `navier-stokes-forecast` run against the solver's own
trajectories and persistence (issue 14 item 5).

    PYTHONPATH=src python benchmarks/fields_ns_forecast.py --run runs/nsf --first 100 --trajectories 10 \
        --solver dpmpp_2m --nfe 20 --out /tmp/tune.json                               # tuning (trajectories 100..109)
    PYTHONPATH=src python benchmarks/fields_ns_forecast.py --run runs/nsf --first 0 --trajectories 50 \
        --solver S --nfe K --out benchmarks/results/fields_ns_forecast.json            # report (held out, 0..49)

Test trajectory k (the `navier-stokes-forecast` test split: the test `navier-stokes` field k, then the
solver's states 0.5 time units apart) starts the rollout from its state 0; members use seed 10000·k
(`fields.forecast.rollout`). Scores per lead (`fields.forecast_scores`, stored units ω/7; relative L2 and
coverage are the same in ω): relative L2 error of the ensemble mean, of a single member (mean over
members) and of persistence (state 0 as the forecast); coverage of the 50 % / 90 % intervals, CRPS,
spread-skill; and the members' enstrophy ½⟨ω²⟩ over the truth's (1 = right amount of small-scale
vorticity; a blurring model drops below 1). cpu_s: process CPU seconds per trajectory (n members, all leads).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from _common import machine_info
from noisecraft.data import load_navier_stokes_forecast
from noisecraft.fields import forecast_scores, rollout


def _summary(rows: list[dict]) -> dict:
    """Per lead, for every score: median, mean, standard error, min and max over trajectories."""
    out = {}
    for lead in sorted({r["lead"] for r in rows}):
        at = [r for r in rows if r["lead"] == lead]
        keys = [k for k in at[0] if k not in ("lead", "trajectory")]
        stats = {}
        for key in keys:
            x = np.asarray([r[key] for r in at], dtype=float)
            stats[key] = {"median": float(np.median(x)), "mean": float(x.mean()),
                          "se": float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan"),
                          "min": float(x.min()), "max": float(x.max())}
        out[str(lead)] = {"trajectories": len(at)} | stats
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="a trained navier-stokes-forecast run")
    ap.add_argument("--first", type=int, default=0, help="test trajectories first..first+trajectories-1")
    ap.add_argument("--trajectories", type=int, default=50)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--n", type=int, default=8, help="ensemble members")
    ap.add_argument("--solver", default=None, help="default: the run's [sample] solver")
    ap.add_argument("--nfe", type=int, default=None, help="default: the run's")
    ap.add_argument("--weights", default="ema")
    ap.add_argument("--out", default="benchmarks/results/fields_ns_forecast.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from noisecraft.runs import Run

    run = Run.open(args.run)
    if run.config.data.source != "navier-stokes-forecast":
        raise SystemExit(f"--run must be a navier-stokes-forecast run; {args.run!r} was trained on {run.config.data.source!r}")
    test = load_navier_stokes_forecast(split="test", resolution=run.shape[-1], **run.config.data.options)
    if args.steps > test.steps:
        raise SystemExit(f"--steps {args.steps} > the {test.steps} states of each test trajectory")
    if args.first + args.trajectories > len(test.trajectories):
        raise SystemExit(f"--first + --trajectories = {args.first + args.trajectories} > {len(test.trajectories)}")
    den = run.denoiser(args.weights)
    rows: list[dict] = []

    def write():
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "interval": test.interval, "machine": machine_info(),
                       "summary": _summary(rows), "rows": rows}, f, indent=1)

    for k in range(args.first, args.first + args.trajectories):
        traj = test.trajectories[k]
        state, truth = traj[0], traj[1:args.steps + 1]
        spec = run.spec(solver=args.solver, nfe=args.nfe, seed=10_000 * k)
        t = time.process_time()
        fc = rollout(den, state, args.steps, n=args.n, spec=spec)
        cpu = time.process_time() - t
        for row in forecast_scores(fc, truth, state):
            j = row["lead"] - 1
            ens = fc.samples[:, j].double().pow(2).mean((-3, -2, -1))  # per member ⟨x²⟩ ∝ enstrophy
            row["enstrophy_ratio"] = float(ens.mean() / truth[j].double().pow(2).mean())
            row["mean_enstrophy_ratio"] = float(fc.mean[j].double().pow(2).mean() / truth[j].double().pow(2).mean())
            rows.append({"trajectory": k, **row, "cpu_s": cpu})
        last = rows[-1]
        print(k, f"lead {args.steps}: rel_l2 {last['rel_l2']:.3f} persistence {last['persistence_rel_l2']:.3f} "
                 f"crps {last['crps']:.4f} spread-skill {last['spread_skill']:.2f} cpu {cpu:.1f}s", flush=True)
        write()
    write()
    for lead, s in _summary(rows).items():
        print("lead", lead, {key: round(v["median"], 3) for key, v in s.items() if key != "trajectories"})


if __name__ == "__main__":
    main()
