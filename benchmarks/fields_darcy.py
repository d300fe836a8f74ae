"""Reconstruction of `darcy` test pairs (a, u) from 1 / 2 / 5 % random point observations with a trained
`darcy` run: the zero-shot wrappers against fitted-GP kriging, cubic interpolation and the mean field.

    PYTHONPATH=src python benchmarks/fields_darcy.py --run runs/darcy --methods dps,pigdm --limit pigdm:10 \
        --first 50 --fields 50 --out benchmarks/results/fields_darcy.json

What is observed: both channels at each observed pixel (a well with a permeability core and a pressure
head; `values` (M, 2) in OBS.npz, the format's "every channel at each point"), and both are recovered;
`--observe u`: the pressure u alone at the same pixels (OBS.npz `channels` [1]), a recovered from it
(kriging and cubic predict the mean training a there). Method `dps+physics`: DPS with the Darcy residual
as one more measurement (`fields.physics`; weight --physics, acting at σ <= --physics-sigma).
Field k uses observation seed k; test fields 0..first-1 are for tuning (solver, NFE), first.. for reporting.

Scores per channel and per field (`fields.posterior_scores`): the relative L2 error of the posterior mean
(a in stored units x = (a - 7.5)/4.5 ∈ {-1, 1}, i.e. of a - 7.5; u in physical units, u = 0 on the walls),
its ratio to the GP's on the same field, coverage of the 50 % / 90 % intervals, CRPS (stored units) and
spread-skill; for a also the share of pixels whose posterior mean is on the wrong side of 7.5 (the wrong
one of {3, 12}). cpu_s / wall_s: process CPU and wall seconds per field (n samples, or the GP's two fits).

    PYTHONPATH=src python benchmarks/fields_darcy.py --residual-scale

prints the Darcy residual (`fields.darcy_residuals`) of the first 32 real test pairs as stored and with
white noise of std ε added to u (stored units): the size of the residual a given pixel accuracy of u buys.
"""

from __future__ import annotations

import argparse
import json
import math
from functools import partial

import torch

from _common import field_summary, machine_info, reconstruction_results
from noisecraft.data import load_darcy
from noisecraft.data.fields import field_physics
from noisecraft.fields import mean_baseline, posterior_scores, random_observations


def _scores(truth, mean, std=None, samples=None, u_info=None):
    """Per-channel scores of one prediction (C=2: a, u); u's relative L2 in physical units."""
    row = {}
    for c, name in enumerate(("a", "u")):
        s = posterior_scores(truth[c], mean[c], None if std is None else std[c], None if samples is None else samples[:, c])
        if name == "u":
            off, scale = u_info["offset"], u_info["scale"]
            s["rel_l2"] = float((scale * (mean[c] - truth[c])).norm() / (off + scale * truth[c]).norm())
        else:
            s["misclassified"] = float(((mean[c] >= 0) != (truth[c] >= 0)).double().mean())
        row |= {f"{name}_{k}": v for k, v in s.items()}
    return row


def _residual_scale() -> None:
    import numpy as np

    from noisecraft.fields import darcy_residuals

    test = load_darcy(split="test")
    x = test.data[:32]
    g = torch.Generator().manual_seed(0)
    for eps in (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
        y = x.clone()
        y[:, 1] += eps * torch.randn(y[:, 1].shape, generator=g)
        res = darcy_residuals(test.to_physical(y).double())
        print(f"noise std {eps:g} on u (stored units): residual median {np.median(res):.3g} [{res.min():.3g}, {res.max():.3g}]")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a trained darcy run (its network is the prior)")
    ap.add_argument("--residual-scale", action="store_true", help="only the residual of real pairs with noise on u")
    ap.add_argument("--fields", type=int, default=50)
    ap.add_argument("--first", type=int, default=50, help="test fields first..first+fields-1 (0.. are tuning fields)")
    ap.add_argument("--fractions", default="0.01,0.02,0.05")
    ap.add_argument("--methods", default="dps,pigdm")
    ap.add_argument("--limit", default="", help="METHOD:K,... run METHOD on the first K fields only")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--weights", default="ema")
    ap.add_argument("--solver", default="ddpm")
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--zeta", type=float, default=None, help="DPS step size ζ (default: the wrapper's)")
    ap.add_argument("--physics", type=float, default=1.0, help="physics guidance weight ζ_p (method dps+physics)")
    ap.add_argument("--physics-sigma", type=float, default=math.inf, help="... acting at σ <= this")
    ap.add_argument("--observe", choices=("both", "u"), default="both",
                    help="both channels at each point, or the pressure u alone (OBS.npz channels [1])")
    ap.add_argument("--out", default="benchmarks/results/fields_darcy.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.residual_scale:
        return _residual_scale()
    if not args.run:
        raise SystemExit("--run is required (a trained darcy run), unless --residual-scale")
    from noisecraft.runs import Run

    run = Run.open(args.run)
    if run.config.data.source != "darcy":
        raise SystemExit(f"--run must be a darcy run; {args.run!r} was trained on {run.config.data.source!r}")
    opts = dict(run.config.data.options)
    test, train = load_darcy(split="test", **opts), load_darcy(split="train", **opts)
    if args.first + args.fields > len(test.data):
        raise SystemExit(f"--first + --fields = {args.first + args.fields} > the {len(test.data)} test fields")
    u_info = test.channels_info[1]
    prior, sigma_data = run.denoiser(args.weights), run.config.process.sigma_data
    flat, flat_std = mean_baseline(train.data), train.data.double().std(0)
    physics = dict(physics=field_physics("darcy", opts), physics_step=args.physics, physics_sigma_max=args.physics_sigma)
    channels = None if args.observe == "both" else [1]
    limits = {m: int(k) for m, k in (item.split(":") for item in args.limit.split(",") if item)}
    rows = []

    def write():
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "machine": machine_info(), "summary": field_summary(rows), "rows": rows}, f, indent=1)

    for k in range(args.first, args.first + args.fields):  # field by field: a stopped run keeps whole fields
        for frac in (float(f) for f in args.fractions.split(",")):
            truth = test.data[k].double()
            obs = random_observations(truth, frac, seed=k, channels=channels)
            methods = [m for m in args.methods.split(",") if k - args.first < limits.get(m, args.fields)]
            res = reconstruction_results(truth, obs, k, prior, methods, partial(_scores, u_info=u_info), n=args.n,
                                         solver=args.solver, nfe=args.nfe, sigma_data=sigma_data, zeta=args.zeta,
                                         flat=flat, flat_std=flat_std, physics=physics)
            for v in res.values():
                for ch in ("a", "u"):
                    gp_err = res["gp"][f"{ch}_rel_l2"]  # 0 when a field is one value and the GP fits it exactly
                    v[f"{ch}_error_vs_gp"] = v[f"{ch}_rel_l2"] / gp_err if gp_err > 0 else float("nan")
            rows.append({"fraction": frac, "field": k, "observations": obs.count, "results": res})
            print(frac, k, {m: (round(v["a_error_vs_gp"], 3), round(v["u_error_vs_gp"], 3)) for m, v in res.items()},
                  flush=True)
        write()
    write()
    for key, s in field_summary(rows).items():
        print(key, s["fields"], {k: round(v["median"], 3) for k, v in s.items() if k != "fields"})


if __name__ == "__main__":
    main()
