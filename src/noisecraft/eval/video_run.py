"""`noisecraft eval RUN` for video runs: motion metrics of generated clips, each next to its real floor.

The video modality names this protocol (`VideoModality.eval_features = "video-motion"`). It is built
for `moving-digits` runs (one digit per labelled clip, known wall span); `moving-shapes` runs are
handed to `moving_shapes_run` (colour, shape and motion follow rates of text- or class-conditional
runs); other video data is a one-line EvalError. The moving-digits figures (`VIDEO_METRICS`; the floor is the same figure for real held-out clips):

| group | keys | generated | floor |
|---|---|---|---|
| acc | frame_accuracy | frames the frame classifier reads as the requested digit (conditional runs) | real test clips, their true digit |
| identity | identity_rate, identity_share | clips whose frames show one digit in >= 90 % of frames | real test clips |
| trajectory | trajectory_residual_median / _mean / _p90, trajectory_within_1px | RMS px between the ink-centroid path and its best constant-velocity-with-reflections fit (`video_motion`) | real test clips |
| fvd | fvd | Fréchet distance of motion-classifier features to test half A | test half B vs half A |

The real test split (the run's data options, `split="test"`, digit images never trained on) is cut
into halves A and B stratified by class (`real_halves`); n defaults to |B| so FVD compares like with
like. The frame classifier and the motion classifier are fitted on the labelled single-digit train
split at the run's frame count and size (`video_features`), cached by content.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..io.files import atomic_write_text
from .audio import real_halves
from .features import EvalError, FeatureExtractor
from .metrics import frechet_distance, min_samples_for_stats
from .moving_shapes_run import evaluate_moving_shapes_run
from .output import check_report_out, environment, json_values
from .run_options import RunEvalOptions, sample_count
from .video_features import fit_frame_classifier, fit_motion_features, frames_of
from .video_motion import identity_consistency, trajectory_residuals

__all__ = ["VIDEO_METRICS", "VIDEO_METRIC_DIRECTIONS", "parse_video_metrics", "video_scores", "evaluate_video_run",
           "write_video_report", "VIDEO_SOURCES"]

VIDEO_METRICS: dict[str, tuple[str, ...]] = {
    "acc": ("frame_accuracy",),
    "identity": ("identity_rate", "identity_share"),
    "trajectory": ("trajectory_residual_median", "trajectory_residual_mean", "trajectory_residual_p90",
                   "trajectory_within_1px"),
    "fvd": ("fvd",),
}
VIDEO_METRIC_DIRECTIONS = {"frame_accuracy": "max", "identity_rate": "max", "trajectory_residual_median": "min",
                           "trajectory_within_1px": "max", "fvd": "min"}
VIDEO_SOURCES = ("moving-digits", "moving-shapes")  # moving-shapes: `moving_shapes_run` (follow rates)
# Fitting settings of the two classifiers (tests make them smaller).
FRAME_STEPS = 1200
MOTION_STEPS = 1500
FEATURE_DIM = 32


def parse_video_metrics(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    """'fvd,trajectory' or a list -> metric groups of a video run; None -> all. EvalError naming a bad one."""
    if metrics is None:
        return tuple(VIDEO_METRICS)
    items = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    valid = ", ".join(VIDEO_METRICS)
    if not items:
        raise EvalError(f"no metrics given; valid for video runs: {valid}")
    for m in items:
        if m not in VIDEO_METRICS:
            raise EvalError(f"metric {m!r} is not a video metric; valid for video runs: {valid}")
    return tuple(dict.fromkeys(items))


def video_scores(clips: torch.Tensor, requested: np.ndarray | None, *, frame_classifier: FeatureExtractor,
                 span: float, metrics: Sequence[str] = tuple(VIDEO_METRICS)) -> dict[str, Any]:
    """The per-clip figures of `clips` (N, C, T, H, W): frame accuracy against `requested` (N,) classes
    (None: not scored), identity consistency, trajectory residuals for walls `span` px apart."""
    out: dict[str, Any] = {}
    n, t = clips.shape[0], clips.shape[2]
    if "acc" in metrics or "identity" in metrics:
        pred = frame_classifier.predict(frames_of(clips.float())).reshape(n, t)
        if "acc" in metrics:
            out["frame_accuracy"] = None if requested is None else float((pred == requested[:, None]).mean())
        if "identity" in metrics:
            share, kept = identity_consistency(pred)
            out["identity_rate"], out["identity_share"] = float(kept.mean()), float(share.mean())
    if "trajectory" in metrics:
        res = trajectory_residuals(clips, span)
        out.update(trajectory_residual_median=float(np.median(res)), trajectory_residual_mean=float(res.mean()),
                   trajectory_residual_p90=float(np.percentile(res, 90)),
                   trajectory_within_1px=float((res <= 1.0).mean()))
    return out


def _load(source: str, split: str, options: dict, resolution: int, channels: int | None, labels: bool):
    from ..data import BUILTIN_DATASETS

    return BUILTIN_DATASETS[source](resolution=resolution, split=split, channels=channels, labels=labels, **options)


def evaluate_video_run(run: Any, run_dir: str | Path, out_dir: str | Path, options: RunEvalOptions) -> dict[str, Any]:
    """Sample a video run (an opened `Run`), score it with the motion metrics, write REPORT_DIR.

    n: clips to generate (default: the floor's half B of the real test split). metrics: groups of
    `VIDEO_METRICS` (default all; acc needs a class-conditional run). cache_dir: the fitted
    classifiers' cache (default $NOISECRAFT_CACHE/video-features). The image-only options (nll_n,
    nll_levels, kid_subsets) are not read; features and sweep_nfe are refused (the features are fitted here).
    """
    from ..runs import prepare_values
    from ..runtime import num_threads
    from ..sampling import SpecError

    if run.config.data.source == "moving-shapes":  # text-to-video: colour, shape and motion follow rates
        return evaluate_moving_shapes_run(run, run_dir, out_dir, options)
    o = options
    n, metrics, solver, nfe, guidance, seed, weights = o.n, o.metrics, o.solver, o.nfe, o.guidance, o.seed, o.weights
    cache_dir, use_cache, echo = o.cache_dir, o.use_cache, o.echo
    metric_list = parse_video_metrics(metrics)
    if o.features is not None:
        raise EvalError("video runs are scored with classifiers fitted on the built-in clips; --features is not "
                        "available for them")
    if o.sweep_nfe:
        raise EvalError("sweep_nfe is not available for video runs yet; evaluate one NFE per call (--nfe)")
    data = run.config.data
    if data.source not in VIDEO_SOURCES:
        raise EvalError(f"video evaluation is built for {', '.join(VIDEO_SOURCES)} runs (objects that can be "
                        f"recognised, motion that is known); run {str(run_dir)!r} was trained on {data.source!r}")
    conditional = run.num_classes > 0
    if "acc" in metric_list and not conditional and metrics is not None:
        raise EvalError(f"metric 'acc' needs a class-conditional run; {str(run_dir)!r} is unconditional "
                        "(valid here: identity, trajectory, fvd)")
    try:
        spec = run.spec(solver=solver, nfe=nfe, guidance=guidance if conditional else 1.0, seed=seed)
    except SpecError as e:
        raise EvalError(str(e)) from None
    out = check_report_out(out_dir)
    c, t, h, w = run.shape
    channels = data.channels or None
    opts = {k: v for k, v in data.options.items() if k != "two_digit_fraction"}
    t0 = time.perf_counter()
    train = _load(data.source, "train", opts, h, channels, True)  # labelled, one digit per clip
    test = _load(data.source, "test", opts, h, channels, True)
    real = _load(data.source, "test", dict(data.options), h, channels, conditional) if not conditional else test
    if tuple(train.sample_shape) != tuple(run.shape):
        raise EvalError(f"the real clips of {data.source!r} are {tuple(train.sample_shape)}, but the run makes "
                        f"{tuple(run.shape)}; cannot score it")
    span = float(real.walls[0, 1] - real.walls[0, 0])
    real_labels = real.labels if real.labels is not None else torch.zeros(len(real), dtype=torch.long)
    half_a, half_b = real_halves(real_labels, 0)
    n = sample_count(n, len(half_b), "clips", spec)
    echo(f"video features: fitting the frame and motion classifiers on {len(train)} real clips of {data.source!r} "
         "(or loading them from the cache) ...")
    frame_clf = fit_frame_classifier(train.data, train.labels, list(train.class_names),
                                     holdout=(test.data, test.labels), steps=FRAME_STEPS, dataset=data.source,
                                     cache_dir=cache_dir, use_cache=use_cache)
    motion = None
    if "fvd" in metric_list:
        motion = fit_motion_features(train.data, train.labels, list(train.class_names),
                                     holdout=(test.data, test.labels), steps=MOTION_STEPS, feature_dim=FEATURE_DIM,
                                     dataset=data.source, cache_dir=cache_dir, use_cache=use_cache)
    timings: dict[str, float] = {"features_seconds": time.perf_counter() - t0}

    values = prepare_values(run.conditioners, {}, n)  # classes in turn
    requested = values["class_labels"].cpu().numpy() if conditional else None
    echo(f"sampling {n} clips ({spec.solver}, nfe={spec.nfe}) ...")
    t0 = time.perf_counter()
    with num_threads(run.config.train.threads):
        samples = run.generate(spec, n, weights=weights, **values).clamp(-1, 1)
    timings["sampling_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    floor_clips = real.data[torch.from_numpy(half_b)]
    floor_req = real_labels.numpy()[half_b] if conditional else None
    gen = video_scores(samples, requested, frame_classifier=frame_clf, span=span, metrics=metric_list)
    floor = video_scores(floor_clips, floor_req, frame_classifier=frame_clf, span=span, metrics=metric_list)
    notes = []
    if motion is not None:
        ref = motion.features(real.data[torch.from_numpy(half_a)])
        need = min_samples_for_stats(motion.feature_dim)
        ok = min(ref.shape[0], n, len(half_b)) >= need
        gen["fvd"] = frechet_distance(ref, motion.features(samples)) if ok else None
        floor["fvd"] = frechet_distance(ref, motion.features(floor_clips)) if ok else None
        if not ok:
            notes.append(f"FVD needs at least {need} clips in each set ({motion.feature_dim}-d features); the sets "
                         f"hold {ref.shape[0]} (reference), {n} (generated) and {len(half_b)} (floor)")
    timings["evaluation_seconds"] = time.perf_counter() - t0
    if "acc" in metric_list and not conditional:
        notes.append("frame accuracy needs a class-conditional run (no class was requested)")

    report: dict[str, Any] = {
        "format": "noisecraft-video-report/1", "run": str(run_dir), "weights": weights, "dataset": data.source,
        "conditional": conditional, "class_names": run.class_names, "shape": list(run.shape), "n": n, "seed": seed,
        "solver": spec.solver, "nfe": spec.nfe, "guidance": spec.guidance, "sigma_min": spec.sigma_min,
        "sigma_max": spec.sigma_max, "metrics": list(metric_list), "generated": gen, "noise_floor": floor,
        "directions": {k: v for k, v in VIDEO_METRIC_DIRECTIONS.items() if k in gen},
        "settings": {"wall_span_px": span, "identity_share": 0.9},
        "reference": {"n_train": len(train), "n_test": len(real), "n_reference": len(half_a), "n_floor": len(half_b)},
        "features": {"frames": frame_clf.describe(), **({"motion": motion.describe()} if motion else {})},
        "notes": notes, "timings": timings, "environment": environment(run.config.train.threads),
    }
    _write_samples(run.get_modality(), samples, run.class_names if conditional else [], out)
    write_video_report(report, out)
    return report


def _write_samples(modality: Any, samples: torch.Tensor, class_names: list[str], out: Path) -> None:
    """One clip per class (the first K clips ask for classes 0..K-1) as frame strips and GIFs."""
    k = min(samples.shape[0], len(class_names) or 8)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    modality.write_preview(samples[:k], out / "samples.png", nrow=1)
    for i in range(k):
        modality.write(samples[i], out / "samples" / f"{i:06d}.gif")


_LABELS = {"frame_accuracy": "frame accuracy (requested digit)", "identity_rate": "identity kept (clips)",
           "identity_share": "mean share of frames showing the clip's digit",
           "trajectory_residual_median": "trajectory residual, median (px)",
           "trajectory_residual_mean": "trajectory residual, mean (px)",
           "trajectory_residual_p90": "trajectory residual, 90th percentile (px)",
           "trajectory_within_1px": "clips with residual <= 1 px", "fvd": "FVD (motion-classifier features)"}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_video_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """report.json and report.md (samples.png and samples/ are written by `evaluate_video_run`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen, floor, ref, t = report["generated"], report["noise_floor"], report["reference"], report["timings"]
    feats = report["features"]
    rows = [f"| {_LABELS.get(k, k)} | {_fmt(gen[k])} | {_fmt(floor.get(k))} |" for k in gen]
    held = [f"{name} held-out accuracy {_fmt(f.get('held_out_accuracy'))}" for name, f in feats.items()]
    lines = [
        f"# Evaluation of `{report['run']}` (video)", "",
        f"- weights: {report['weights']}; {report['n']} clips of shape {tuple(report['shape'])}, seed {report['seed']}"
        + (" (clip i asks for class i mod K)" if report["conditional"] else ""),
        f"- sampler: {report['solver']}, NFE {report['nfe']}, guidance {report['guidance']}",
        f"- real data: {report['dataset']!r}: {ref['n_train']} training clips fit the classifiers; {ref['n_test']} "
        f"test clips cut into a reference half A ({ref['n_reference']}) and a floor half B ({ref['n_floor']})",
        f"- classifiers: {'; '.join(held)}", "",
        "| metric | generated | floor (real held-out clips) |", "|---|---|---|", *rows, "",
        "Trajectory residual: RMS distance per clip between the ink-centroid path and its best "
        f"constant-velocity path with elastic reflections (walls {report['settings']['wall_span_px']:g} px apart). "
        "Identity: the clip's most frequent predicted digit in at least 90 % of its frames. FVD: Fréchet distance "
        "in the features of a 3-D conv classifier of digit x (real | frames shuffled), generated vs half A; the floor "
        "is half B vs half A. FVD is biased by the sample size: compare figures at the same n.", "",
        *[f"Note: {m}." for m in report["notes"]], "",
        "## Samples", "", "One generated clip per class, a frame strip each (also in `samples/` as GIFs).", "",
        "![samples](samples.png)", "",
        "## Timings", "",
        f"- classifiers: {t['features_seconds']:.1f} s; sampling: {t['sampling_seconds']:.1f} s; scoring: "
        f"{t['evaluation_seconds']:.1f} s",
        f"- machine: {report['environment']['cpu']}, {report['environment']['cpus']} CPUs, torch "
        f"{report['environment']['torch']}", "",
    ]
    json_path, md_path = out / "report.json", out / "report.md"
    atomic_write_text(json_path, json.dumps(json_values(report), indent=2) + "\n")
    atomic_write_text(md_path, "\n".join(lines))
    return json_path, md_path
