"""Evaluation protocols: a real reference set with its noise floor, metrics of generated samples,
the likelihood of held-out data, and the small-budget hook for training.

    ref = build_reference(train_images, extractor, holdout=test_images)   # cached features
    result = evaluate_samples(samples, ref, labels=intended_classes)       # {"fd": ..., "kid": ...}
    ref.noise_floor                                                        # the same metrics, real vs real

The noise floor is every metric computed for an independent real split (the held-out test images)
against the same reference: a model cannot be told apart from the data below it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from .cache import ReferenceFeatures, reference_features
from .features import EvalError, FeatureExtractor, cache_root, load_extractor, save_extractor
from .likelihood import (
    MAX_EXACT_DIM,
    bin_width,
    data_span,
    default_probes,
    discrete_log_likelihood,
    log_likelihood,
    quantize,
)
from .metrics import (
    class_accuracy,
    class_coverage,
    class_histogram,
    feature_stats,
    frechet_distance_from_stats,
    kid,
    min_samples_for_stats,
    precision_recall,
)
from ..conditioning import Conditioner
from ..config import DEFAULT_METRICS, METRIC_DIRECTIONS, METRIC_KEYS, METRICS
from ..runs.generation import generate, prepare_values
from ..sampling import SamplingSpec
from .splits import RealSplits, real_splits

__all__ = [
    "METRICS",
    "METRIC_KEYS",
    "METRIC_DIRECTIONS",
    "DEFAULT_METRICS",
    "parse_metrics",
    "RealSplits",
    "real_splits",
    "default_extractor",
    "Reference",
    "build_reference",
    "evaluate_samples",
    "evaluate_nll",
    "evaluate_during_training",
]

# The metric tables are part of the config schema ([eval] metrics / keep_best): noisecraft.config.


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """'fd,kid' or ["fd", "kid"] -> ("fd", "kid"); EvalError naming the valid metrics otherwise."""
    items = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    items = [m for m in items if m]
    if not items:
        raise EvalError(f"no metrics given; valid: {', '.join(METRICS)}")
    bad = [m for m in items if m not in METRICS]
    if bad:
        raise EvalError(f"unknown metric {bad[0]!r}; valid: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(items))


# ------------------------------------------------------------------------------------------------
# Real data


def default_extractor(
    source: str,
    *,
    resolution: int | None,
    channels: int | None = None,
    cache_dir: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> FeatureExtractor:
    """The cached classifier extractor of a built-in dataset, fitted (about a minute on 2 cores) on first use.

    Stored in <cache>/features/<source>-r<resolution>-c<channels>/ (cache: $NOISECRAFT_CACHE or
    ~/.cache/noisecraft); delete the folder to refit. Folders have no default: fit one with
    `noisecraft eval fit-features FOLDER --out F` and pass `--features F`.
    """
    from ..data import BUILTIN_DATASETS

    if source not in BUILTIN_DATASETS:
        raise EvalError(f"dataset {source!r} has no default feature extractor; fit one with `noisecraft eval "
                        f"fit-features {source} --out FEATURES` and pass features=FEATURES (or features='inception')")
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "features"
    folder = root / f"{source}-r{resolution or 'native'}-c{channels or 'native'}"
    if (folder / "extractor.json").is_file():
        try:
            return load_extractor(folder)
        except EvalError as e:
            if echo:
                echo(f"warning: {e}; refitting")
    from .features import fit_features

    if echo:
        echo(f"fitting the {source} feature classifier once (cached in {folder}) ...")
    result = fit_features(source, resolution=resolution, channels=channels)
    save_extractor(result.extractor, folder)
    if echo:
        echo(f"feature classifier: held-out accuracy {result.held_out_accuracy:.4f} ({result.seconds:.0f} s)")
    return result.extractor


# ------------------------------------------------------------------------------------------------
# Reference and metrics


def _feature_metrics(
    real: ReferenceFeatures,
    feats: np.ndarray,
    metrics: Sequence[str],
    *,
    kid_subsets: int,
    kid_subset_size: int,
    pr_k: int,
    seed: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "fd" in metrics:
        if real.stats is None:
            raise EvalError(f"the reference set has {real.n} images, too few for {feats.shape[1]}-d features "
                            f"(FD needs at least {min_samples_for_stats(feats.shape[1])})")
        need = min_samples_for_stats(feats.shape[1])
        if feats.shape[0] < need:
            raise EvalError(f"FD with {feats.shape[1]}-d features needs at least {need} samples, got "
                            f"{feats.shape[0]}; raise n or use an extractor with fewer features")
        out["fd"] = frechet_distance_from_stats(real.stats, feature_stats(feats, "generated features"))
    if "kid" in metrics:
        r = kid(real.features, feats, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        out["kid"], out["kid_std_err"], out["kid_subset_size"] = r.mean, r.std_err, r.subset_size
    if "pr" in metrics:
        pr = precision_recall(real.features, feats, k=pr_k)
        out["precision"], out["recall"] = pr.precision, pr.recall
    return out


def _class_metrics(pred: np.ndarray | None, labels, num_classes: int) -> dict[str, Any]:
    if pred is None or num_classes < 2:
        return {}
    out: dict[str, Any] = {"coverage": class_coverage(pred, num_classes),
                           "class_histogram": class_histogram(pred, num_classes).tolist()}
    if labels is not None:
        out["accuracy"] = class_accuracy(pred, np.asarray(labels, dtype=np.int64).reshape(-1))
    return out


@dataclass
class Reference:
    """Real reference features, the held-out split's features, and the noise floor of each metric."""

    name: str
    extractor: FeatureExtractor
    real: ReferenceFeatures
    holdout: ReferenceFeatures | None
    holdout_labels: np.ndarray | None
    noise_floor: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n_reference": self.real.n, "n_holdout": self.holdout.n if self.holdout else 0,
                "cache_key": self.real.key[:16], "from_cache": self.real.from_cache,
                "extractor": self.extractor.describe()}


def build_reference(
    images: Tensor,
    extractor: FeatureExtractor,
    *,
    holdout: Tensor | None = None,
    holdout_labels: Tensor | None = None,
    name: str = "reference",
    metrics: Sequence[str] = DEFAULT_METRICS,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pr_k: int = 3,
    seed: int = 0,
) -> Reference:
    """Reference features of `images` (cached) and, with `holdout`, the noise floor of `metrics`.

    The metric settings given here are the ones `evaluate_samples` uses with this reference.
    """
    metrics = parse_metrics(metrics)
    settings = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, pr_k=pr_k, seed=seed)
    real = reference_features(images, extractor, cache_dir=cache_dir, use_cache=use_cache)
    ref = Reference(name, extractor, real, None, None, {}, settings)
    if holdout is not None and holdout.shape[0] > 0:
        ref.holdout = reference_features(holdout, extractor, cache_dir=cache_dir, use_cache=use_cache)
        ref.holdout_labels = None if holdout_labels is None else holdout_labels.cpu().numpy().astype(np.int64)
        floor_metrics = [m for m in metrics if m in ("fd", "kid", "pr")]
        if "fd" in floor_metrics and ref.holdout.n < min_samples_for_stats(ref.holdout.features.shape[1]):
            floor_metrics.remove("fd")
        ref.noise_floor = _feature_metrics(real, ref.holdout.features, floor_metrics, **settings)
        if "acc" in metrics and extractor.num_classes >= 2:
            pred = extractor.predict(holdout)
            labels = ref.holdout_labels if ref.holdout_labels is not None else None
            ref.noise_floor.update(_class_metrics(pred, labels, extractor.num_classes))
        ref.noise_floor["n"] = ref.holdout.n
    return ref


def evaluate_samples(
    samples: Tensor,
    reference: Reference,
    *,
    labels: Tensor | Sequence[int] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, Any]:
    """Metrics of generated images (N, C, H, W) in [-1, 1] against a reference.

    labels: the class each sample was generated for (class accuracy); without them only class
    coverage is reported. "nll" is not a sample metric (see `evaluate_nll`) and is skipped here.
    Returns {"n", "fd", "kid", "kid_std_err", "precision", "recall", "accuracy", "coverage",
    "class_histogram", "seconds"} for the metrics asked for.
    """
    metrics = parse_metrics(metrics)
    t0 = time.perf_counter()
    ext = reference.extractor
    want_classes = "acc" in metrics and ext.num_classes >= 2
    if want_classes:
        feats, pred = ext.features_and_predictions(samples)
    else:
        feats, pred = ext.features(samples), None
    out: dict[str, Any] = {"n": int(samples.shape[0])}
    out.update(_feature_metrics(reference.real, feats, metrics, **reference.settings))
    if want_classes:
        if labels is not None:
            labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
            if labels.shape[0] != samples.shape[0]:
                raise ValueError(f"got {labels.shape[0]} labels for {samples.shape[0]} samples")
        out.update(_class_metrics(pred, labels, ext.num_classes))
    out["seconds"] = time.perf_counter() - t0
    return out


def evaluate_nll(
    denoiser: Callable[..., Tensor],
    images: Tensor,
    *,
    labels: Tensor | None = None,
    num_classes: int = 0,
    levels: int | None = 256,
    data_range: Sequence[float] = (-1.0, 1.0),
    dequant_draws: int = 1,
    support: Tensor | None = None,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    seed: int = 0,
    batch_size: int = 64,
    trace: str = "auto",
    hutchinson_samples: int | None = None,
) -> dict[str, Any]:
    """Likelihood of real data under the model via the PF-ODE, averaged over `images` with its standard error.

    levels (default 256: 8-bit images on data_range [-1, 1]): the images are rounded to that grid
    (`quantize`; the largest change is reported) and scored by `discrete_log_likelihood`, an upper
    bound on the model's codelength: "bpd" ± "bpd_std_err" (over images, each averaged over
    dequant_draws uniform draws). The bound holds whatever the data's geometry.
    levels=None: the data are continuous; the result is the PF-ODE density's "nll_nats_per_dim" ±
    "nll_std_err_per_dim". It is refused (EvalError) when the data span a proper subspace
    (`data_span` of `support` and `images` together, when they outnumber the dimensions): a density
    concentrated on a subspace has no meaningful value per dimension.

    Both report "span" (rank, dims, n of the span check, or None when it could not tell), "note" (a
    sentence for readers, or None), the estimator ("trace", "probes") and "estimator_std_err_per_dim":
    the root-mean-square of the per-image standard errors of the trace estimate, in the unit of the
    main figure. With labels (conditional models) everything is conditioned on the class.
    """
    t0 = time.perf_counter()
    if isinstance(dequant_draws, bool) or not isinstance(dequant_draws, int) or dequant_draws < 1:
        raise ValueError(f"dequant_draws must be an integer >= 1, got {dequant_draws!r}")
    n, d = images.shape[0], math.prod(images.shape[1:])
    span = data_span(images if support is None else torch.cat([support.to(images.dtype), images]))
    if levels is None and span is not None and span.degenerate:
        raise EvalError(f"the data span only {span.rank} of {d} dimensions (rank of {span.n} images); the model's "
                        "continuous density is concentrated near that subspace, so its nats/dim are meaningless. "
                        "Score them as discrete data (levels=256) or at their native resolution")
    exact = trace == "exact" or (trace == "auto" and d <= MAX_EXACT_DIM)
    probes = None if exact else (hutchinson_samples or default_probes(d))
    x_all = images if levels is None else quantize(images, levels, data_range)
    gen = torch.Generator().manual_seed(seed)
    kw = dict(sigma_min=sigma_min, sigma_max=sigma_max, trace=trace, hutchinson_samples=hutchinson_samples,
              generator=gen)
    draws, errs = [], []
    for _ in range(1 if levels is None else dequant_draws):
        lls, ses = [], []
        for start in range(0, n, batch_size):
            x = x_all[start : start + batch_size]
            cond = {}
            if labels is not None and num_classes > 0:
                onehot = torch.nn.functional.one_hot(labels[start : start + batch_size].long(), num_classes)
                cond["class_labels"] = onehot.float()
            if levels is None:
                r = log_likelihood(denoiser, x, **kw, **cond)
            else:
                r = discrete_log_likelihood(denoiser, x, levels=levels, data_range=data_range, **kw, **cond)
            lls.append(r.nats), ses.append(r.std_err)
        draws.append(torch.cat(lls)), errs.append(torch.cat(ses))
    ll = torch.stack(draws).mean(0)  # (N,) nats per image, averaged over dequantization draws
    est_se = torch.stack(errs).pow(2).mean(0).sqrt() / len(draws)**0.5  # (N,) per-image trace-estimate error
    unit = d * math.log(2.0) if levels is not None else d  # nats per image -> bits/dim or nats/dim
    per_image = -ll / unit
    std_err = float(per_image.std() / math.sqrt(n)) if n > 1 else float("nan")
    out: dict[str, Any] = {"nll_n": int(n), "trace": "exact" if exact else "hutchinson", "probes": probes,
                           "estimator_std_err_per_dim": float(est_se.pow(2).mean().sqrt()) / unit,
                           "span": span._asdict() if span is not None else None, "note": None}
    degenerate = span is not None and span.degenerate
    if levels is None:
        out.update({"nll_nats_per_dim": float(per_image.mean()), "nll_std_err_per_dim": std_err})
    else:
        out.update({"bpd": float(per_image.mean()), "bpd_std_err": std_err, "levels": levels,
                    "bin_width": bin_width(levels, data_range), "data_range": [float(v) for v in data_range],
                    "dequant_draws": dequant_draws,
                    "quantization_max_change": float((x_all - images).abs().max()) if n else 0.0})
        if degenerate:
            out["note"] = (f"the data span only {span.rank} of {d} dimensions (e.g. images upsampled from a lower "
                           "resolution, constant pixels): the model's density is concentrated near that subspace, so "
                           "no continuous-density NLL is given; bits/dim is an upper bound on the codelength of the "
                           f"{levels}-level images in all {d} dimensions, not comparable with figures for the data at "
                           "its native resolution")
    out["nll_seconds"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------------------
# The training hook


def evaluate_during_training(
    denoiser: Callable[..., Tensor],
    reference: Reference,
    *,
    shape: Sequence[int],
    spec: SamplingSpec,
    conditioners: Sequence[Conditioner] = (),
    n: int = 256,
    metrics: Sequence[str] = ("fd", "kid"),
    batch_size: int = 256,
) -> dict[str, Any]:
    """Draw n samples per `spec` (sample i from spec.seed + i; classes in turn for class-conditional
    models) and score them.

    Meant to be called by the trainer every N steps with a fixed seed, so successive calls differ
    only by the weights. Build `reference` once before training (`build_reference`; its features are
    cached on disk). An nn.Module denoiser is put in eval mode for the call and restored after; the
    global torch RNG is not touched. Returns the metric dict of `evaluate_samples` plus
    "sampling_seconds"; `METRIC_DIRECTIONS` says which way each metric improves.
    """
    metrics = tuple(m for m in parse_metrics(metrics) if m != "nll")
    module = denoiser if isinstance(denoiser, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    values = prepare_values(conditioners, {}, n)  # every condition at its default (classes in turn)
    labels = values.get("class_labels")
    try:
        if module is not None:
            module.eval()
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            x = generate(denoiser, n, tuple(shape), spec, conditioners, values, batch_size=batch_size).clamp(-1, 1)
        sampling = time.perf_counter() - t0
    finally:
        if module is not None:
            module.train(was_training)
    out = evaluate_samples(x, reference, labels=labels.tolist() if labels is not None else None, metrics=metrics)
    out["sampling_seconds"] = sampling
    return out
