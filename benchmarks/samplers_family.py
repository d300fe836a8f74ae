"""Sampler accuracy over a random family of exact Gaussian mixtures: noisecraft vs diffusers, per σ range.

    python benchmarks/samplers_family.py [--mixtures 50] [--batch 256] [--out benchmarks/out]

A figure measured on one mixture (benchmarks/samplers.py) is a claim about that mixture. This script
draws a seeded family and reports the spread of the error ratio over it, separately on a tuning half
(even seeds: look here to choose defaults) and a held-out half (odd seeds: report these).

The family (mixture i uses torch.Generator seeded 1000 + i):
  * dimension D log-uniform in [2, 512]; components K log-uniform in [2, 128], then capped so that
    D·K <= --cost-cap (default 4096; caps K for D > 32, so large D come with fewer components);
  * means uniform in [-a, a]^D with a log-uniform in [0.5, 1] (data roughly in [-1, 1]);
  * one width ratio r log-uniform in [0.01, 1] per mixture; per-component, per-dimension standard
    deviations r·spread·U(0.5, 1.5), spread = a/sqrt(3) (the standard deviation of the means);
  * weights Dirichlet(1, ..., 1).

σ ranges (σ-space, x = x0 + σ·ε):
  ddpm  σ ∈ [0.0100, 157.4]: DDPM, 1000 linear betas 1e-4..0.02 (what benchmarks/samplers.py uses).
        diffusers: every DDPM-table scheduler configuration of benchmarks/samplers.py (DDIM, PNDM,
        DPM-Solver multistep/singlestep, UniPC, DEIS, SA-Solver, Euler, Heun, LMS, KDPM2, with their
        spacings and Karras/exponential/beta/Lu sigmas) on the exact ε-network.
  edm   σ ∈ [0.002, 80]: diffusers' EDM schedulers (EDMEuler, EDMDPMSolverMultistep order 2/3,
        midpoint/heun, Karras/exponential) on the exact EDM-preconditioned network.
  flow  σ = t/(1-t), t ∈ [1e-3, 1-1e-3] (σ ∈ [0.001, 999]; t_max is where diffusers' flow sigmas
        start, FlowProcess defaults to t_max = 0.995). diffusers: FlowMatchEuler given t-arrays for
        uniform t, SD3 shift 3, Karras and exponential σ; DPMSolverMultistep and UniPC with
        use_flow_sigmas (shift 1 and 3) on the exact velocity network v = ε - x0.
  In every range diffusers additionally runs on noisecraft's default schedule (log-linear, knee 10)
  where the scheduler accepts custom sigmas/timesteps ("diffusers on our schedule"): Euler (ddpm),
  DPMSolverMultistep o2/o3 via timesteps rounded to the table (ddpm), EDMEuler (edm), FlowMatchEuler
  and UniPC (flow).

Error: RMS distance (per element) of the final sample from the exact PF-ODE solution. All runs of
one mixture and range lie on one exact trajectory: the PF-ODE from σ_max·noise, solved with
`solve_pf_ode` (DOP853, rtol = atol = 1e-10) through every σ at which some run starts. noisecraft
starts at σ_max·noise; a diffusers run starts at its scheduler's first σ from the exact trajectory
state there (a 'leading' spacing starting below σ_max therefore gets its skipped top for free, as in
benchmarks/samplers.py). So every run is scored against the same endpoint. Float64 throughout.

Per mixture, range and NFE (model calls actually made, counted):
  ours      the best noisecraft ODE solver with its default schedule (all deterministic entries of
            SOLVERS, adaptive_rk with the NFE as cap);
  default   the package default `SamplingSpec()` solver and `sample()`'s default solver (both
            noisecraft.sampling.DEFAULT_SOLVER, with its default schedule) at that NFE;
  theirs    the best diffusers configuration (native schedules and ours); theirs_native without our
            schedule; theirs_ours the best diffusers run on our schedule.
optimize_schedule at NFE 10 (held-out half): the solver is the one with the best median ratio at
NFE 10 on the tuning half; calibration and validation batches (--calib samples each) are fresh draws
independent of the evaluation noise; the returned schedule is evaluated on the evaluation noise.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402
import samplers as base  # noqa: E402  (the single-mixture benchmark: diffusers configs, ε-network)

import diffusers  # noqa: E402

from noisecraft import DEFAULT_SOLVER, SOLVERS, GaussianMixture, SamplingSpec, default_sigmas, get_schedule, optimize_schedule  # noqa: E402
from noisecraft import sample, solve_pf_ode  # noqa: E402

warnings.filterwarnings("ignore")
F64 = torch.float64
NFES = [3, 4, 5, 6, 8, 10, 15, 20]
DETERMINISTIC = [n for n, i in SOLVERS.items() if not i.stochastic]
PACKAGE_DEFAULT = SamplingSpec().solver  # = DEFAULT_SOLVER since issue 11
SAMPLE_DEFAULT = DEFAULT_SOLVER  # sample()'s default solver
DEFAULTS = list(dict.fromkeys((PACKAGE_DEFAULT, SAMPLE_DEFAULT)))  # one column per distinct default solver
OUR_SCHEDULE = ("loglinear", {"knee": 10.0, "knee_density": 0.25})  # the multistep solvers' default


# ----------------------------------------------------------------------------------------------
# The family


@dataclass
class Member:
    seed: int
    mixture: GaussianMixture
    dim: int
    components: int
    width_ratio: float
    half: str  # "tuning" (even seed) or "held-out" (odd seed)


def make_member(i: int, cost_cap: int) -> Member:
    g = torch.Generator().manual_seed(1000 + i)
    u = lambda: float(torch.rand((), generator=g, dtype=F64))  # noqa: E731
    d = int(round(math.exp(math.log(2) + u() * math.log(256))))
    k = int(round(math.exp(math.log(2) + u() * math.log(64))))
    k = max(2, min(k, cost_cap // d))
    a = math.exp(math.log(0.5) + u() * math.log(2))
    r = math.exp(math.log(0.01) + u() * math.log(100))
    means = (2 * torch.rand(k, d, generator=g, dtype=F64) - 1) * a
    stds = r * (a / math.sqrt(3)) * (0.5 + torch.rand(k, d, generator=g, dtype=F64))
    weights = -torch.log(torch.rand(k, generator=g, dtype=F64).clamp_min(1e-300))  # Dirichlet(1)
    return Member(i, GaussianMixture(means, stds, weights), d, k, r, "tuning" if i % 2 == 0 else "held-out")


# ----------------------------------------------------------------------------------------------
# σ ranges and the diffusers side


@dataclass
class Range:
    name: str
    sigma_min: float
    sigma_max: float
    configs: list  # of base.DConfig; family "vp" | "sigma" | "edm" | "flow"
    process: Any = None


@dataclass
class Custom:
    """A diffusers configuration driven on an explicit schedule (our default), not its own."""

    label: str
    cls: str
    kwargs: dict
    family: str
    schedule: Callable[[int], dict]  # nfe -> set_timesteps kwargs


def ddpm_range() -> Range:
    process = base.process_from_scheduler(diffusers.DDPMScheduler(**base.TRAIN))
    fake = type("P", (), {"sigma_min": process.sigma_min, "sigma_max": process.sigma_max})()
    configs = [c for c in base.diffusers_configs(fake) if c.family != "edm"]
    r = Range("ddpm", process.sigma_min, process.sigma_max, configs, process)
    eps = {**base.TRAIN, "prediction_type": "epsilon"}

    def sig(nfe):  # our schedule, nfe steps (1 call each)
        return get_schedule(OUR_SCHEDULE[0], nfe, r.sigma_min, r.sigma_max, **OUR_SCHEDULE[1])

    def t_of(nfe):  # our σ's as integer training timesteps (DPMSolverMultistep accepts only those)
        s = sig(nfe)[:-1]
        log_table = torch.log(process.sigmas)
        t = [float(torch.argmin((log_table - math.log(float(v))).abs())) for v in s]
        return [int(v) for v in t]

    r.configs += [
        Custom("EulerDiscrete on our schedule", "EulerDiscreteScheduler", eps, "sigma",
               lambda n: {"sigmas": sig(n).tolist()}),
        *[Custom(f"DPMSolverMultistep++ o{o} on our schedule (integer timesteps)", "DPMSolverMultistepScheduler",
                 {**eps, "solver_order": o, "algorithm_type": "dpmsolver++"}, "vp", lambda n: {"timesteps": t_of(n)})
          for o in (2, 3)],
    ]
    return r


def edm_range() -> Range:
    lo, hi = 0.002, 80.0
    edm = dict(sigma_min=lo, sigma_max=hi, sigma_data=base.SIGMA_DATA, num_train_timesteps=1000,
               prediction_type="epsilon")
    configs: list = []
    for sched in ("karras", "exponential"):
        configs.append(base.DConfig(f"EDMEuler {sched}", "EDMEulerScheduler", {**edm, "sigma_schedule": sched}, "edm"))
        for order in (2, 3):
            for st in ("midpoint", "heun"):
                configs.append(base.DConfig(f"EDMDPMSolverMultistep o{order} {st} {sched}",
                                            "EDMDPMSolverMultistepScheduler",
                                            {**edm, "sigma_schedule": sched, "solver_order": order, "solver_type": st},
                                            "edm"))

    def ramp(n):  # EDMEuler's custom 'sigmas' are the Karras ramp in [0, 1]: invert it for our σ's
        s = get_schedule(OUR_SCHEDULE[0], n, lo, hi, **OUR_SCHEDULE[1])[:-1]
        a, b = hi ** (1 / 7), lo ** (1 / 7)
        return {"sigmas": ((s ** (1 / 7) - a) / (b - a)).clamp(0, 1)}

    configs.append(Custom("EDMEuler on our schedule", "EDMEulerScheduler", {**edm, "sigma_schedule": "karras"},
                          "edm", ramp))
    return Range("edm", lo, hi, configs)


def flow_range() -> Range:
    t_lo, t_hi = 1e-3, 1 - 1e-3
    lo, hi = t_lo / (1 - t_lo), t_hi / (1 - t_hi)
    base_kw = {"num_train_timesteps": 1000}
    configs: list = []

    def t_array(kind: str, n: int) -> list[float]:
        if kind == "uniform t":
            t = torch.linspace(t_hi, t_lo, n, dtype=F64)
        elif kind == "shift 3":
            u = torch.linspace(t_hi, t_lo, n, dtype=F64)
            u = u / (3 - 2 * u)  # unshift the ends so that the shifted grid spans [t_lo, t_hi]
            u = torch.linspace(float(u[0]), float(u[-1]), n, dtype=F64)
            t = 3 * u / (1 + 2 * u)
        else:
            name, opts = {"karras": ("karras", {}), "exponential": ("loglinear", {}), "ours": OUR_SCHEDULE}[kind]
            s = get_schedule(name, n, lo, hi, **opts)[:-1]
            t = s / (1 + s)
        return t.tolist()

    for kind in ("uniform t", "shift 3", "karras", "exponential", "ours"):
        label = "FlowMatchEuler on our schedule" if kind == "ours" else f"FlowMatchEuler {kind}"
        configs.append(Custom(label, "FlowMatchEulerDiscreteScheduler", base_kw, "flow",
                              lambda n, kind=kind: {"sigmas": t_array(kind, n)}))
    flow = {**base_kw, "prediction_type": "flow_prediction", "use_flow_sigmas": True}
    for shift in (1.0, 3.0):
        for order in (2, 3):
            configs.append(base.DConfig(f"DPMSolverMultistep++ o{order} flow shift {shift:g}",
                                        "DPMSolverMultistepScheduler",
                                        {**flow, "flow_shift": shift, "solver_order": order,
                                         "algorithm_type": "dpmsolver++"}, "flow"))
            configs.append(base.DConfig(f"UniPC o{order} bh2 flow shift {shift:g}", "UniPCMultistepScheduler",
                                        {**flow, "flow_shift": shift, "solver_order": order}, "flow"))
    for order in (2, 3):
        configs.append(Custom(f"UniPC o{order} bh2 on our schedule", "UniPCMultistepScheduler",
                              {**flow, "solver_order": order}, "flow",
                              lambda n: {"sigmas": np.array(t_array("ours", n))}))
    return Range("flow", lo, hi, configs)


def _batch(v: Any, b: int) -> Tensor:
    v = torch.as_tensor(v).to(F64).reshape(-1)
    return v.expand(b) if v.numel() == 1 else v


class Nets:
    """The exact networks of one mixture for each diffusers family. The flow and EDM networks read σ
    from the scheduler's own table, so the model sees exactly the σ the scheduler steps with."""

    def __init__(self, mixture: GaussianMixture, rng: Range):
        self.mixture, self.rng, self.scheduler = mixture, rng, None

    def current_sigma(self) -> float:
        s = self.scheduler
        i = s.step_index if s.step_index is not None else 0
        return float(s.sigmas[i])

    def __call__(self, family: str, x_in: Tensor, t: Any) -> Tensor:
        m, b = self.mixture, x_in.shape[0]
        if family in ("vp", "sigma"):  # ε-network under the DDPM table (x_in = x_t)
            sigma = self.rng.process.sigma(_batch(t, b))
            s = sigma.reshape(-1, *[1] * (x_in.ndim - 1))
            x = x_in.to(F64) * torch.sqrt(1 + s**2)
            return (x - m(x, sigma)) / s
        if family == "edm":  # EDM-preconditioned F (Karras et al. 2022, Eq. 7); x_in = c_in·x
            sd, sig = base.SIGMA_DATA, self.current_sigma()
            x = x_in.to(F64) * math.sqrt(sig**2 + sd**2)
            c_skip, c_out = sd**2 / (sig**2 + sd**2), sig * sd / math.sqrt(sig**2 + sd**2)
            return (m(x, torch.full((b,), sig, dtype=F64)) - c_skip * x) / c_out
        # flow: x_t = (1-t)·x0 + t·ε = x/(1+σ); v = ε - x0 with ε = (x - D)/σ
        t_now = self.current_sigma()
        sig = t_now / (1 - t_now)
        x = x_in.to(F64) * (1 + sig)
        d = m(x, torch.full((b,), sig, dtype=F64))
        return (x - d) / sig - d


def _sigma_of_start(rng: Range, scheduler, cfg) -> float:
    """The σ-space σ at which a configured scheduler's first step starts."""
    if cfg.family == "flow":
        t0 = float(scheduler.sigmas[0])
        return t0 / (1 - t0)
    sigmas = getattr(scheduler, "sigmas", None)
    if cfg.family in ("sigma", "edm") or (isinstance(sigmas, Tensor) and sigmas.numel() > 1):
        return float(sigmas[0])
    return float(rng.process.sigmas[int(scheduler.timesteps[0])])  # DDIM/PNDM keep only ᾱ


def _prepared(cfg, steps_or_nfe: int, cache: dict):
    """A scheduler with set_timesteps done (deep-copied from a cache: construction is the slow part)."""
    key = (cfg.label, steps_or_nfe)
    if key not in cache:
        sch = getattr(diffusers, cfg.cls)(**cfg.kwargs)
        if isinstance(cfg, Custom):
            sch.set_timesteps(**cfg.schedule(steps_or_nfe))
        else:
            sch.set_timesteps(steps_or_nfe)
        cache[key] = sch
    return copy.deepcopy(cache[key])


def run_diffusers(rng: Range, cfg, n: int, x_start: Tensor, sigma_start: float, nets: Nets,
                  cache: dict) -> tuple[Tensor, int]:
    """(σ-space output, model calls) of one sampling loop from σ-space x_start at sigma_start."""
    sch = _prepared(cfg, n, cache)
    nets.scheduler = sch
    if cfg.family == "vp":
        latents = x_start / math.sqrt(1 + sigma_start**2)  # x_t
    elif cfg.family == "flow":
        latents = x_start / (1 + sigma_start)
    else:
        latents = x_start.clone()  # σ-space x (Euler/EDM-style samples)
    calls = 0
    for t in sch.timesteps:
        x_in = sch.scale_model_input(latents, t) if hasattr(sch, "scale_model_input") else latents
        out = nets(cfg.family, x_in, t)
        calls += 1
        latents = sch.step(out, t, latents).prev_sample
    return latents.to(F64), calls


def plan(rng: Range, nfe: int, cache: dict, plans: dict) -> dict:
    """label -> (steps, σ_start) of the largest step count whose calls fit in nfe (None: none fits).
    Calls do not depend on the model, so plans are found once per range with a zero network."""
    if nfe in plans:
        return plans[nfe]
    zero = GaussianMixture(torch.zeros(1, 2, dtype=F64), torch.ones(1, dtype=F64))
    nets = Nets(zero, rng)
    x = torch.ones(1, 2, dtype=F64)
    out = {}
    for cfg in rng.configs:
        def calls(steps):
            try:
                sch = _prepared(cfg, steps, cache)
                return run_diffusers(rng, cfg, steps, x, _sigma_of_start(rng, sch, cfg), nets, cache)[1]
            except Exception:
                return None
        if isinstance(cfg, Custom):  # our schedule at exactly nfe steps of one call
            c = calls(nfe)
            out[cfg.label] = (nfe, _sigma_of_start(rng, _prepared(cfg, nfe, cache), cfg)) if c == nfe else None
            continue
        best = None
        for steps in range(nfe, 0, -1):
            c = calls(steps)
            if c is not None and c <= nfe:
                best = steps
                break
        out[cfg.label] = None if best is None else (best, _sigma_of_start(rng, _prepared(cfg, best, cache), cfg))
    plans[nfe] = out
    return out


# ----------------------------------------------------------------------------------------------
# One mixture in one range


def trajectory(mixture: GaussianMixture, noise: Tensor, sigma_max: float, starts: list[float]) -> tuple[dict, Tensor, int]:
    """Exact PF-ODE states at σ_max and at each start σ, and the end state at σ = 0; and the calls spent.
    The trajectory starts at the highest of them, σ_top·noise (σ_top > σ_max where a diffusers schedule
    starts above the range, e.g. flow shift 3 at t = 0.9997)."""
    counted = base.Counted(mixture)
    top = max([sigma_max, *starts])
    states = {top: noise * top}
    x, s = states[top], top
    for target in sorted(set(starts) | {sigma_max}, reverse=True):
        if target < s:
            x, s = solve_pf_ode(counted, x, s, target), target
        states[target] = x
    end = solve_pf_ode(counted, x, s, 0.0)
    return states, end, counted.calls


def per_sample_mse(out: Tensor, ref: Tensor) -> Tensor:
    return (out.to(F64) - ref).reshape(out.shape[0], -1).pow(2).mean(1)


def rmse(out: Tensor, ref: Tensor) -> float | None:
    if not torch.isfinite(out).all():
        return None
    return float(per_sample_mse(out, ref).mean().sqrt())


def bench_member(member: Member, rng: Range, noise: Tensor, cache: dict, plans: dict) -> dict:
    mixture = member.mixture
    all_plans = {nfe: plan(rng, nfe, cache, plans) for nfe in NFES}
    starts = [p[1] for pl in all_plans.values() for p in pl.values() if p is not None]
    states, ref, ref_calls = trajectory(mixture, noise, rng.sigma_max, starts)
    ours_noise = states[rng.sigma_max] / rng.sigma_max  # sample() starts at σ_max·noise: on the trajectory
    rows: dict[int, dict] = {}
    for nfe in NFES:
        ours = {}
        for solver in DETERMINISTIC:
            try:
                out = sample(mixture, ours_noise, solver=solver, nfe=nfe, sigma_min=rng.sigma_min, sigma_max=rng.sigma_max)
                ours[solver] = rmse(out, ref)
            except ValueError:
                ours[solver] = None
        theirs = {}
        nets = Nets(mixture, rng)
        for cfg in rng.configs:
            p = all_plans[nfe][cfg.label]
            if p is None:
                continue
            steps, s0 = p
            try:
                out, calls = run_diffusers(rng, cfg, steps, states[s0], s0, nets, cache)
            except Exception:
                continue
            if calls <= nfe:
                theirs[cfg.label] = rmse(out, ref)
        rows[nfe] = {"ours": ours, "theirs": theirs}
    result = {"seed": member.seed, "range": rng.name, "half": member.half, "dim": member.dim,
            "components": member.components, "width_ratio": member.width_ratio, "reference_calls": ref_calls,
            "rows": rows}
    return result, (ours_noise, ref)


# ----------------------------------------------------------------------------------------------
# Summaries


def _min(d: dict, keep=lambda k: True) -> tuple[str | None, float | None]:
    c = {k: v for k, v in d.items() if v is not None and keep(k)}
    if not c:
        return None, None
    k = min(c, key=c.get)
    return k, c[k]


def ratios(result: dict, nfe: int) -> dict:
    row = result["rows"][nfe]
    o_name, o = _min(row["ours"])
    t_name, t = _min(row["theirs"])
    _, tn = _min(row["theirs"], lambda k: "our schedule" not in k)
    _, to = _min(row["theirs"], lambda k: "our schedule" in k)
    div = lambda a, b: (a / b) if a is not None and b else None  # noqa: E731
    return {"ours_solver": o_name, "theirs_config": t_name, "ours/theirs": div(o, t), "ours/theirs_native": div(o, tn),
            "theirs_ours/theirs_native": div(to, tn), "ours/theirs_ours": div(o, to),
            **{f"{d}/theirs": div(row["ours"].get(d), t) for d in DEFAULTS}}


COLUMNS = ["ours/theirs", "ours/theirs_native", "ours/theirs_ours", "theirs_ours/theirs_native",
           *(f"{d}/theirs" for d in DEFAULTS)]


def defaults_legend() -> str:
    """Which default each `<solver>/theirs` column is (one column when both defaults are the same solver)."""
    roles = {d: [w for w, s in (("SamplingSpec()'s", PACKAGE_DEFAULT), ("sample()'s", SAMPLE_DEFAULT)) if s == d]
             for d in DEFAULTS}
    return "; ".join(f"{d} = {' and '.join(r)} default solver" for d, r in roles.items()) + ".\n"


def quantile(values: list[float], q: float) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(torch.tensor(v, dtype=F64).quantile(q)) if v else None


def table(results: list[dict], half: str, rng: str) -> tuple[list[str], list[dict]]:
    rs = [r for r in results if r["half"] == half and r["range"] == rng]
    lines = [f"#### {rng} range, {half} half ({len(rs)} mixtures): median / 90th percentile of the error ratio\n",
             "| NFE | " + " | ".join(COLUMNS) + " | ours better |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    out = []
    for nfe in NFES:
        rr = [ratios(r, nfe) for r in rs]
        cells, stats = [], {"nfe": nfe}
        for c in COLUMNS:
            med, p90 = quantile([x[c] for x in rr], 0.5), quantile([x[c] for x in rr], 0.9)
            stats[c] = {"median": med, "p90": p90}
            cells.append("n/a" if med is None else f"{med:.2f} / {p90:.2f}")
        valid = [x["ours/theirs"] for x in rr if x["ours/theirs"] is not None]
        wins = sum(v < 1 for v in valid)
        stats["ours_better"] = [wins, len(valid)]
        lines.append(f"| {nfe} | " + " | ".join(cells) + f" | {wins}/{len(valid)} |")
        out.append(stats)
    return lines + [""], out


def winners(results: list[dict], half: str, rng: str) -> list[str]:
    """How often each solver / diffusers config is the best of its side (tuning half: a finding)."""
    lines = [f"| NFE | best noisecraft solver (count) | best diffusers config (count) |", "|---|---|---|"]
    for nfe in NFES:
        ours, theirs = {}, {}
        for r in results:
            if r["half"] != half or r["range"] != rng:
                continue
            x = ratios(r, nfe)
            ours[x["ours_solver"]] = ours.get(x["ours_solver"], 0) + 1
            theirs[x["theirs_config"]] = theirs.get(x["theirs_config"], 0) + 1
        fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:3])  # noqa: E731
        lines.append(f"| {nfe} | {fmt(ours)} | {fmt(theirs)} |")
    return lines + [""]


def best_solver_on_tuning(results: list[dict], rng: str, nfe: int) -> str:
    """The fixed-step noisecraft solver with the lowest median error ratio to the best diffusers
    run at this NFE over the tuning half (the choice optimize_schedule is given)."""
    med = {}
    for solver in DETERMINISTIC:
        if SOLVERS[solver].adaptive:
            continue
        vals = []
        for r in results:
            if r["half"] != "tuning" or r["range"] != rng:
                continue
            row = r["rows"][nfe]
            _, t = _min(row["theirs"])
            if row["ours"].get(solver) is not None and t:
                vals.append(row["ours"][solver] / t)
        if vals:
            med[solver] = quantile(vals, 0.5)
    return min(med, key=med.get)


def bench_optimize(member: Member, rng: Range, noise: Tensor, ref: Tensor, result: dict, solver: str, calib: int,
                   max_evals: int) -> dict:
    """noise: σ_max-scaled start of the evaluation trajectory, ref: its exact end (from bench_member)."""
    nfe = 10
    g = torch.Generator().manual_seed(50_000 + member.seed)
    shape = noise.shape[1:]
    cal = torch.randn(calib, *shape, generator=g, dtype=F64)
    val = torch.randn(calib, *shape, generator=g, dtype=F64)
    start = time.process_time()
    fit = optimize_schedule(member.mixture, cal, validation_noise=val, solver=solver, nfe=nfe,
                            sigma_min=rng.sigma_min, sigma_max=rng.sigma_max, max_evals=max_evals)
    cpu = time.process_time() - start
    mse = {k: per_sample_mse(sample(member.mixture, noise, solver=solver, sigmas=s, nfe=nfe), ref)
           for k, s in (("returned", fit.sigmas), ("default", fit.default_sigmas), ("candidate", fit.candidate_sigmas))}
    se_of = lambda d: float(d.std() / math.sqrt(d.numel()))  # noqa: E731
    diff, naive = mse["returned"] - mse["default"], mse["candidate"] - mse["default"]
    se = se_of(diff)
    _, theirs = _min(result["rows"][nfe]["theirs"])
    err = {k: float(v.mean().sqrt()) for k, v in mse.items()}
    return {"seed": member.seed, "range": rng.name, "solver": solver, "optimized": fit.optimized,
            "fresh_error": err["returned"], "fresh_default_error": err["default"],
            "fresh_candidate_error": err["candidate"], "fresh_diff": float(diff.mean()), "fresh_diff_se": se,
            "fresh_naive_diff": float(naive.mean()), "fresh_naive_diff_se": se_of(naive),
            "theirs_best": theirs, "ratio": err["returned"] / theirs if theirs else None,
            "candidate_ratio": err["candidate"] / theirs if theirs else None,
            "calibration_error": fit.calibration_error, "validation_error": fit.validation_error,
            "validation_default_error": fit.validation_default_error, "calls": fit.denoiser_calls,
            "cpu_s": cpu}


def optimize_table(rows: list[dict]) -> list[str]:
    lines = ["| range | solver (chosen on tuning half) | median optimized / best diffusers | 90th pct | median "
             "default-schedule / best diffusers | kept / fell back | not worse than default on fresh noise "
             "(≤ +2 s.e.) | strictly not worse | naive candidate not worse (≤ +2 s.e.) | median calls per fit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for rng in dict.fromkeys(r["range"] for r in rows):
        rs = [r for r in rows if r["range"] == rng]
        n = len(rs)
        dflt = [r["fresh_default_error"] / r["theirs_best"] for r in rs if r["theirs_best"]]
        kept = sum(r["optimized"] for r in rs)
        ok = sum(r["fresh_diff"] <= 2 * r["fresh_diff_se"] for r in rs)
        strict = sum(r["fresh_error"] <= r["fresh_default_error"] for r in rs)
        naive_ok = sum(r["fresh_naive_diff"] <= 2 * r["fresh_naive_diff_se"] for r in rs)
        lines.append(f"| {rng} | {rs[0]['solver']} | {quantile([r['ratio'] for r in rs], 0.5):.2f} "
                     f"| {quantile([r['ratio'] for r in rs], 0.9):.2f} | {quantile(dflt, 0.5):.2f} | {kept} / {n - kept} "
                     f"| {ok}/{n} | {strict}/{n} | {naive_ok}/{n} | {quantile([r['calls'] for r in rs], 0.5):.0f} |")
    return lines + [""]


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixtures", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0, help="family index of the first mixture (fresh mixtures: >= 50)")
    ap.add_argument("--batch", type=int, default=256, help="evaluation noise samples per mixture")
    ap.add_argument("--cost-cap", type=int, default=4096, help="cap on dimension x components")
    ap.add_argument("--ranges", default="ddpm,edm,flow")
    ap.add_argument("--calib", type=int, default=64, help="optimize_schedule calibration and validation samples")
    ap.add_argument("--max-evals", type=int, default=200, help="optimize_schedule search budget (sampler runs)")
    ap.add_argument("--no-optimize", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--name", default="samplers_family")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    info = machine_info()
    info["torch_threads"] = "1"
    print(machine_markdown(info), flush=True)
    command = "python benchmarks/samplers_family.py " + " ".join(argv if argv is not None else sys.argv[1:])
    builders = {"ddpm": ddpm_range, "edm": edm_range, "flow": flow_range}
    ranges = [builders[n]() for n in args.ranges.split(",")]
    members = [make_member(i, args.cost_cap) for i in range(args.first_seed, args.first_seed + args.mixtures)]

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - wall0:7.1f}s wall, {time.process_time() - cpu0:7.1f}s CPU] {msg}", flush=True)

    results, caches, plans = [], {r.name: {} for r in ranges}, {r.name: {} for r in ranges}
    noises = {}
    for m in members:
        noise = torch.randn(args.batch, m.dim, generator=torch.Generator().manual_seed(20_000 + m.seed),
                                     dtype=F64)
        for rng in ranges:
            res, noises[(m.seed, rng.name)] = bench_member(m, rng, noise, caches[rng.name], plans[rng.name])
            results.append(res)
        progress(f"mixture {m.seed} ({m.half}): D={m.dim} K={m.components} width {m.width_ratio:.3f}")
    optimized = []
    if not args.no_optimize:
        for rng in ranges:
            solver = best_solver_on_tuning(results, rng.name, 10)
            for m in members:
                if m.half != "held-out":
                    continue
                res = next(r for r in results if r["seed"] == m.seed and r["range"] == rng.name)
                optimized.append(bench_optimize(m, rng, *noises[(m.seed, rng.name)], res, solver, args.calib,
                                                args.max_evals))
            progress(f"optimize_schedule {rng.name} ({solver})")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    L = ["# Samplers over a family of Gaussian mixtures: noisecraft vs diffusers\n", machine_markdown(info) + "\n",
         f"Command: `{command}`; {len(members)} mixtures ({sum(m.half == 'held-out' for m in members)} held-out), "
         f"{args.batch} noise samples each, NFE {NFES}; {wall:.0f} s wall, {cpu:.0f} s CPU.\n",
         "Ratios are errors relative to the best diffusers run on the same mixture, σ range and NFE "
         "(< 1: noisecraft is more accurate). ours = best noisecraft solver (default schedules); "
         "theirs = best diffusers configuration including diffusers on our schedule; theirs_native = without it; "
         "theirs_ours = best diffusers run on our schedule; "
         + defaults_legend()]
    tables = {}
    for half in ("held-out", "tuning"):
        L.append(f"## {half} half\n")
        for rng in ranges:
            lines, stats = table(results, half, rng.name)
            L += lines
            tables[f"{half}/{rng.name}"] = stats
    L.append("## Which solver / configuration is best (tuning half)\n")
    for rng in ranges:
        L.append(f"#### {rng.name} range\n")
        L += winners(results, "tuning", rng.name)
    if optimized:
        L.append("## optimize_schedule at NFE 10 on fresh noise (held-out half)\n")
        L.append(f"Calibration and validation batches of {args.calib} samples (fresh draws), max_evals "
                 f"{args.max_evals}; errors on the evaluation noise.\n")
        L += optimize_table(optimized)
    markdown = "\n".join(L)
    data = {"machine": info, "command": command, "wall_s": wall, "cpu_s": cpu, "nfes": NFES,
            "args": {k: str(v) for k, v in vars(args).items()},
            "family": [{"seed": m.seed, "dim": m.dim, "components": m.components, "width_ratio": m.width_ratio,
                        "half": m.half} for m in members],
            "ranges": {r.name: {"sigma_min": r.sigma_min, "sigma_max": r.sigma_max,
                                "diffusers_configs": [c.label for c in r.configs]} for r in ranges},
            "tables": tables, "results": results, "optimize_schedule": optimized}
    md, js = write_outputs(args.out, args.name, markdown, data)
    print("\n" + markdown)
    print(f"wrote {md} and {js}; {wall:.0f} s wall, {cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
