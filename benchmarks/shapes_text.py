"""Text-to-image on `shapes`: does a trained run draw what its prompts say?

    python benchmarks/shapes_text.py runs/shapes [--n 300] [--guidance 1,1.5,2,3,4,6] [--nfe 20] [--interval run|none|LO:HI]

For each guidance weight w, the run draws one image per prompt for the first N images of
`test_seen` (seen colour-shape pairs) and of `heldout` (the pairs never seen in training); each
prompt is one of that image's captions, drawn with a fixed seed. The shapes judge (a classifier
trained on real renders, `noisecraft.eval.shapes_judge`) reads colour, shape and position off
every sample; "match" is the share whose three attributes all equal the prompt's. FD is the
Fréchet distance between the shapes feature extractor's features of the 2N samples and of the
2N real images the prompts describe (`noisecraft.eval` default extractor for shapes).

Writes benchmarks/out/shapes_text-<run name>.json and .md (the table) and prints the table.
Sampling is seeded (sample i from seed + i), so a rerun gives the same figures on the same machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _prompts(ds, n: int, seed: int) -> list[str]:
    return ds.sample_captions(range(n), generator=torch.Generator().manual_seed(seed))


def _interval(arg: str, run_default: tuple[float, float] | None) -> tuple[float, float] | None:
    """--interval: 'run' (the run's own setting), else demo_tuning's 'none' | LO:HI."""
    if arg == "run":
        return run_default
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from demo_tuning import parse_interval

    try:
        return parse_interval(arg)
    except ValueError:
        sys.exit(f"error: --interval {arg!r} is not valid; valid: 'run', 'none' or LO:HI such as 0.2:5")


def _training_summary(run: Path) -> dict:
    """Steps, batch and samples seen from the run, plus CPU seconds if the launcher recorded them."""
    from noisecraft.runs import Run

    info = Run.open(run)
    out = {"steps": None, "batch_size": info.config.train.batch_size, "samples_seen": None,
           "encoder": info.config.text.encoder, "net": info.config.net.name}
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if rows:
        out["steps"], out["samples_seen"] = rows[-1]["step"], rows[-1]["samples"]
        out["final_loss"] = rows[-1]["loss"]
    cpu = run.parent / f"{run.name}.cpu.json"  # written by the launcher that trained it (process CPU time)
    if cpu.is_file():
        out["train_cpu_s"] = round(sum(v for k, v in json.loads(cpu.read_text()).items() if k.startswith("cpu_")), 1)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--n", type=int, default=300, help="prompts per split (test_seen, heldout)")
    p.add_argument("--guidance", default="1,1.5,2,3,4,6", help="comma-separated CFG weights")
    p.add_argument("--interval", default="run", metavar="LO:HI",
                   help="guide only for σ in (LO, HI] (Kynkäänniemi et al. 2024); 'none': at every σ; "
                        "default 'run': the run's [sample] guidance_interval")
    p.add_argument("--solver", default="dpmpp_2m")
    p.add_argument("--nfe", type=int, default=20)
    p.add_argument("--weights", default="ema")
    p.add_argument("--seed", type=int, default=0, help="sample seeds and the caption draw")
    p.add_argument("--no-fd", action="store_true", help="skip FD (saves fitting the feature extractor once)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    p.add_argument("--save-grid", type=int, default=0, metavar="W", help="also write a PNG grid of prompts at guidance W")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from noisecraft.data import load_dataset
    from noisecraft.eval.shapes_judge import load_or_train_shapes_judge
    from noisecraft.runs import Run

    weights = [float(w) for w in args.guidance.split(",")]
    info = Run.open(args.run)
    interval = _interval(args.interval, info.spec().guidance_interval)
    if info.conditioner("prompts") is None:
        sys.exit(f"error: {args.run} is not a text-conditioned run")
    splits = {name: load_dataset("shapes", split=name, labels=False) for name in ("test_seen", "heldout")}
    for name, ds in splits.items():
        if args.n > len(ds):
            sys.exit(f"error: --n {args.n} exceeds the {len(ds)} images of {name}")
    prompts = {name: _prompts(ds, args.n, args.seed) for name, ds in splits.items()}
    attrs = {name: ds.attributes[: args.n] for name, ds in splits.items()}
    judge = load_or_train_shapes_judge()
    extractor = None
    if not args.no_fd:
        from noisecraft.eval.evaluate import default_extractor
        from noisecraft.eval.metrics import min_samples_for_stats

        extractor = default_extractor("shapes", resolution=info.data_shape[-1], echo=print)  # latent runs: the decoded size
        if 2 * args.n < min_samples_for_stats(extractor.feature_dim):
            sys.exit(f"error: FD needs at least {min_samples_for_stats(extractor.feature_dim)} samples; "
                     f"give --n >= {(min_samples_for_stats(extractor.feature_dim) + 1) // 2} or --no-fd")
        real = torch.cat([ds.images[: args.n] for ds in splits.values()])
        real_feats = extractor.features(real)

    rows = []
    grids = {}
    for w in weights:
        row: dict = {"guidance": w}
        samples = []
        t0, c0 = time.perf_counter(), _cpu_s()
        for name in splits:
            spec = dataclasses.replace(info.spec(seed=args.seed, guidance=w, solver=args.solver, nfe=args.nfe),
                                       guidance_interval=interval)
            x = info.generate(spec, args.n, weights=args.weights, device=args.device, prompts=prompts[name]).clamp(-1, 1)
            samples.append(x)
            acc = judge.evaluate(x, attrs[name])
            row[name] = {"match": acc["all"], **{k: acc[k] for k in ("color", "shape", "position")}}
        row["sampling_s"] = round(time.perf_counter() - t0, 1)
        row["sampling_cpu_s"] = round(_cpu_s() - c0, 1)
        if extractor is not None:
            from noisecraft.eval.metrics import frechet_distance

            row["fd"] = frechet_distance(real_feats, extractor.features(torch.cat(samples)))
        rows.append(row)
        if args.save_grid and w == args.save_grid:
            grids[w] = samples
        print(f"w={w}: seen {row['test_seen']['match']:.3f}, held-out {row['heldout']['match']:.3f}"
              + (f", FD {row['fd']:.3f}" if "fd" in row else ""), flush=True)

    result = {"run": str(args.run), "n_per_split": args.n, "solver": args.solver, "nfe": args.nfe, "interval": interval,
              "weights": args.weights, "seed": args.seed, "device": args.device, "training": _training_summary(args.run),
              "rows": rows, "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"shapes_text-{args.run.name}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown_table(result)
    stem.with_suffix(".md").write_text(table + "\n")
    print(table)
    if grids:
        from noisecraft.io import save_grid

        for w, (seen, held) in grids.items():
            k = min(8, args.n)
            save_grid(torch.cat([seen[:k], held[:k]]), f"{stem}-grid-w{w}.png", k, scale=2)
    return result


def markdown_table(result: dict) -> str:
    t = result["training"]
    head = (f"Run `{result['run']}` ({t.get('encoder')} text encoder, {t.get('net')}, {t.get('steps')} steps x "
            f"{t.get('batch_size')} = {t.get('samples_seen')} samples"
            + (f", {t['train_cpu_s'] / 60:.1f} CPU-min" if "train_cpu_s" in t else "")
            + f"); {result['n_per_split']} prompts per split, {result['solver']} NFE {result['nfe']}, {result['weights']} weights"
            + (f", guidance only for σ in ({result['interval'][0]:g}, {result['interval'][1]:g}]" if result.get("interval") else "")
            + ".")
    lines = [head, "", "| guidance | seen: match | seen: colour / shape / position | held-out: match | "
             "held-out: colour / shape / position | FD |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        s, h = r["test_seen"], r["heldout"]
        fd = f"{r['fd']:.3f}" if "fd" in r else "-"
        lines.append(f"| {r['guidance']:g} | {100 * s['match']:.1f} % | {100 * s['color']:.0f} / {100 * s['shape']:.0f} / "
                     f"{100 * s['position']:.0f} % | {100 * h['match']:.1f} % | {100 * h['color']:.0f} / "
                     f"{100 * h['shape']:.0f} / {100 * h['position']:.0f} % | {fd} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
