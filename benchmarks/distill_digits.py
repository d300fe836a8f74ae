"""Few-step digits: quality vs network calls for the teacher with its best ODE solver, and for its
progressive-distilled, consistency-distilled (and consistency-trained) students.

    python benchmarks/distill_digits.py --teacher runs/demo [--cd RUN] [--pd RUN] [--ct RUN]
        [--nfe 1 2 4 8 16] [--per-class 100] [--seeds 1000 3000] [--tune-seed 2000] [--json PATH]

The judge is benchmarks/digits_quality.py's IndependentJudge (an SVM for "recognised as the requested
digit", MLP features for the Fréchet distance reported over the real-vs-real floor), which noisecraft
never uses to choose a setting. The teacher's solver at each NFE is chosen among --solvers on
--tune-seed (per_class 30) and then reported on --seeds; the students are sampled with their own
samplers (consistency: `consistency`; progressive: `euler_open` on the nested grid, using the stage
student trained for that step count: distill/stage-<j>.safetensors, raw weights, or the final run's
EMA weights) with guidance 1 (it is distilled in). Every teacher row uses the teacher's guidance.

Guidance as an input (`distill --guidance-range`): with `--weights W1 W2 ...` the script instead
sweeps the CFG weight: at each W, the teacher at its default sampler (its [sample] solver and NFE,
guidance W on its interval) and the guidance-distilled students `--cdw` / `--pdw` at each of --nfe
calls fed W (one call per step); a fixed-weight student (`--cd` / `--pd`) is scored once, at the
weight it was distilled at (its run.json), which is where it belongs in the table:

    python benchmarks/distill_digits.py --teacher runs/demo --cdw RUN-cdw --cd RUN-cd --weights 1.0 1.3 1.75 2.5 --nfe 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_quality import IndependentJudge  # noqa: E402

TEACHER_SOLVERS = ("euler", "heun", "dpmpp_2m", "unipc", "unipc_3", "dpmpp_3m")


def _draw(den, run, spec, per_class: int):
    from noisecraft.runs.generation import generate

    labels = torch.arange(run.num_classes).repeat_interleave(per_class)
    t0 = time.process_time()
    x = generate(den, len(labels), run.shape, spec, run.conditioners, {"class_labels": labels}).clamp(-1, 1)
    return x, labels, time.process_time() - t0


def _score(judge, den, run, spec, per_class: int) -> dict:
    x, labels, cpu = _draw(den, run, spec, per_class)
    r = judge(x, labels)
    return {"solver": spec.solver, "nfe": spec.nfe, "seed": spec.seed, "fd_ratio": r["fd_mlp_ratio"],
            "accuracy": r["accuracy"], "weakest_class": min(r["accuracy_per_class"]),
            "diversity": r["diversity_ratio"], "cpu_s": cpu}


def _pd_denoiser(run, k: int):
    """The progressive student for k steps: the final run (its EMA) or the stage file of that step count."""
    meta = run.meta["distill"]
    if k == meta["steps"]:
        return run.denoiser("ema")
    stage = round(math.log2(meta["start_steps"] / k)) - 1
    path = run.path / "distill" / f"stage-{stage}.safetensors"
    if not 0 <= stage or not path.is_file():
        return None
    from safetensors.torch import load_file

    den = copy.deepcopy(run.denoiser("raw"))
    den.net.load_state_dict(load_file(str(path)))
    return den


def _sweep_weights(args, teacher, tden, report) -> None:
    """The teacher and the guidance-distilled students at each weight; fixed-weight students at theirs."""
    from noisecraft.runs import Run

    for w in args.weights:
        if not args.no_teacher:
            report("teacher (default)", tden, teacher, teacher.spec(guidance=w), weight=w)
        for name, path, sampler in (("consistency, w input", args.cdw, "consistency"), ("progressive, w input", args.pdw, "euler_open")):
            if path:
                run = Run.open(path)
                for nfe in args.nfe:
                    den = _pd_denoiser(run, nfe) if sampler == "euler_open" else run.denoiser("ema")
                    if den is not None:
                        report(name, den, run, run.spec(solver=sampler, nfe=nfe, guidance=w), weight=w)
    for name, path, sampler in (("consistency, fixed w", args.cd, "consistency"), ("progressive, fixed w", args.pd, "euler_open")):
        if path:
            run = Run.open(path)
            w = run.meta["distill"]["guidance"]
            for nfe in args.nfe:
                den = _pd_denoiser(run, nfe) if sampler == "euler_open" else run.denoiser("ema")
                if den is not None:
                    report(name, den, run, run.spec(solver=sampler, nfe=nfe, guidance=1.0), weight=w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--cd"), ap.add_argument("--pd"), ap.add_argument("--ct")
    ap.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--tune-seed", type=int, default=2000)
    ap.add_argument("--solvers", nargs="+", default=list(TEACHER_SOLVERS))
    ap.add_argument("--no-teacher", action="store_true", help="skip the teacher rows (students only)")
    ap.add_argument("--cdw", help="a guidance-distilled consistency student (distill --guidance-range)")
    ap.add_argument("--pdw", help="a guidance-distilled progressive student (distill --guidance-range)")
    ap.add_argument("--weights", type=float, nargs="+", help="sweep these CFG weights (see the module docstring)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from noisecraft.runs import Run

    teacher = Run.open(args.teacher)
    judge = IndependentJudge(teacher.shape[-1])
    rows: list[dict] = []

    def report(model: str, den, run, spec, **extra) -> None:
        for seed in args.seeds:
            row = {"model": model, **extra, **_score(judge, den, run, spec.replace(seed=seed), args.per_class)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    tden = teacher.denoiser("ema")
    if args.weights:
        _sweep_weights(args, teacher, tden, report)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        return 0
    if not args.no_teacher:
        report("teacher (default)", tden, teacher, teacher.spec())
    for nfe in ([] if args.no_teacher else args.nfe):
        tuned = []
        for solver in args.solvers:
            spec = teacher.spec(solver=solver, nfe=nfe, seed=args.tune_seed)
            try:
                tuned.append((_score(judge, tden, teacher, spec, 30)["fd_ratio"], solver))
            except ValueError:  # e.g. a solver that needs more calls than nfe
                continue
        best = min(tuned)[1]
        report("teacher (best solver)", tden, teacher, teacher.spec(solver=best, nfe=nfe), tuned={s: round(f, 3) for f, s in tuned})
    for name, path, sampler in (("consistency-distilled", args.cd, "consistency"), ("consistency-trained", args.ct, "consistency")):
        if path:
            run = Run.open(path)
            for nfe in args.nfe:
                report(name, run.denoiser("ema"), run, run.spec(solver=sampler, nfe=nfe, guidance=1.0))
    if args.pd:
        run = Run.open(args.pd)
        for nfe in args.nfe:
            den = _pd_denoiser(run, nfe)
            if den is not None:
                report("progressive", den, run, run.spec(solver="euler_open", nfe=nfe, guidance=1.0))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
