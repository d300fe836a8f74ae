"""Probe: does composable guidance draw unseen colour-shape pairs of `shapes`?

    python benchmarks/shapes_compose_probe.py RUN N W[,W...] [--split heldout|test_seen]

Composable diffusion (Liu et al. 2022, "Compositional Visual Generation with Composable Diffusion
Models", eq. 9 in denoiser form): D = D(∅) + w·Σ_k (D(c_k) − D(∅)). Each of the first N prompts of
the split (drawn as in benchmarks/shapes_text.py) is split into two parts: the caption without its
shape word(s) and the caption without its colour word. Three modes on the same seeds (sample i
from seed i, dpmpp_2m NFE 20, EMA weights): "cfg" (the full caption: plain classifier-free
guidance), "compose" (the two parts) and "both" (the full caption and the two parts). The shapes
judge reads colour, shape and position; the last line printed is the JSON of every figure.
"""

from __future__ import annotations

import argparse
import json

import torch

from noisecraft.conditioning import find_text_conditioner
from noisecraft.data import load_dataset
from noisecraft.data.shapes import COLORS, SHAPE_WORDS as WORDS_OF_SHAPE
from noisecraft.eval.shapes_judge import load_or_train_shapes_judge
from noisecraft.runs import Run
from noisecraft.sampling import sample, seeded_generators

SHAPE_WORDS = {w for words in WORDS_OF_SHAPE.values() for w in words}


def without(prompt: str, words: set[str]) -> str:
    return " ".join(t for t in prompt.split() if t.strip(",.:") not in words)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("n", type=int)
    p.add_argument("weights", help="comma-separated guidance weights")
    p.add_argument("--split", default="heldout", choices=("heldout", "test_seen"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    info = Run.open(args.run)
    den = info.denoiser("ema")
    enc = find_text_conditioner(den)
    ds = load_dataset("shapes", split=args.split, labels=False)
    prompts = ds.sample_captions(range(args.n), generator=torch.Generator().manual_seed(0))
    full = enc.encode(prompts)
    parts = [enc.encode([without(q, SHAPE_WORDS) for q in prompts]), enc.encode([without(q, set(COLORS)) for q in prompts])]
    null = enc.encode_empty(args.n)
    judge = load_or_train_shapes_judge()
    spec = info.spec(seed=0)
    out: dict = {"run": args.run, "n": args.n, "split": args.split}
    for w in [float(v) for v in args.weights.split(",")]:
        for mode in ("cfg", "compose", "both"):
            branches = ([full] if mode != "compose" else []) + (parts if mode != "cfg" else [])

            def guided(x, sigma, rows):
                b = x.shape[0]
                conds = [null] + branches
                ctx = torch.cat([c[rows] for c, _ in conds])
                mask = torch.cat([m[rows] for _, m in conds])
                k = len(conds)
                sig = sigma.reshape(-1).expand(b)
                y = den(x.repeat(k, 1, 1, 1), sig.repeat(k), context=ctx, context_mask=mask).split(b)
                return y[0] + w * sum(yi - y[0] for yi in y[1:])

            xs = []
            for start in range(0, args.n, 100):
                rows = slice(start, min(args.n, start + 100))
                gens = seeded_generators(range(rows.start, rows.stop))
                noise = torch.stack([torch.randn(tuple(info.data_shape), generator=g) for g in gens])
                with torch.no_grad():
                    xs.append(sample(lambda x, s, **_: guided(x, s, rows), noise, solver="dpmpp_2m", nfe=20,
                                     sigma_min=spec.sigma_min, sigma_max=spec.sigma_max, generator=gens))
            acc = judge.evaluate(torch.cat(xs).clamp(-1, 1), ds.attributes[: args.n])
            out[f"{mode} w={w:g}"] = {k: round(acc[k], 3) for k in ("all", "color", "shape", "position")}
            print(mode, w, out[f"{mode} w={w:g}"], flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
