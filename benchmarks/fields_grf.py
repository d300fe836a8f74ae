"""Reconstruction of `grf` test fields from 1 / 2 / 5 % random point observations with the exact GRF
denoiser (no training) or a trained `grf` run (--run): every zero-shot wrapper and the baselines
against the exact Gaussian posterior.

    PYTHONPATH=src python benchmarks/fields_grf.py --fields 50 --out benchmarks/results/fields_grf.json
    PYTHONPATH=src python benchmarks/fields_grf.py --run runs/grf --methods pigdm,dps --solver ddpm --nfe 50 \
        --first 50 --fields 20 --out benchmarks/results/fields_grf_trained.json

For each field, fraction and method: the relative L2 error of the posterior mean against the truth,
its ratio to the exact posterior mean's error, the RMS posterior std over the exact one, coverage of
the 50 % / 90 % intervals, CRPS and spread-skill. Field k uses observation seed k; nothing is tuned
(the wrappers run with their defaults: heun, 100 NFE; DPS ζ = 3). Medians and worst cases over fields.
With --run the prior is the run's network (float32, its EMA weights, σ_data from its config) and the
sampler is --solver / --nfe; cpu_s is each method's process CPU time per field (n samples).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from _common import field_summary
from noisecraft.data import load_dataset
from noisecraft.data.fields import GRF_PARAMS
from noisecraft.fields import (MaternGRF, cubic_baseline, gp_baseline, mean_baseline, posterior_scores, random_observations,
                               reconstruct, relative_l2)


def _scores(mean, std, truth, exact, samples=None):
    keep = exact.std > 0.05
    return posterior_scores(truth, mean, std, samples) | {
        "std_ratio": float(std[keep].pow(2).mean().sqrt() / exact.std[keep].pow(2).mean().sqrt()) if std is not None else None}


def _write(args, rows):
    summary = field_summary(rows)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "summary": summary, "rows": rows}, f, indent=1)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=50)
    ap.add_argument("--fractions", default="0.01,0.02,0.05")
    ap.add_argument("--methods", default="pigdm,dps,projection,tmpd")
    ap.add_argument("--tmpd-fields", type=int, default=4, help="tmpd is costly (M backward passes per step): first K fields")
    ap.add_argument("--tmpd-max-points", type=int, default=100, help="skip tmpd above this many observations")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", default="benchmarks/results/fields_grf.json")
    ap.add_argument("--run", help="a trained grf run: its network is the prior instead of the exact denoiser")
    ap.add_argument("--weights", default="ema")
    ap.add_argument("--solver", default="heun")
    ap.add_argument("--nfe", type=int, default=100)
    ap.add_argument("--first", type=int, default=0, help="test fields first..first+fields-1 (0.. are tuning fields)")
    ap.add_argument("--gp", type=int, default=1, help="0: skip the fitted GP (seconds per field)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    test = load_dataset("grf", split="test")
    train = load_dataset("grf", split="train")
    grf = MaternGRF(test.data.shape[-1], **GRF_PARAMS)
    flat = mean_baseline(train.data)
    prior, dtype, sigma_data = grf.denoise, torch.float64, 0.5
    if args.run:
        from noisecraft.runs import Run

        run = Run.open(args.run)
        prior, dtype, sigma_data = run.denoiser(args.weights), torch.float32, run.config.process.sigma_data
    rows = []
    fractions = [float(f) for f in args.fractions.split(",")]
    for k in range(args.first, args.first + args.fields):  # field by field, every fraction: a stopped run keeps whole fields
        for frac in fractions:
            truth = test.data[k].double()
            obs = random_observations(truth, frac, seed=k)
            exact = grf.posterior(obs.idx, obs.values[:, 0])
            exact_samples = grf.posterior_samples(obs.idx, obs.values[:, 0], args.n, seed=k)
            base = relative_l2(exact.mean, truth)
            res = {"exact": _scores(exact.mean, exact.std, truth, exact),
                   "exact-samples": _scores(exact_samples.mean(0), exact_samples.std(0), truth, exact, exact_samples)}
            if args.gp:
                t = time.process_time()
                gm, gs = gp_baseline(obs, truth.shape, restarts=0)
                res["gp"] = _scores(gm, gs, truth, exact) | {"cpu_s": time.process_time() - t}
            res["cubic"] = _scores(cubic_baseline(obs, truth.shape), None, truth, exact)
            res["mean"] = _scores(flat, None, truth, exact)
            for m in args.methods.split(","):
                if m == "tmpd" and (k - args.first >= args.tmpd_fields or obs.count > args.tmpd_max_points):
                    continue
                t = time.process_time()
                post = reconstruct(prior, obs, tuple(truth.shape), n=args.n, method=m, solver=args.solver,
                                   nfe=args.nfe, dtype=dtype, seed=1000 * k, sigma_data=sigma_data)
                res[m] = _scores(post.mean.double(), post.std.double(), truth, exact, post.samples.double()) | {
                    "cpu_s": time.process_time() - t}
            for v in res.values():
                v["error_vs_exact"] = v["rel_l2"] / base
            rows.append({"fraction": frac, "field": k, "observations": obs.count, "results": res})
            print(frac, k, {m: round(v["error_vs_exact"], 3) for m, v in res.items()}, flush=True)
        _write(args, rows)
    summary = _write(args, rows)
    for key, s in summary.items():
        print(key, s["fields"], {k: round(v["median"], 3) for k, v in s.items() if k != "fields"})


if __name__ == "__main__":
    main()
