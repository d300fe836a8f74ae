"""Reconstruction of `grf` test fields from 1 / 2 / 5 % random point observations with the exact GRF
denoiser (no training): every zero-shot wrapper and the baselines against the exact Gaussian posterior.

    PYTHONPATH=src python benchmarks/fields_grf.py --fields 50 --out benchmarks/results/fields_grf.json

For each field, fraction and method: the relative L2 error of the posterior mean against the truth,
its ratio to the exact posterior mean's error, the RMS posterior std over the exact one, coverage of
the 50 % / 90 % intervals, CRPS and spread-skill. Field k uses observation seed k; nothing is tuned
(the wrappers run with their defaults: heun, 100 NFE; DPS ζ = 3). Medians and worst cases over fields.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from noisecraft.data import load_dataset
from noisecraft.data.fields import GRF_PARAMS
from noisecraft.fields import (MaternGRF, coverage, crps, cubic_baseline, gaussian_coverage, gaussian_crps, gp_baseline,
                               mean_baseline, random_observations, reconstruct, relative_l2, spread_skill)


def _scores(mean, std, truth, exact, samples=None):
    keep = exact.std > 0.05
    row = {"rel_l2": relative_l2(mean, truth),
           "std_ratio": float(std[keep].pow(2).mean().sqrt() / exact.std[keep].pow(2).mean().sqrt()) if std is not None else None}
    if samples is not None:
        row.update(cov50=coverage(samples, truth, 0.5), cov90=coverage(samples, truth, 0.9), crps=crps(samples, truth),
                   spread_skill=spread_skill(samples, truth))
    elif std is not None:
        row.update(cov50=gaussian_coverage(mean, std, truth, 0.5), cov90=gaussian_coverage(mean, std, truth, 0.9),
                   crps=gaussian_crps(mean, std, truth))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=50)
    ap.add_argument("--fractions", default="0.01,0.02,0.05")
    ap.add_argument("--methods", default="pigdm,dps,projection,tmpd")
    ap.add_argument("--tmpd-fields", type=int, default=4, help="tmpd is costly (M backward passes per step): first K fields")
    ap.add_argument("--tmpd-max-points", type=int, default=100, help="skip tmpd above this many observations")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", default="benchmarks/results/fields_grf.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    test = load_dataset("grf", split="test")
    train = load_dataset("grf", split="train")
    grf = MaternGRF(test.data.shape[-1], **GRF_PARAMS)
    flat = mean_baseline(train.data)
    rows = []
    for frac in (float(f) for f in args.fractions.split(",")):
        for k in range(args.fields):
            truth = test.data[k].double()
            obs = random_observations(truth, frac, seed=k)
            exact = grf.posterior(obs.idx, obs.values[:, 0])
            exact_samples = grf.posterior_samples(obs.idx, obs.values[:, 0], args.n, seed=k)
            base = relative_l2(exact.mean, truth)
            res = {"exact": _scores(exact.mean, exact.std, truth, exact),
                   "exact-samples": _scores(exact_samples.mean(0), exact_samples.std(0), truth, exact, exact_samples)}
            t = time.process_time()
            gm, gs = gp_baseline(obs, truth.shape, restarts=0)
            res["gp"] = _scores(gm, gs, truth, exact) | {"cpu_s": time.process_time() - t}
            res["cubic"] = _scores(cubic_baseline(obs, truth.shape), None, truth, exact)
            res["mean"] = _scores(flat, None, truth, exact)
            for m in args.methods.split(","):
                if m == "tmpd" and (k >= args.tmpd_fields or obs.count > args.tmpd_max_points):
                    continue
                t = time.process_time()
                post = reconstruct(grf, obs, tuple(truth.shape), n=args.n, method=m, solver="heun", nfe=100,
                                   dtype=torch.float64, seed=1000 * k)
                res[m] = _scores(post.mean, post.std, truth, exact, post.samples) | {"cpu_s": time.process_time() - t}
            for v in res.values():
                v["error_vs_exact"] = v["rel_l2"] / base
            rows.append({"fraction": frac, "field": k, "observations": obs.count, "results": res})
            print(frac, k, {m: round(v["error_vs_exact"], 3) for m, v in res.items()}, flush=True)
    summary = {}
    for frac in sorted({r["fraction"] for r in rows}):
        for m in dict.fromkeys(m for r in rows for m in r["results"]):
            vals = [r["results"][m] for r in rows if r["fraction"] == frac and m in r["results"]]
            if not vals:  # e.g. tmpd above --tmpd-max-points
                continue
            keys = [key for key in vals[0] if vals[0][key] is not None]
            summary[f"{frac}/{m}"] = {"fields": len(vals)} | {
                key: {"median": float(np.median([v[key] for v in vals])), "min": float(np.min([v[key] for v in vals])),
                      "max": float(np.max([v[key] for v in vals]))} for key in keys}
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "summary": summary, "rows": rows}, f, indent=1)
    for key, s in summary.items():
        print(key, s["fields"], {k: round(v["median"], 3) for k, v in s.items() if k != "fields"})


if __name__ == "__main__":
    main()
