"""Quality of a class-conditional digits run (the `noisecraft demo` model), measured three ways.

    python benchmarks/digits_quality.py runs/demo [--per-class 100] [--guidance 2.0] [--weights ema]

1. Recognisability: an RBF support-vector classifier is trained on the real digits train split
   (at the run's resolution) and checked on the held-out test split; it then labels `per-class`
   generated samples of every digit. Reported: the fraction recognised as the requested digit.
2. Diversity: mean pairwise L2 distance between samples of the same class, divided by the same
   quantity for the real train digits of that class (1.0 = as varied as the data; mode collapse
   gives values near 0). Reported per class and averaged.
3. Fidelity: Fréchet distance in an independent feature space (the 64-unit tanh hidden layer of a
   scikit-learn MLP trained on the real train split, on images average-pooled to the data's native
   8x8), generated samples vs the real train digits, next to the real-vs-real floor (held-out test
   digits vs the train digits). The FD of the samples is the median over random subsets of the
   test split's size, so both figures carry the same small-sample bias. Neither this network nor the
   SVM above is used by noisecraft to train or to choose any setting.
4. Memorisation: the L2 distance from each sample to its nearest train image, compared with the
   same distance for held-out real test digits (which are, by construction, not copies). A
   sample counts as a near-copy if it is closer to a train image than the 1st percentile of the
   test digits' nearest-train distances.

Prints a table and writes the numbers as JSON (`--json PATH`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.reshape(x.shape[0], -1).double().numpy()


def mean_pairwise(x: np.ndarray) -> float:
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def nearest_distance(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    d2 = (x**2).sum(1)[:, None] + (ref**2).sum(1)[None, :] - 2 * x @ ref.T
    return np.sqrt(np.maximum(d2.min(1), 0))


def _native(x: np.ndarray, resolution: int) -> np.ndarray:
    """(N, r*r) images -> (N, 64) average-pooled to the digits' native 8x8."""
    f = resolution // 8
    return x.reshape(-1, 8, f, 8, f).mean(axis=(2, 4)).reshape(len(x), 64)


class MLPFeatures:
    """Hidden-layer features of an MLP classifier fitted on real 8x8 digits (independent judge)."""

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray, resolution: int, seed: int = 0):
        from sklearn.neural_network import MLPClassifier

        self.resolution = resolution
        self.mlp = MLPClassifier(hidden_layer_sizes=(64,), activation="tanh", alpha=1e-3, max_iter=2000, random_state=seed)
        self.mlp.fit(_native(train_x, resolution), train_y)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = _native(x, self.resolution) @ self.mlp.coefs_[0] + self.mlp.intercepts_[0]
        return np.tanh(h)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(ca @ cb).real
    return float(mu @ mu + np.trace(ca + cb - 2 * covmean))


def fd_subsets(gen: np.ndarray, ref: np.ndarray, size: int, draws: int = 10, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    size = min(size, len(gen))
    return float(np.median([frechet(gen[rng.choice(len(gen), size, replace=False)], ref) for _ in range(draws)]))


def train_classifier(resolution: int):
    from sklearn.svm import SVC

    from noisecraft.data import load_dataset

    train = load_dataset("digits", resolution=resolution, split="train")
    test = load_dataset("digits", resolution=resolution, split="test")
    clf = SVC(C=10.0, gamma="scale")
    clf.fit(_flat(train.images), train.labels.numpy())
    acc = float((clf.predict(_flat(test.images)) == test.labels.numpy()).mean())
    return clf, train, test, acc


class IndependentJudge:
    """The SVM (accuracy), the MLP features (FD over the real floor), pixel diversity and near copies,
    fitted once on the real digits at `resolution`; never used by noisecraft to choose a setting."""

    def __init__(self, resolution: int):
        self.clf, train, test, self.clf_acc = train_classifier(resolution)
        self.tr, self.trl, te = _flat(train.images), train.labels.numpy(), _flat(test.images)
        self.num_classes = int(self.trl.max()) + 1
        self.real_div = [mean_pairwise(self.tr[self.trl == c]) for c in range(self.num_classes)]
        self.feats = MLPFeatures(self.tr, self.trl, resolution)
        self.mlp_acc = float((self.feats.mlp.predict(_native(te, resolution)) == test.labels.numpy()).mean())
        self.f_tr, self.n_test = self.feats(self.tr), len(te)
        self.fd_floor = frechet(self.feats(te), self.f_tr)
        self.nn_test = nearest_distance(te, self.tr)
        self.copy_threshold = float(np.percentile(self.nn_test, 1))

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        xs, y = _flat(x), labels.numpy()
        pred = self.clf.predict(xs)
        ratios = [mean_pairwise(xs[y == c]) / self.real_div[c] for c in range(self.num_classes)]
        fd_gen = fd_subsets(self.feats(xs), self.f_tr, self.n_test)
        nn_gen = nearest_distance(xs, self.tr)
        return {
            "classifier_test_accuracy": self.clf_acc,
            "accuracy": float((pred == y).mean()),
            "accuracy_per_class": [float((pred[y == c] == c).mean()) for c in range(self.num_classes)],
            "diversity_ratio": float(np.mean(ratios)),
            "diversity_ratio_per_class": [float(r) for r in ratios],
            "fd_mlp": fd_gen,
            "fd_mlp_floor": self.fd_floor,
            "fd_mlp_ratio": fd_gen / self.fd_floor,
            "mlp_test_accuracy": self.mlp_acc,
            "nn_train_distance_median_samples": float(np.median(nn_gen)),
            "nn_train_distance_median_test_digits": float(np.median(self.nn_test)),
            "nn_train_distance_min_samples": float(nn_gen.min()),
            "near_copy_threshold": self.copy_threshold,
            "near_copy_fraction": float((nn_gen < self.copy_threshold).mean()),
        }


def guide_denoiser(run, guide: str):
    """A weaker version of `run`'s model to guide it away from (autoguidance, Karras et al. 2024):
    "ckpt-<step>" (the EMA weights of a kept checkpoint), "ckpt-<step>-raw", or "snap-<step>-<std>"
    (the post-hoc EMA snapshot of relative std <std> taken at training step <step>)."""
    from noisecraft.io_safety import read_safetensors
    from noisecraft.runs.checkpoint import load_checkpoint
    from noisecraft.runs.run import build_denoiser

    net = run.build_net()
    m = re.fullmatch(r"ckpt-(\d+)(-raw)?", guide)
    if m:
        _, state = load_checkpoint(run.path / "checkpoints" / f"ckpt-{int(m.group(1)):08d}")
        net.load_state_dict(state["model"])
        if not m.group(2):
            net.load_state_dict(state["ema"]["module"])
    else:
        m = re.fullmatch(r"snap-(\d+)-([0-9.]+)", guide)
        if not m:
            raise ValueError(f"guide {guide!r}: expected ckpt-<step>[-raw] or snap-<step>-<std>")
        samples = int(m.group(1)) * run.config.train.batch_size
        path = run.path / "phema" / f"snap-{samples:012d}-{float(m.group(2)):.3f}.safetensors"
        net.load_state_dict(read_safetensors(path)[0])
    net.eval().requires_grad_(False)
    return build_denoiser(net, run.config).eval()


def autoguided_generate(run, spec, labels: torch.Tensor, *, weights: str = "ema", guide: str | None = None,
                        ag_weight: float = 1.0, ag_interval: tuple[float, float] | None = None) -> torch.Tensor:
    """run.generate, with autoguidance towards `weights` and away from `guide` (and the spec's CFG on top)."""
    if guide is None or ag_weight == 1.0:
        return run.generate(spec, len(labels), weights=weights, class_labels=labels)
    from noisecraft.guidance import autoguidance
    from noisecraft.runs.generation import generate

    den = autoguidance(run.denoiser(weights), guide_denoiser(run, guide), ag_weight, interval=ag_interval)
    return generate(den, len(labels), run.shape, spec, run.conditioners, {"class_labels": labels})


def evaluate(run_dir: str, *, per_class: int = 100, guidance: float | None = None, weights: str = "ema",
             solver: str | None = None, nfe: int | None = None, seed: int = 1000,
             guidance_interval: tuple[float, float] | None = None) -> dict:
    from noisecraft.runs import Run

    info = Run.open(run_dir)
    spec = info.spec(guidance=guidance, solver=solver, nfe=nfe or None, seed=seed, guidance_interval=guidance_interval)
    judge = IndependentJudge(info.shape[-1])
    labels = torch.arange(info.num_classes).repeat_interleave(per_class)
    t0 = time.perf_counter()
    x = info.generate(spec, len(labels), weights=weights, class_labels=labels).clamp(-1, 1)
    gen_seconds = time.perf_counter() - t0
    return {
        "run": str(run_dir),
        "weights": weights,
        "solver": spec.solver,
        "nfe": spec.nfe,
        "guidance": spec.guidance,
        "guidance_interval": list(spec.guidance_interval) if spec.guidance_interval else None,
        "per_class": per_class,
        **judge(x, labels),
        "generation_seconds": gen_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder (e.g. runs/demo)")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--guidance", type=float, nargs="*", default=None, help="one or more CFG weights (default: the run's)")
    ap.add_argument("--weights", default="ema", help="raw | ema | phema-<std>")
    ap.add_argument("--solver")
    ap.add_argument("--nfe", type=int)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--guidance-interval", help="LO:HI: guide only for σ in (LO, HI] (default: the run's)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = []
    for g in args.guidance or [None]:
        r = evaluate(args.run, per_class=args.per_class, guidance=g, weights=args.weights, solver=args.solver,
                     nfe=args.nfe, seed=args.seed,
                     guidance_interval=tuple(float(v) for v in args.guidance_interval.split(":")) if args.guidance_interval else None)
        results.append(r)
        print(f"{r['weights']:>10} guidance {r['guidance']:.2f} {r['solver']}@{r['nfe']}: "
              f"accuracy {r['accuracy']:.3f} (min class {min(r['accuracy_per_class']):.2f}), "
              f"diversity ratio {r['diversity_ratio']:.3f} (min {min(r['diversity_ratio_per_class']):.2f}), "
              f"FD {r['fd_mlp']:.2f} = {r['fd_mlp_ratio']:.2f}x floor {r['fd_mlp_floor']:.2f}, "
              f"NN-train median {r['nn_train_distance_median_samples']:.2f} vs test digits "
              f"{r['nn_train_distance_median_test_digits']:.2f}, near copies {r['near_copy_fraction']:.3f}, "
              f"classifier test acc {r['classifier_test_accuracy']:.3f}, {r['generation_seconds']:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results if len(results) > 1 else results[0], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
