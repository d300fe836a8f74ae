"""Which default schedule (and solver per NFE) should noisecraft use at low NFE? A study on the mixture family.

    python benchmarks/schedule_study.py [--family-json benchmarks/out/samplers_family.json] [--out benchmarks/out]

Reuses benchmarks/samplers_family.py: the same 50 seeded Gaussian mixtures, σ ranges, evaluation noise
(256 samples, seed 20000 + i) and exact PF-ODE references (same trajectory through every diffusers start,
so noisecraft starts from the same σ_max state as in that benchmark). The diffusers side is NOT re-run: the
denominator of every ratio is the best diffusers error per (mixture, range, NFE) read from the saved
samplers_family JSON (the family and noise are deterministic; the script checks that it reproduces the
JSON's unipc_3 errors with the current default schedule). So a ratio here is comparable to the
"unipc_3/theirs" column of docs/benchmarks-samplers-family.md. Note the denominator includes diffusers
run on the OLD default schedule; it is held fixed.

Protocol:
  1. search, tuning half only (even seeds): every candidate schedule x solvers SEARCH_SOLVERS at NFE
     SEARCH_NFES. A schedule is a function of (n, sigma_min, sigma_max) only.
     Score of a candidate (lower is better): for each NFE in {5, 10, 20} pick the solver whose worst
     (over ranges) tuning-half median ratio is lowest; the score is the worst of those over the NFEs.
  2. final, tuning half: the best-scoring candidate at all NFEs 3..20 with every search solver; the solver
     of each NFE is the one with the lowest worst-over-ranges median (NFE 3 and 4 included, as a rule
     for them too). This fixes the rule (schedule + solver per NFE).
  3. held-out half (odd seeds), once: the rule vs the current default (unipc_3 with loglinear knee 10).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import samplers_family as fam  # noqa: E402
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402

from noisecraft import SOLVERS, get_schedule, sample  # noqa: E402
from noisecraft import uniform_t_open as nc_uniform_t_open  # noqa: E402
from noisecraft.io_safety import read_safetensors  # noqa: E402

F64 = torch.float64
SEARCH_SOLVERS = ["unipc_3", "ipndm", "dpmpp_2s", "unipc", "dpmpp_2m"]
SEARCH_NFES = [3, 5, 10, 20]
SCORE_NFES = [5, 10, 20]  # the objective: worst tuning-half median over ranges and these NFEs
REPORT_NFES = fam.NFES
CURRENT = ("unipc_3", "loglinear knee 10 d0.25")  # the current default (solver, schedule)

Schedule = Callable[[int, float, float], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Candidate schedules: functions of (n, sigma_min, sigma_max) only


def warped(n: int, sigma_min: float, sigma_max: float, knots: list[tuple[float, float]]) -> torch.Tensor:
    """Piecewise-uniform steps in log σ. knots: [(q, density)] listed from the top of the range down:
    the segment from the previous knot (q = 1 is σ_max) down to quantile q of log σ (q = 0 is σ_min) has
    `density` (relative step density in log σ). The last knot must have q = 0."""
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    if n == 1:
        return torch.tensor([sigma_max, 0.0], dtype=F64)
    edges = [hi] + [lo + q * (hi - lo) for q, _ in knots]
    dens = [d for _, d in knots]
    lengths = [(edges[i] - edges[i + 1]) * dens[i] for i in range(len(dens))]  # warped-coordinate lengths
    total = sum(lengths)
    w = torch.linspace(0, 1, n, dtype=F64) * total
    out = torch.empty_like(w)
    start = 0.0
    for i, length in enumerate(lengths):
        m = (w >= start) if i else torch.ones_like(w, dtype=torch.bool)
        out = torch.where(m, edges[i] - (w - start) / dens[i], out)
        start += length
    out[-1] = lo
    return torch.cat([out.exp(), torch.zeros(1, dtype=F64)])


def candidates() -> dict[str, Schedule]:
    c: dict[str, Schedule] = {
        "loglinear knee 10 d0.25": lambda n, a, b: get_schedule("loglinear", n, a, b, knee=10.0, knee_density=0.25),
        "loglinear": lambda n, a, b: get_schedule("loglinear", n, a, b),
        "loglinear knee 1 d0.25": lambda n, a, b: get_schedule("loglinear", n, a, b, knee=1.0, knee_density=0.25),
        "loglinear knee 3 d0.25": lambda n, a, b: get_schedule("loglinear", n, a, b, knee=3.0, knee_density=0.25),
        "loglinear knee 10 d0.5": lambda n, a, b: get_schedule("loglinear", n, a, b, knee=10.0, knee_density=0.5),
    }
    for rho in (3.0, 5.0, 7.0):
        c[f"karras rho {rho:g}"] = lambda n, a, b, rho=rho: get_schedule("karras", n, a, b, rho=rho)
    for shift in (1.0, 3.0):  # uniform flow time t = σ/(1+σ) (SD3 shift), for any range
        c[f"flow_shift {shift:g}"] = lambda n, a, b, shift=shift: get_schedule("flow_shift", n, a, b, shift=shift)
    for q in (0.5, 0.65, 0.8):  # upper knee at a quantile of log σ over [σ_min, σ_max]
        for d in (0.25, 0.5):
            c[f"knee q{q:g} d{d:g}"] = lambda n, a, b, q=q, d=d: warped(n, a, b, [(q, d), (0.0, 1.0)])
    for ql, dl in ((0.2, 0.5), (0.3, 0.5), (0.2, 0.25)):  # lower knee too (sparser just above σ_min)
        for q, d in ((0.65, 0.25), (0.8, 0.25)):
            c[f"knees q{q:g} d{d:g} + q{ql:g} d{dl:g}"] = (
                lambda n, a, b, q=q, d=d, ql=ql, dl=dl: warped(n, a, b, [(q, d), (ql, 1.0), (0.0, dl)]))
    # a flow-aware fixed-σ rule: upper knee at σ = 10 as now, lower knee at σ = 0.05 (below σ_data / 10,
    # where the denoiser is nearly the identity plus a small shrink), sparser by 2x
    def two_fixed(n, a, b, kl=0.05, dl=0.5):
        lo, hi = math.log(a), math.log(b)
        knots = []
        if 10.0 < b:
            knots.append(((math.log(10.0) - lo) / (hi - lo), 0.25))
        if kl > a:
            knots.append(((math.log(kl) - lo) / (hi - lo), 1.0))
            knots.append((0.0, dl))
        else:
            knots.append((0.0, 1.0))
        return warped(n, a, b, knots)
    c["knees σ10 d0.25 + σ0.05 d0.5"] = two_fixed
    c["knees σ10 d0.25 + σ0.05 d0.25"] = lambda n, a, b: two_fixed(n, a, b, 0.05, 0.25)
    return c


# POST-HOC lead (found after the held-out evaluation, tuning half only), now in the library as
# noisecraft.uniform_t_open: diffusers' flow sigmas for any range, last σ at t_max/n instead of σ_min.
uniform_t_open = nc_uniform_t_open


POST_HOC = {"uniform t, last t = t_max/n": uniform_t_open}
# The post-hoc rule, fixed from the tuning half before it was run on fresh mixtures (--fresh-json):
# unipc_3 on uniform_t_open at NFE <= 8, the current default (unipc_3, loglinear knee 10) above.
FRESH_RULE_MAX_NFE = 8


def fresh_validation(path: Path, progress) -> list[str]:
    """The post-hoc rule vs the current default on mixtures outside seeds 0-49 (samplers_family.py
    --first-seed 50 ...; all its mixtures count, whatever their parity). Only NFE <= 8 differ."""
    theirs, _, fargs = load_family(path)
    seeds = sorted({k[0] for k in theirs})
    builders = {"ddpm": fam.ddpm_range, "edm": fam.edm_range, "flow": fam.flow_range}
    ranges = [builders[n]() for n in fargs["ranges"].split(",")]
    members = [fam.make_member(i, int(fargs["cost_cap"])) for i in seeds]
    refs = prepare(members, ranges, int(fargs["batch"]), path.parent / "schedule_study_fresh_refs.safetensors", progress)
    nfes = [n for n in REPORT_NFES if n <= FRESH_RULE_MAX_NFE]
    errs = evaluate(uniform_t_open, ["unipc_3"], nfes, members, ranges, refs)
    # The knee schedule explicitly: since unipc_3 defaults to low_nfe_open, the JSON's unipc_3 is the rule.
    cur_errs = evaluate(candidates()[CURRENT[1]], ["unipc_3"], nfes, members, ranges, refs)
    L = [f"### Fresh mixtures (seeds {seeds[0]}-{seeds[-1]}, {len(seeds)} mixtures): post-hoc rule vs the knee schedule\n",
         f"unipc_3 on `uniform_t_open` at NFE <= {FRESH_RULE_MAX_NFE} (the default `low_nfe_open` there) vs "
         "unipc_3 on the knee-10 log-linear schedule (the default before it); "
         "median / 90th percentile of the error ratio to the best diffusers run of " + str(path.name) + "\n",
         "| NFE | " + " | ".join(f"{r.name} rule | {r.name} knee" for r in ranges) + " |",
         "|---|" + "---|---|" * len(ranges)]
    for nfe in nfes:
        cells = []
        for r in ranges:
            a, b = ratio_stats(errs, theirs, seeds, r.name, nfe, "unipc_3")
            c, d = ratio_stats(cur_errs, theirs, seeds, r.name, nfe, "unipc_3")
            cells.append(f"{a:.2f} / {b:.2f} | {c:.2f} / {d:.2f}")
        L.append(f"| {nfe} | " + " | ".join(cells) + " |")
    return L + [""]
POST_HOC_SOLVERS = ["unipc_3", "unipc"]


# ----------------------------------------------------------------------------------------------
# References and the diffusers denominators


def load_family(path: Path) -> tuple[dict, dict, dict]:
    """(best diffusers error, the JSON's unipc_3 error) per (seed, range, nfe), and the JSON's args."""
    data = json.loads(path.read_text())
    theirs, unipc3 = {}, {}
    for r in data["results"]:
        for nfe, row in r["rows"].items():
            _, t = fam._min(row["theirs"])
            theirs[(r["seed"], r["range"], int(nfe))] = t
            unipc3[(r["seed"], r["range"], int(nfe))] = row["ours"].get("unipc_3")
    return theirs, unipc3, data["args"]


def prepare(members, ranges, batch: int, cache_file: Path, progress) -> dict:
    """(start noise of ours, exact end) per (seed, range), exactly as samplers_family.bench_member."""
    if cache_file.exists():  # safetensors + metadata: no pickle is ever read back
        tensors, meta = read_safetensors(cache_file)
        cached = {(int(k.split("/")[0]), k.split("/")[1]): (tensors[k + "/start"], tensors[k + "/ref"])
                  for k in {name.rsplit("/", 1)[0] for name in tensors}}
        if meta.get("batch") == str(batch) and all((m.seed, r.name) in cached for m in members for r in ranges):
            return cached
    caches, plans = {r.name: {} for r in ranges}, {r.name: {} for r in ranges}
    refs = {}
    for m in members:
        noise = torch.randn(batch, m.dim, generator=torch.Generator().manual_seed(20_000 + m.seed), dtype=F64)
        for rng in ranges:
            all_plans = {nfe: fam.plan(rng, nfe, caches[rng.name], plans[rng.name]) for nfe in fam.NFES}
            starts = [p[1] for pl in all_plans.values() for p in pl.values() if p is not None]
            states, ref, _ = fam.trajectory(m.mixture, noise, rng.sigma_max, starts)
            refs[(m.seed, rng.name)] = (states[rng.sigma_max] / rng.sigma_max, ref)
        progress(f"reference of mixture {m.seed}")
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{seed}/{rng}/{part}": t.contiguous() for (seed, rng), pair in refs.items()
               for part, t in zip(("start", "ref"), pair)}
    save_file(tensors, str(cache_file), metadata={"batch": str(batch)})
    return refs


def evaluate(schedule: Schedule, solvers, nfes, members, ranges, refs) -> dict:
    """rmse per (seed, range, nfe, solver) of our solvers on this schedule."""
    out = {}
    for m in members:
        for rng in ranges:
            noise, ref = refs[(m.seed, rng.name)]
            for nfe in nfes:
                for s in solvers:
                    n = SOLVERS[s].steps_for_nfe(nfe)
                    sig = schedule(n, rng.sigma_min, rng.sigma_max)
                    try:
                        x = sample(m.mixture, noise, solver=s, nfe=nfe, sigmas=sig)
                        out[(m.seed, rng.name, nfe, s)] = fam.rmse(x, ref)
                    except ValueError:
                        out[(m.seed, rng.name, nfe, s)] = None
    return out


def ratio_stats(errs: dict, theirs: dict, seeds, rng: str, nfe: int, solver: str) -> tuple[float, float]:
    vals = []
    for seed in seeds:
        e, t = errs.get((seed, rng, nfe, solver)), theirs.get((seed, rng, nfe))
        vals.append(e / t if e is not None and t else math.inf)
    return fam.quantile(vals, 0.5), fam.quantile(vals, 0.9)


def pick_solvers(errs, theirs, seeds, ranges, nfes, solvers) -> dict[int, tuple[str, float]]:
    """Per NFE the solver with the lowest worst-over-ranges median ratio, and that worst median."""
    out = {}
    for nfe in nfes:
        worst = {s: max(ratio_stats(errs, theirs, seeds, r, nfe, s)[0] for r in ranges) for s in solvers}
        best = min(worst, key=worst.get)
        out[nfe] = (best, worst[best])
    return out


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family-json", type=Path, default=here / "out" / "samplers_family.json")
    ap.add_argument("--out", type=Path, default=here / "out")
    ap.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    ap.add_argument("--fresh-json", type=Path, default=None,
                    help="samplers_family JSON of fresh mixtures (--first-seed 50): validate the post-hoc rule only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    info = machine_info()
    info["torch_threads"] = "1"
    command = "python benchmarks/schedule_study.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - wall0:7.1f}s wall, {time.process_time() - cpu0:7.1f}s CPU] {msg}", flush=True)

    if args.fresh_json is not None:
        md = "\n".join(fresh_validation(args.fresh_json, progress))
        print(md)
        print(f"{time.perf_counter() - wall0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU")
        return
    theirs, json_unipc3, fargs = load_family(args.family_json)
    batch, cost_cap, n_mix = int(fargs["batch"]), int(fargs["cost_cap"]), int(fargs["mixtures"])
    builders = {"ddpm": fam.ddpm_range, "edm": fam.edm_range, "flow": fam.flow_range}
    ranges = [builders[n]() for n in fargs["ranges"].split(",")]
    rnames = [r.name for r in ranges]
    members = [fam.make_member(i, cost_cap) for i in range(n_mix)]
    tuning = [m for m in members if m.half == "tuning"]
    held = [m for m in members if m.half == "held-out"]
    refs = prepare(members, ranges, batch, args.out / "schedule_study_refs.safetensors", progress)
    progress("references ready")

    cands = candidates()
    if args.only:
        cands = {k: cands[k] for k in args.only.split(",")}
    tseeds = [m.seed for m in tuning]

    # reproduction check: unipc_3 on the current default schedule vs the JSON
    chk = evaluate(cands[CURRENT[1]] if CURRENT[1] in cands else candidates()[CURRENT[1]], ["unipc_3"], [10],
                   tuning[:3], ranges, refs)
    dev = max(abs(v / json_unipc3[k[:3]] - 1) for k, v in chk.items())
    progress(f"reproduction of the JSON's unipc_3 errors (3 mixtures, NFE 10): max relative deviation {dev:.2e}")

    # 1. search on the tuning half
    search = {}
    for name, sched in cands.items():
        errs = evaluate(sched, SEARCH_SOLVERS, SEARCH_NFES, tuning, ranges, refs)
        picks = pick_solvers(errs, theirs, tseeds, rnames, SCORE_NFES, SEARCH_SOLVERS)
        per = {s: {r: {nfe: ratio_stats(errs, theirs, tseeds, r, nfe, s)[0] for nfe in SEARCH_NFES} for r in rnames}
               for s in SEARCH_SOLVERS}
        score = max(v for _, v in picks.values())
        u3 = max(per["unipc_3"][r][nfe] for r in rnames for nfe in SCORE_NFES)
        tail = max(ratio_stats(errs, theirs, tseeds, r, nfe, picks[nfe][0])[1] for r in rnames for nfe in SCORE_NFES)
        search[name] = {"score": score, "picks": {n: p for n, p in picks.items()}, "unipc_3_score": u3, "medians": per,
                        "worst_p90": tail}
        progress(f"{name:40s} score {score:.3f} (picks {', '.join(f'{n}:{p[0]}' for n, p in picks.items())}); "
                 f"unipc_3 alone {u3:.3f}")
    best = min(search, key=lambda k: search[k]["score"])
    progress(f"chosen schedule: {best}")

    # 2. final rule on the tuning half, all NFEs
    sched = cands[best]
    ferrs = evaluate(sched, SEARCH_SOLVERS, REPORT_NFES, tuning, ranges, refs)
    rule = pick_solvers(ferrs, theirs, tseeds, rnames, REPORT_NFES, SEARCH_SOLVERS)
    progress("rule: " + ", ".join(f"NFE {n}: {s} ({v:.3f})" for n, (s, v) in rule.items()))

    # 3. held-out half, once
    hseeds = [m.seed for m in held]
    herrs = {}
    for nfe in REPORT_NFES:
        herrs.update(evaluate(sched, [rule[nfe][0]], [nfe], held, ranges, refs))
    progress("held-out evaluated")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    def cur_stats(seeds, r, nfe):
        vals = [json_unipc3[(s, r, nfe)] / theirs[(s, r, nfe)] for s in seeds
                if json_unipc3.get((s, r, nfe)) is not None and theirs.get((s, r, nfe))]
        return fam.quantile(vals, 0.5), fam.quantile(vals, 0.9)

    L = ["# Schedule study: a default schedule (and solver per NFE) for the low-NFE regime\n",
         machine_markdown(info) + "\n",
         f"Command: `{command}`; {wall:.0f} s wall, {cpu:.0f} s CPU. Reproduction of the family JSON's unipc_3 "
         f"errors: max relative deviation {dev:.1e}.\n",
         f"### Search (tuning half, {len(tuning)} mixtures)\n",
         f"Score = max over ranges and NFE {SCORE_NFES} of the tuning-half median error ratio to the best diffusers "
         "run, with the solver of each NFE chosen (among " + ", ".join(SEARCH_SOLVERS) + ") to minimise its worst "
         "median over ranges. Also: the worst 90th percentile of those picks over ranges and NFEs (not part of "
         "the score), and the score of unipc_3 alone on the schedule.\n",
         "| schedule | score | solver at NFE 5 / 10 / 20 | worst p90 of the picks | unipc_3 alone | " +
         " | ".join(f"{r} NFE {n} (best solver)" for r in rnames for n in SEARCH_NFES) + " |",
         "|---|---|---|---|---|" + "---|" * (len(rnames) * len(SEARCH_NFES))]
    for name, s in sorted(search.items(), key=lambda kv: kv[1]["score"]):
        cells = []
        for r in rnames:
            for n in SEARCH_NFES:
                m = min(s["medians"][sv][r][n] for sv in SEARCH_SOLVERS)
                cells.append(f"{m:.2f}")
        L.append(f"| {name} | {s['score']:.3f} | " + " / ".join(s["picks"][n][0] for n in SCORE_NFES) +
                 f" | {s['worst_p90']:.2f} | {s['unipc_3_score']:.3f} | " + " | ".join(cells) + " |")
    L += ["", f"Chosen schedule: **{best}**.\n", "### The rule on the tuning half, all NFEs\n",
          "| NFE | solver | worst median over ranges | " + " | ".join(f"{r} median / p90" for r in rnames) +
          " | current default worst median |", "|---|---|---|" + "---|" * (len(rnames) + 1)]
    for nfe in REPORT_NFES:
        s, v = rule[nfe]
        cells = [ratio_stats(ferrs, theirs, tseeds, r, nfe, s) for r in rnames]
        cw = max(cur_stats(tseeds, r, nfe)[0] for r in rnames)
        L.append(f"| {nfe} | {s} | {v:.2f} | " + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in cells) + f" | {cw:.2f} |")
    L += ["", f"### Held-out half ({len(held)} mixtures): rule vs current default (unipc_3, loglinear knee 10)\n",
          "median / 90th percentile of the error ratio to the best diffusers run (from the family JSON)\n",
          "| NFE | rule solver | " + " | ".join(f"{r} rule | {r} current" for r in rnames) + " |",
          "|---|---|" + "---|---|" * len(rnames)]
    held_table = {}
    for nfe in REPORT_NFES:
        s = rule[nfe][0]
        cells = []
        for r in rnames:
            a, b = ratio_stats(herrs, theirs, hseeds, r, nfe, s)
            c, d = cur_stats(hseeds, r, nfe)
            held_table[f"{r}/{nfe}"] = {"rule": [a, b], "current": [c, d], "solver": s}
            cells.append(f"{a:.2f} / {b:.2f} | {c:.2f} / {d:.2f}")
        L.append(f"| {nfe} | {s} | " + " | ".join(cells) + " |")
    better = all(held_table[f"{r}/{n}"]["rule"][0] < held_table[f"{r}/{n}"]["current"][0]
                 for r in rnames for n in REPORT_NFES if n >= 5)
    L += ["", f"Rule better than the current default in every range at NFE ≥ 5 (held-out median): **{better}**.\n"]

    # 4. post-hoc, tuning half only (chosen after step 3 was seen: NOT validated on held-out data)
    L += ["### Post-hoc lead (tuning half only; not held-out validated)\n",
          "median / 90th percentile of the error ratio, tuning half, vs the current default (unipc_3, knee 10)\n",
          "| schedule | solver | NFE | " + " | ".join(f"{r} | {r} current" for r in rnames) + " |",
          "|---|---|---|" + "---|---|" * len(rnames)]
    post = {}
    for name, fn in POST_HOC.items():
        perrs = evaluate(fn, POST_HOC_SOLVERS, REPORT_NFES, tuning, ranges, refs)
        for sv in POST_HOC_SOLVERS:
            for nfe in REPORT_NFES:
                cells = []
                for r in rnames:
                    a, b = ratio_stats(perrs, theirs, tseeds, r, nfe, sv)
                    c, d = cur_stats(tseeds, r, nfe)
                    post[f"{name}/{sv}/{r}/{nfe}"] = [a, b]
                    cells.append(f"{a:.2f} / {b:.2f} | {c:.2f} / {d:.2f}")
                L.append(f"| {name} | {sv} | {nfe} | " + " | ".join(cells) + " |")
    progress("post-hoc lead evaluated (tuning half)")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    L[2] = (f"Command: `{command}`; {wall:.0f} s wall, {cpu:.0f} s CPU. Reproduction of the family JSON's unipc_3 "
            f"errors: max relative deviation {dev:.1e}.\n")
    md = "\n".join(L)
    data = {"machine": info, "command": command, "wall_s": wall, "cpu_s": cpu, "reproduction_max_rel_dev": dev,
            "search": {k: {"score": v["score"], "unipc_3_score": v["unipc_3_score"], "worst_p90": v["worst_p90"],
                           "picks": {str(n): p for n, p in v["picks"].items()}, "medians": v["medians"]}
                       for k, v in search.items()},
            "chosen_schedule": best, "rule": {str(n): p for n, p in rule.items()}, "held_out": held_table,
            "better_everywhere_nfe_ge_5": better, "post_hoc_tuning": post}
    a, b = write_outputs(args.out, "schedule_study", md, data)
    print("\n" + md)
    print(f"wrote {a} and {b}; {wall:.0f} s wall, {cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
