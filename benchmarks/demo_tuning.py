"""Choose the digits demo's sampling settings with noisecraft's own judge, on tuning seeds only.

    python benchmarks/demo_tuning.py RUN [RUN ...] --guidance 1.25 1.5 1.75 --interval none 0.1:5 0.3:10

For every run x guidance weight x guidance interval x weights choice, `--per-class` samples per digit
are drawn from the tuning seeds (`--seed`, default 5000; the reporting script
`benchmarks/digits_quality.py` draws from 1000 with a different judge) and scored by the judge that
noisecraft ships (`noisecraft.eval.default_extractor`, the CNN `noisecraft eval` uses):

* accuracy: fraction classified as the requested digit;
* FD: Fréchet distance in its 64-d features to the real held-out test digits, divided by the
  real-vs-real floor (as many train digits as the test split has, against the test split);
* diversity: mean within-class pairwise pixel distance over the real train digits' (weakest class too).

The report of the chosen settings must come from `digits_quality.py`, whose SVM and MLP features are
not used here: the point of the split is that the settings are not tuned to the judge that reports them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_quality import _flat, autoguided_generate, mean_pairwise  # noqa: E402


class OwnJudge:
    def __init__(self, resolution: int, seed: int = 0):
        from noisecraft.data import load_dataset
        from noisecraft.eval import default_extractor, feature_stats, frechet_distance_from_stats

        self.ext = default_extractor("digits", resolution=resolution)
        test = load_dataset("digits", resolution=resolution, split="test")
        self.train = load_dataset("digits", resolution=resolution, split="train")
        self.test_stats = feature_stats(self.ext.features(test.images))
        g = torch.Generator().manual_seed(seed)
        self.n = len(test)
        pick = torch.randperm(len(self.train), generator=g)[: self.n]
        self.floor = frechet_distance_from_stats(self.test_stats, feature_stats(self.ext.features(self.train.images[pick])))
        tr, trl = _flat(self.train.images), self.train.labels.numpy()
        self.real_div = [mean_pairwise(tr[trl == c]) for c in range(10)]

    def fd(self, feats: np.ndarray | torch.Tensor, draws: int = 10, seed: int = 0) -> float:
        """Median FD over random subsets of the test split's size (the floor's small-sample bias)."""
        from noisecraft.eval import feature_stats, frechet_distance_from_stats

        feats = torch.as_tensor(feats)
        g = torch.Generator().manual_seed(seed)
        vals = [frechet_distance_from_stats(self.test_stats, feature_stats(feats[torch.randperm(len(feats), generator=g)[: min(self.n, len(feats))]]))
                for _ in range(draws)]
        return float(np.median(vals))

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        feats, pred = self.ext.features_and_predictions(x)
        y = labels.numpy()
        xs = _flat(x)
        div = [mean_pairwise(xs[y == c]) / self.real_div[c] for c in range(10)]
        return {"accuracy": float((pred == y).mean()), "fd_ratio": self.fd(feats) / self.floor,
                "diversity": float(np.mean(div)), "diversity_min": float(min(div))}


def parse_interval(s: str):
    if s == "none":
        return None
    lo, hi = (float(v) for v in s.split(":"))
    return (lo, hi)


def main(argv: list[str] | None = None) -> int:
    from noisecraft.runs import Run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.25, 1.5, 1.75])
    ap.add_argument("--interval", nargs="+", default=["none"], help="none or LO:HI (guide only for σ in (LO, HI])")
    ap.add_argument("--weights", nargs="+", default=["ema"])
    ap.add_argument("--solver", nargs="+", default=[None], help="solver names (default: the run's)")
    ap.add_argument("--nfe", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--guide", nargs="+", default=[None],
                    help="autoguidance guide: ckpt-<step>[-raw] or snap-<step>-<std> (default: none)")
    ap.add_argument("--ag-weight", type=float, nargs="+", default=[1.0], help="autoguidance weights")
    ap.add_argument("--ag-interval", nargs="+", default=["none"], help="none or LO:HI for autoguidance")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    judge = None
    # (guide, autoguidance weight, interval); no guide: plain CFG only
    guides = [None if v in (None, "none") else v for v in args.guide]
    autoguide_settings = [(gd, aw, aiv) for gd in guides for aw in (args.ag_weight if gd else [1.0])
                          for aiv in (args.ag_interval if gd else ["none"])]
    for path in args.runs:
        run = Run.open(path)
        judge = judge or OwnJudge(run.shape[-1])
        labels = torch.arange(run.num_classes).repeat_interleave(args.per_class)
        for solver in args.solver:
            for w in args.weights:
                for iv in args.interval:
                    for g in args.guidance:
                        for guide, aw, aiv in autoguide_settings:
                            spec = run.spec(guidance=g, guidance_interval=parse_interval(iv), seed=args.seed,
                                            solver=solver, nfe=args.nfe)
                            x = autoguided_generate(run, spec, labels, weights=w, guide=guide, ag_weight=aw,
                                                    ag_interval=parse_interval(aiv)).clamp(-1, 1)
                            r = {"run": path, "solver": spec.solver, "nfe": spec.nfe, "weights": w, "interval": iv,
                                 "guidance": g, "guide": guide, "ag_weight": aw, "ag_interval": aiv, **judge(x, labels)}
                            rows.append(r)
                            print(f"{path} {spec.solver}@{spec.nfe} {w:>10} interval {iv:>8} g {g:.2f} guide {guide} "
                                  f"ag {aw:.2f} on {aiv}: acc {r['accuracy']:.3f} "
                                  f"FD {r['fd_ratio']:.2f}x div {r['diversity']:.3f} (min {r['diversity_min']:.2f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
