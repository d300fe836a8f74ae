"""The low-NFE schedule lead (`noisecraft.uniform_t_open`, found in schedule_study.py) on TRAINED networks.

    python benchmarks/schedule_rule_trained.py --run /tmp/waves-run --name waves
    python benchmarks/schedule_rule_trained.py --run runs/demo --name demo --rtol 1e-5

The lead (docs/benchmarks-samplers-family.md, last sections): unipc_3 on "uniform t" steps ending at
t_max/n instead of σ_min beat the current default (unipc_3 on the log-linear knee schedule) on fresh
Gaussian mixtures at every NFE 3-8. Before it can become a default it must hold on trained networks,
where the last step hands the result to one denoiser output from a moderately noisy state. This runs
both schedules with unipc_3 at NFE 3-8 on a run's EMA denoiser (float64, classes in turn, guidance 1),
from the same noise, against a tight adaptive PF-ODE reference (as samplers_trained.py), and prints the
RMSE of each and their ratio (rule / default; < 1 = the rule is better).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402
from samplers_trained import F64, SIGMA_MAX, SIGMA_MIN, Counted, rmse  # noqa: E402
from noisecraft import loglinear, sample, solve_pf_ode, uniform_t_open  # noqa: E402
from noisecraft.runs import Run  # noqa: E402

NFES = (3, 4, 5, 6, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seeds", default="0,1", help="noise seeds, comma separated (each a batch of n)")
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    t0 = time.time()
    run = Run.open(args.run)
    den = run.denoiser("ema").double()
    c = run.conditioner("class_labels")
    cond = {}
    if c is not None:
        net = getattr(den, "net", den)
        cond = {k: v.to(F64) for k, v in c.sample_inputs(net, c.prepare(None, args.n), "cpu").items()}
    f = Counted(den, cond)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        noise = torch.randn(args.n, *run.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
        ref = solve_pf_ode(f, SIGMA_MAX * noise, SIGMA_MAX, 0.0, rtol=args.rtol, atol=args.rtol)
        for nfe in NFES:
            knee = loglinear(nfe, SIGMA_MIN, SIGMA_MAX, knee=10.0, knee_density=0.25)  # the default before the rule
            default = rmse(sample(f, noise, solver="unipc_3", sigmas=knee), ref)
            sig = uniform_t_open(nfe, SIGMA_MIN, SIGMA_MAX)
            rule = rmse(sample(f, noise, solver="unipc_3", sigmas=sig), ref)  # sig[0] = σ_max: same start
            rows.append({"seed": seed, "nfe": nfe, "default": default, "rule": rule, "ratio": rule / default})
            print(f"seed {seed} NFE {nfe}: default {default:.3e}, rule {rule:.3e}, ratio {rule / default:.2f}", flush=True)
    lines = [f"### {args.name}: {run!r}", "",
             f"unipc_3, {args.n} samples per seed, seeds {args.seeds}, float64 network, reference DOP853 rtol {args.rtol:g}. "
             "RMSE vs the reference; ratio = uniform_t_open / default (< 1: the rule is better).", "",
             "| NFE | " + " | ".join(f"seed {s} default | seed {s} rule | ratio" for s in args.seeds.split(",")) + " |",
             "|---|" + "---|---|---|" * len(args.seeds.split(","))]
    for nfe in NFES:
        cells = [f"{r['default']:.2e} | {r['rule']:.2e} | {r['ratio']:.2f}" for r in rows if r["nfe"] == nfe]
        lines.append(f"| {nfe} | " + " | ".join(cells) + " |")
    lines += ["", machine_markdown(machine_info()) + f" Runtime {time.time() - t0:.0f} s.", ""]
    md = "\n".join(lines)
    write_outputs(Path(args.out), f"schedule_rule_trained_{args.name}", md, {"rows": rows, "args": vars(args)})
    print(md)


if __name__ == "__main__":
    main()
