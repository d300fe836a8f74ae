"""Digits conditioning figures: inpainting (RePaint vs a mask-conditioned model), x4 super-resolution
(a low-res-conditioned model vs zero-shot DPS / projection) and the classifier-free-guidance curve.

    python benchmarks/conditioning_digits.py --plain runs/cond-digits --mask runs/cond-inpaint \
        --lowres runs/cond-sr [--n 269] [--cfg-per-class 100] [--parts inpaint,sr,cfg] [--images docs]

--plain: a class-conditional run of the digits demo recipe (`noisecraft train digits`), --mask: one
of `digits-inpaint`, --lowres: one of `digits-sr` (lowres_factor 4). Images are the digits *test*
split at 16x16 (269 images; the nets never saw them). Recognition uses the eval suite's digits
classifier (`noisecraft.eval.default_extractor("digits", resolution=16)`).

a. Inpainting, two centred holes: 8x8 px at 16x16 (= the native 4x4 centre of the 8x8 digit) and
   4x4 px. RePaint (ddpm, 50 steps, U = 5: 250 calls) with the plain model, label dropped (the
   all-zero row: a fair test, the class is what is measured) and, for reference, given the true
   label; the mask-conditioned model (ddpm, 50 steps: 50 calls, one pass). Reported: the share of
   completed digits the classifier recognises as the original class, the RMS error inside the
   hole, seconds. Reference rows: the original images and the hole left black (-1).
b. Super-resolution x4 (4x4 block means -> 16x16): the low-res model (ddpm, 50 steps) vs zero-shot
   with the plain model, label dropped: DPS (ζ = 3) and projection (ddpm, 100 steps each), and
   nearest upsampling. PSNR (data range 2), classifier accuracy, RMS of A·x - y, seconds.
c. CFG curve: the plain model, classes in turn (cfg-per-class each), dpmpp_2m at 20 steps (the
   demo's sampler): class accuracy and FD (64-d classifier features, vs the train split) for
   guidance 1, 1.25, 1.5, 1.75, 2, 3, 4; the test split's FD is the noise floor.

Writes benchmarks/out/conditioning_digits.{json,md}, prints the tables, and with --images writes
small example PNGs there (conditioning_inpaint.png, conditioning_sr.png, conditioning_cfg.png).
One torch thread.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402

HOLES = {"8x8 (native 4x4)": (4, 12), "4x4": (6, 10)}
CFG_WEIGHTS = (1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 4.0)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _accuracy(extractor, x: torch.Tensor, labels: torch.Tensor) -> float:
    return float((extractor.predict(x.clamp(-1, 1)) == labels.numpy()).mean())


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    mse = ((x.clamp(-1, 1) - ref) ** 2).flatten(1).mean(1)  # per image
    return float((10 * torch.log10(4.0 / mse.clamp_min(1e-12))).mean())  # data range [-1, 1]: peak² = 4


def inpainting(plain, mask_model, images, labels, extractor, seed: int) -> tuple[list[dict], dict]:
    from noisecraft.sampling import seeded_generators
    from noisecraft.tasks import inpaint

    n = images.shape[0]
    onehot = torch.nn.functional.one_hot(labels, 10).float()
    rows, examples = [], {}
    for hole_name, (a, b) in HOLES.items():
        keep = torch.ones(1, 1, 16, 16)
        keep[..., a:b, a:b] = 0
        hole = ~keep.bool().expand_as(images)
        blank = torch.where(hole, torch.full_like(images, -1.0), images)

        def gens():
            return seeded_generators(range(seed, seed + n))

        methods: list[tuple[str, int, Any]] = [
            ("original image (ceiling)", 0, lambda: images),
            ("hole left black (floor)", 0, lambda: blank),
            ("RePaint, plain model, label dropped", 250,
             lambda: inpaint(plain, images, keep, method="repaint", solver="ddpm", nfe=50, resample_steps=5, generator=gens())),
            ("RePaint, plain model, true label", 250,
             lambda: inpaint(plain, images, keep, method="repaint", solver="ddpm", nfe=50, resample_steps=5, generator=gens(),
                             class_labels=onehot)),
            ("mask-conditioned model", 50,
             lambda: inpaint(mask_model, images, keep, method="model", solver="ddpm", nfe=50, generator=gens())),
        ]
        for name, calls, fn in methods:
            out, sec = _timed(fn)
            rmse = float(((out.clamp(-1, 1) - images)[hole] ** 2).mean().sqrt())
            row = {"hole": hole_name, "method": name, "calls_per_image": calls, "accuracy": _accuracy(extractor, out, labels),
                   "hole_rmse": rmse, "seconds": sec, "n": n}
            rows.append(row)
            print(f"inpaint {hole_name:>17} | {name:<38} acc {row['accuracy']:.3f}  hole RMSE {rmse:.3f}  {sec:6.1f} s",
                  flush=True)
            if hole_name.startswith("8x8"):
                examples[name] = out[:10].clamp(-1, 1)
        examples["input"] = torch.where(keep.bool().expand_as(images), images, torch.zeros_like(images))[:10]
    return rows, examples


def super_resolution(plain, lowres_model, images, labels, extractor, seed: int) -> tuple[list[dict], dict]:
    from noisecraft.sampling import seeded_generators
    from noisecraft.tasks import Downsample, lowres_condition, super_resolve

    n, f = images.shape[0], 4
    y = Downsample(f)(images)  # (n, 1, 4, 4)

    def gens():
        return seeded_generators(range(seed, seed + n))

    methods: list[tuple[str, int, Any]] = [
        ("original image (ceiling)", 0, lambda: images),
        ("nearest upsampling", 0, lambda: lowres_condition(y, f)),
        ("zero-shot projection, plain model", 100,
         lambda: super_resolve(plain, y, f, method="projection", solver="ddpm", nfe=100, generator=gens())),
        ("zero-shot DPS (ζ=3), plain model", 100,
         lambda: super_resolve(plain, y, f, method="dps", step_size=3.0, solver="ddpm", nfe=100, generator=gens())),
        ("low-res-conditioned model", 50,
         lambda: super_resolve(lowres_model, y, f, method="model", solver="ddpm", nfe=50, generator=gens())),
    ]
    rows, examples = [], {"input": lowres_condition(y, f)[:10]}
    for name, calls, fn in methods:
        out, sec = _timed(fn)
        out = out.detach()
        consistency = float(((Downsample(f)(out.clamp(-1, 1)) - y) ** 2).mean().sqrt())
        psnr = _psnr(out, images) if not name.startswith("original") else math.inf
        row = {"method": name, "calls_per_image": calls, "psnr_db": psnr, "accuracy": _accuracy(extractor, out, labels),
               "lowres_rmse": consistency, "seconds": sec, "n": n}
        rows.append(row)
        print(f"sr x4 | {name:<36} PSNR {psnr:6.2f} dB  acc {row['accuracy']:.3f}  |Ax-y| {consistency:.4f}  {sec:6.1f} s",
              flush=True)
        examples[name] = out[:10].clamp(-1, 1)
    return rows, examples


def cfg_curve(plain, info, extractor, per_class: int, seed: int) -> tuple[list[dict], dict, dict]:
    from noisecraft.data import load_dataset
    from noisecraft.eval import build_reference, evaluate_samples
    train = load_dataset("digits", resolution=16, split="train")
    test = load_dataset("digits", resolution=16, split="test")
    ref = build_reference(train.images, extractor, holdout=test.images, holdout_labels=test.labels,
                          metrics=("fd", "acc"), name="digits-train")
    sc = info.config.sample
    labels = torch.arange(10).repeat(per_class)  # classes in turn
    spec = info.spec(seed=seed)
    rows, grids = [], {}
    for w in CFG_WEIGHTS:
        x, sec = _timed(lambda: info.generate(spec.replace(guidance=w), len(labels), class_labels=labels).clamp(-1, 1))
        m = evaluate_samples(x, ref, labels=labels, metrics=("fd", "acc"))
        row = {"guidance": w, "accuracy": m["accuracy"], "fd": m["fd"], "coverage": m["coverage"], "n": len(labels),
               "solver": sc.solver, "nfe": sc.nfe, "seconds": sec}
        rows.append(row)
        print(f"cfg w={w:<5} acc {row['accuracy']:.3f}  FD {row['fd']:.3f}  {sec:6.1f} s", flush=True)
        grids[w] = x[:30]  # three samples of each class
    floor = {"fd_test_vs_train": ref.noise_floor.get("fd"), "accuracy_test": ref.noise_floor.get("accuracy"),
             "n_test": ref.noise_floor.get("n")}
    return rows, grids, floor


def _markdown(result: dict) -> str:
    out = []
    r = result["runs"]
    out.append(f"Runs: plain `{r['plain']}`, mask `{r['mask']}`, low-res `{r['lowres']}`; {result['training']}")
    if "inpaint" in result:
        out += ["", f"**Inpainting** (digits test split, n = {result['inpaint'][0]['n']}; classifier: eval suite digits "
                "classifier; RePaint: ddpm 50 steps, U = 5; mask model: ddpm 50 steps)", "",
                "| hole (at 16x16) | method | calls/image | recognised as original class | hole RMSE | seconds |",
                "|---|---|---:|---:|---:|---:|"]
        for row in result["inpaint"]:
            out.append(f"| {row['hole']} | {row['method']} | {row['calls_per_image']} | {100 * row['accuracy']:.1f}% | "
                       f"{row['hole_rmse']:.3f} | {row['seconds']:.1f} |")
    if "sr" in result:
        out += ["", f"**Super-resolution x4** (4x4 block means -> 16x16, digits test split, n = {result['sr'][0]['n']}; "
                "zero-shot methods with the plain model, label dropped)", "",
                "| method | calls/image | PSNR (dB) | recognised | RMS(A·x - y) | seconds |", "|---|---:|---:|---:|---:|---:|"]
        for row in result["sr"]:
            psnr = "∞" if math.isinf(row["psnr_db"]) else f"{row['psnr_db']:.2f}"
            out.append(f"| {row['method']} | {row['calls_per_image']} | {psnr} | {100 * row['accuracy']:.1f}% | "
                       f"{row['lowres_rmse']:.4f} | {row['seconds']:.1f} |")
    if "cfg" in result:
        c = result["cfg"]
        floor = result["cfg_noise_floor"]
        out += ["", f"**Classifier-free guidance** (plain model, {c[0]['n']} samples, classes in turn, {c[0]['solver']} "
                f"{c[0]['nfe']} steps; FD on the 64-d classifier features vs the train split; test split vs train: "
                f"FD {floor['fd_test_vs_train']:.3f}, accuracy {100 * floor['accuracy_test']:.1f}%)", "",
                "| guidance w | " + " | ".join(f"{row['guidance']:g}" for row in c) + " |",
                "|---|" + "---:|" * len(c),
                "| class accuracy | " + " | ".join(f"{100 * row['accuracy']:.1f}%" for row in c) + " |",
                "| FD | " + " | ".join(f"{row['fd']:.3f}" for row in c) + " |"]
    out += ["", machine_markdown(result["machine"])]
    return "\n".join(out) + "\n"


def _write_images(folder: Path, inpaint_ex: dict | None, sr_ex: dict | None, cfg_grids: dict | None, cfg_rows) -> None:
    from noisecraft.io import save_grid

    folder.mkdir(parents=True, exist_ok=True)
    if inpaint_ex:
        keys = ["input", "RePaint, plain model, label dropped", "mask-conditioned model", "original image (ceiling)"]
        save_grid(torch.cat([inpaint_ex[k] for k in keys]), folder / "conditioning_inpaint.png", 10, scale=3)
    if sr_ex:
        keys = ["nearest upsampling", "zero-shot DPS (ζ=3), plain model", "zero-shot projection, plain model",
                "low-res-conditioned model", "original image (ceiling)"]
        save_grid(torch.cat([sr_ex[k] for k in keys]), folder / "conditioning_sr.png", 10, scale=3)
    if cfg_grids:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ws = [r["guidance"] for r in cfg_rows]
        fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
        ax.plot(ws, [100 * r["accuracy"] for r in cfg_rows], "o-", color="C0")
        ax.set_xlabel("guidance weight w")
        ax.set_ylabel("class accuracy (%)", color="C0")
        ax2 = ax.twinx()
        ax2.plot(ws, [r["fd"] for r in cfg_rows], "s--", color="C1")
        ax2.set_ylabel("FD (classifier features)", color="C1")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / "conditioning_cfg_curve.png")
        plt.close(fig)
        rows = [cfg_grids[w][:10] for w in (1.0, 2.0, 4.0)]  # one of each class per row
        save_grid(torch.cat(rows), folder / "conditioning_cfg.png", 10, scale=3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plain", required=True, help="class-conditional digits run (the demo recipe)")
    ap.add_argument("--mask", help="mask-conditioned run (digits-inpaint)")
    ap.add_argument("--lowres", help="low-res-conditioned run (digits-sr, factor 4)")
    ap.add_argument("--n", type=int, default=269, help="test images for inpainting / super-resolution (max 269)")
    ap.add_argument("--cfg-per-class", type=int, default=100)
    ap.add_argument("--parts", default="inpaint,sr,cfg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", help="folder for the example PNGs (e.g. docs)")
    ap.add_argument("--training", default="", help="a line describing the training budget, copied into the outputs")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from noisecraft.data import load_dataset
    from noisecraft.eval import default_extractor
    from noisecraft.runs import Run

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    extractor = default_extractor("digits", resolution=16)
    test = load_dataset("digits", resolution=16, split="test")
    images, labels = test.images[: args.n], test.labels[: args.n]
    info = Run.open(args.plain)
    plain = info.denoiser()
    result: dict[str, Any] = {"runs": {"plain": args.plain, "mask": args.mask, "lowres": args.lowres},
                              "training": args.training, "machine": machine_info()}
    inpaint_ex = sr_ex = cfg_grids = None
    if "inpaint" in parts:
        result["inpaint"], inpaint_ex = inpainting(plain, Run.open(args.mask).denoiser(), images, labels, extractor, args.seed)
    if "sr" in parts:
        result["sr"], sr_ex = super_resolution(plain, Run.open(args.lowres).denoiser(), images, labels, extractor, args.seed)
    if "cfg" in parts:
        result["cfg"], cfg_grids, result["cfg_noise_floor"] = cfg_curve(plain, info, extractor, args.cfg_per_class, args.seed)
    md = _markdown(result)
    write_outputs(Path(args.out), "conditioning_digits", md, result)
    if args.images:
        _write_images(Path(args.images), inpaint_ex, sr_ex, cfg_grids, result.get("cfg"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
