"""Sampler accuracy on TRAINED networks: noisecraft's ODE solvers vs diffusers' EDM schedulers.

The mixture benchmark (samplers_family.py) scores solvers against an exact PF-ODE; here the network is a
trained run's EMA denoiser D(x, σ, class_labels) in the EDM (VE, σ ∈ [0.002, 80]) formulation, so the
reference is a very accurate numerical solution of the same conditional PF-ODE (guidance 1, one fixed
class per sample) from the same start x = 80·noise:

  reference   scipy DOP853 in log σ (noisecraft.solve_pf_ode) at rtol = atol = 1e-8; checked against the
              same solve at 1e-6 (their RMSE difference is reported) and against diffusers EDMEuler
              (Karras) with many steps, which checks the wrapping of D for diffusers.
  ours        every deterministic noisecraft solver with its default schedule, via noisecraft.sample.
  theirs      diffusers' EDM schedulers (samplers_family.edm_range: EDMEuler karras/exponential,
              EDMDPMSolverMultistep o2/o3 midpoint/heun karras/exponential, EDMEuler on our schedule)
              driving the same network: the scheduler hands c_in·x, we return the EDM-preconditioned
              raw output F = (D - c_skip·x)/c_out at the scheduler's σ, which the scheduler turns back into D.
              Each configuration gets the most steps whose calls fit in the NFE budget.

The network runs in float64 (cast from its float32 weights) so that the adaptive reference can reach a
tolerance far below the solvers' errors; every sampler sees the same float64 network.
Error: RMSE over all samples and coordinates of the final sample vs the reference.

    python benchmarks/samplers_trained.py --run /work/main/runs/demo --name demo
    python benchmarks/samplers_trained.py --run /tmp/waves-run --name waves
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402
import samplers_family as fam  # noqa: E402  (EDM-range diffusers configs, plans and driving loop)

from noisecraft import DEFAULT_SOLVER, sample, solve_pf_ode  # noqa: E402
from noisecraft.runs import Run  # noqa: E402

warnings.filterwarnings("ignore")
F64, NFES = fam.F64, fam.NFES  # the same NFE grid as the mixture family
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


class Counted:
    """The float64 denoiser with fixed conditions; counts batch calls."""

    def __init__(self, den, cond: dict):
        self.den, self.cond, self.calls = den, cond, 0

    def __call__(self, x: Tensor, sigma: Tensor, **_ignored) -> Tensor:
        self.calls += 1
        with torch.no_grad():
            return self.den(x.to(F64), sigma.to(F64).reshape(-1).expand(x.shape[0]), **self.cond)


class TrainedNets:
    """samplers_family.Nets' interface for a trained denoiser: family "edm" only. The scheduler gives
    x_in = c_in·x; the σ is read from the scheduler's own table (the σ it steps with)."""

    def __init__(self, den: Counted):
        self.den, self.scheduler = den, None

    def __call__(self, family: str, x_in: Tensor, t) -> Tensor:
        assert family == "edm", family
        s = self.scheduler
        i = s.step_index if s.step_index is not None else 0
        sig, sd = float(s.sigmas[i]), float(s.config.sigma_data)
        x = x_in.to(F64) * math.sqrt(sig**2 + sd**2)
        c_skip, c_out = sd**2 / (sig**2 + sd**2), sig * sd / math.sqrt(sig**2 + sd**2)
        d = self.den(x, torch.full((x.shape[0],), sig, dtype=F64))
        return (d - c_skip * x) / c_out


def rmse(a: Tensor, b: Tensor) -> float | None:
    if not torch.isfinite(a).all():
        return None
    return float((a.to(F64) - b).pow(2).mean().sqrt())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--check-rtol", type=float, default=1e-6)
    ap.add_argument("--check-steps", type=int, default=256, help="EDMEuler steps for the wrapping check")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    t_start = time.time()
    info = machine_info()

    run = Run.open(args.run)
    den = run.denoiser("ema").double()
    c = run.conditioner("class_labels")
    cond = {}
    if c is not None:  # classes in turn: a fixed class per sample
        net = getattr(den, "net", den)
        cond = {k: v.to(F64) for k, v in c.sample_inputs(net, c.prepare(None, args.n), "cpu").items()}
    f = Counted(den, cond)
    g = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(args.n, *run.shape, generator=g, dtype=F64)
    x0 = SIGMA_MAX * noise

    def timed_ref(rtol):
        f.calls, t = 0, time.time()
        out = solve_pf_ode(f, x0, SIGMA_MAX, 0.0, rtol=rtol, atol=rtol)
        return out, f.calls, time.time() - t

    ref, ref_calls, ref_s = timed_ref(args.rtol)
    chk, chk_calls, _ = timed_ref(args.check_rtol)
    ref_scale = float(ref.pow(2).mean().sqrt())
    print(f"reference rtol {args.rtol:g}: {ref_calls} calls, {ref_s:.0f} s; rtol {args.check_rtol:g}: {chk_calls} "
          f"calls; RMSE between them {rmse(chk, ref):.2e} (sample RMS {ref_scale:.3f})", flush=True)

    rng = fam.edm_range()
    cache: dict = {}
    plans: dict = {}
    nets = TrainedNets(f)
    euler = next(cfg for cfg in rng.configs if cfg.label == "EDMEuler karras")
    wrap_check = {}
    for steps in (args.check_steps // 4, args.check_steps):
        out, _ = fam.run_diffusers(rng, euler, steps, x0, SIGMA_MAX, nets, cache)
        wrap_check[steps] = rmse(out, ref)
    print(f"EDMEuler karras vs reference: {wrap_check}", flush=True)

    rows = {}
    for nfe in NFES:
        ours = {}
        for solver in fam.DETERMINISTIC:
            try:
                f.calls = 0
                out = sample(f, noise, solver=solver, nfe=nfe, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)
                ours[solver] = rmse(out, ref)
            except ValueError:
                ours[solver] = None
        theirs = {}
        pl = fam.plan(rng, nfe, cache, plans)
        for cfg in rng.configs:
            p = pl.get(cfg.label)
            if p is None:
                continue
            steps, s0 = p
            if abs(s0 - SIGMA_MAX) > 1e-6 * SIGMA_MAX:  # every EDM config starts at σ_max; skip otherwise
                continue
            f.calls = 0
            out, calls = fam.run_diffusers(rng, cfg, steps, x0, s0, nets, cache)
            if calls <= nfe and f.calls <= nfe:
                theirs[cfg.label] = rmse(out, ref)
        rows[nfe] = {"ours": ours, "theirs": theirs}
        bo, bt = fam._min(ours), fam._min(theirs)
        print(f"NFE {nfe}: best ours {bo}, best theirs {bt}, {time.time() - t_start:.0f} s", flush=True)

    runtime = time.time() - t_start
    md = summary(args, run, rows, ref_calls, chk_calls, rmse(chk, ref), ref_scale, wrap_check, runtime, info)
    data = {"run": str(args.run), "n": args.n, "seed": args.seed, "rtol": args.rtol, "check_rtol": args.check_rtol,
            "reference_calls": ref_calls, "check_calls": chk_calls, "reference_check_rmse": rmse(chk, ref),
            "sample_rms": ref_scale, "edm_euler_check": wrap_check, "rows": rows, "runtime_s": runtime,
            "machine": info}
    md_path, _ = write_outputs(Path(args.out), f"samplers_trained_{args.name}", md, data)
    print(md)
    print(f"wrote {md_path}")


def summary(args, run, rows, ref_calls, chk_calls, ref_err, ref_scale, wrap_check, runtime, info) -> str:
    lines = [f"### {args.name}: {run!r}", "",
             f"{args.n} samples (seed {args.seed}, classes in turn, guidance 1), float64 network. Reference: "
             f"DOP853 rtol=atol={args.rtol:g} ({ref_calls} calls); the same at {args.check_rtol:g} ({chk_calls} calls) "
             f"differs from it by RMSE {ref_err:.1e} (sample RMS {ref_scale:.3f}). Wrapping check, diffusers "
             "EDMEuler karras vs reference: " + ", ".join(f"{k} steps {v:.1e}" for k, v in wrap_check.items())
             + f". Runtime {runtime:.0f} s.", "",
             f"| NFE | best ours (solver) | default {DEFAULT_SOLVER} | best diffusers (config) | best ours / best theirs "
             f"| default / best theirs | EDMEuler karras | EDMDPM o2 midpoint karras |",
             "|---|---|---|---|---|---|---|---|"]
    for nfe, r in rows.items():
        so, vo = fam._min(r["ours"])
        st, vt = fam._min(r["theirs"])
        dv = r["ours"].get(DEFAULT_SOLVER)
        e1 = r["theirs"].get("EDMEuler karras")
        e2 = r["theirs"].get("EDMDPMSolverMultistep o2 midpoint karras")
        fmt = lambda v: "—" if v is None else f"{v:.2e}"  # noqa: E731
        ratio = lambda a, b: "—" if a is None or b is None else f"{a / b:.2f}"  # noqa: E731
        lines.append(f"| {nfe} | {fmt(vo)} ({so}) | {fmt(dv)} | {fmt(vt)} ({st}) | {ratio(vo, vt)} | {ratio(dv, vt)} "
                     f"| {fmt(e1)} | {fmt(e2)} |")
    lines += ["", machine_markdown(info), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
