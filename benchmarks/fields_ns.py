"""Reconstruction of `navier-stokes` test vorticity fields from 1 / 2 / 5 % random point observations with
a trained `navier-stokes` run: the default zero-shot wrapper (DPS) against fitted-GP kriging, cubic
interpolation and the mean field.

    PYTHONPATH=src python benchmarks/fields_ns.py --run runs/ns --first 0 --fields 3 --fractions 0.02 \
        --zeta 10 --out /tmp/tune.json                                                  # tuning (fields 0..2)
    PYTHONPATH=src python benchmarks/fields_ns.py --run runs/ns --first 50 --fields 50 --zeta Z --nfe K \
        --out benchmarks/results/fields_ns.json                                         # report (held out)

Field k uses observation seed k and sampling seed 1000·k; test fields 0..first-1 are for tuning (DPS ζ,
NFE), first.. for reporting. Scores per field (`fields.posterior_scores`), in the stored units x = ω/7
(relative L2 and coverage are the same in physical ω; CRPS in ω is 7x): the relative L2 error of the
posterior mean, its ratio to kriging's on the same field, coverage of the 50 % / 90 % intervals, CRPS
and spread-skill. cpu_s / wall_s: process CPU and wall seconds per field (n samples; the GP's fit).
"""

from __future__ import annotations

import argparse
import json

import torch

from _common import field_summary, machine_info, reconstruction_results
from noisecraft.data import load_navier_stokes
from noisecraft.fields import mean_baseline, posterior_scores, random_observations


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="a trained navier-stokes run (its network is the prior)")
    ap.add_argument("--fields", type=int, default=50)
    ap.add_argument("--first", type=int, default=50, help="test fields first..first+fields-1 (0.. are tuning fields)")
    ap.add_argument("--fractions", default="0.01,0.02,0.05")
    ap.add_argument("--methods", default="dps")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--weights", default="ema")
    ap.add_argument("--solver", default="ddpm")
    ap.add_argument("--nfe", type=int, default=25)
    ap.add_argument("--zeta", type=float, default=None, help="DPS step size ζ (default: the wrapper's)")
    ap.add_argument("--no-baselines", action="store_true", help="only the diffusion methods (and the GP ratio)")
    ap.add_argument("--out", default="benchmarks/results/fields_ns.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from noisecraft.runs import Run

    run = Run.open(args.run)
    if run.config.data.source != "navier-stokes":
        raise SystemExit(f"--run must be a navier-stokes run; {args.run!r} was trained on {run.config.data.source!r}")
    res_ = run.shape[-1]
    test, train = load_navier_stokes(split="test", resolution=res_), load_navier_stokes(split="train", resolution=res_)
    if args.first + args.fields > len(test.data):
        raise SystemExit(f"--first + --fields = {args.first + args.fields} > the {len(test.data)} test fields")
    prior, sigma_data = run.denoiser(args.weights), run.config.process.sigma_data
    flat = mean_baseline(train.data)
    rows = []

    def write():
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "machine": machine_info(), "summary": field_summary(rows), "rows": rows}, f, indent=1)

    for k in range(args.first, args.first + args.fields):  # field by field: a stopped run keeps whole fields
        for frac in (float(f) for f in args.fractions.split(",")):
            truth = test.data[k].double()
            obs = random_observations(truth, frac, seed=k)
            res = reconstruction_results(truth, obs, k, prior, args.methods.split(","), posterior_scores, n=args.n,
                                         solver=args.solver, nfe=args.nfe, sigma_data=sigma_data, zeta=args.zeta,
                                         flat=flat, baselines=not args.no_baselines)
            for v in res.values():
                v["error_vs_gp"] = v["rel_l2"] / res["gp"]["rel_l2"]
            rows.append({"fraction": frac, "field": k, "observations": obs.count, "results": res})
            print(frac, k, {m: round(v["error_vs_gp"], 3) for m, v in res.items()}, flush=True)
        write()
    write()
    for key, s in field_summary(rows).items():
        print(key, s["fields"], {k: round(v["median"], 3) for k, v in s.items() if k != "fields"})


if __name__ == "__main__":
    main()
