"""Evaluate a trained run end to end and write the report folder.

    REPORT_DIR/
        report.json      every number: metrics of the samples, the noise floor, settings, timings
        report.md        the same for people, with the pictures below
        samples.png      a grid of generated samples (one column per class for conditional models)
        classes.png      predicted-class histogram of samples vs held-out real images (labelled data)
        nfe_sweep.png    FD (and KID) against the sampler's NFE, with the noise floor (--sweep-nfe)

That is the image protocol. `evaluate_run` picks the protocol the run's modality names
(`RUN_EVALUATIONS`); audio runs get `audio_run.evaluate_audio_run` and its report folder, video runs
`video_run.evaluate_video_run` (frame accuracy, identity, trajectory residual, FVD; moving-shapes runs:
colour, shape and motion follow rates, `moving_shapes_run`), field runs
`field_run.evaluate_field_run` (power spectrum, pixel statistics, Darcy residual vs real floors).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..io.files import atomic_write_text
from .evaluate import (
    DEFAULT_METRICS,
    METRIC_DIRECTIONS,
    build_reference,
    default_extractor,
    evaluate_nll,
    evaluate_samples,
    parse_metrics,
)
from .audio_run import evaluate_audio_run
from .video_run import evaluate_video_run
from .field_run import evaluate_field_run
from .features import EvalError, FeatureExtractor, load_extractor
from .output import check_report_out, environment, format_value
from .run_options import RunEvalOptions, quiet
from .splits import real_splits

__all__ = ["REPORT_FORMAT", "RUN_EVALUATIONS", "evaluate_run", "evaluate_image_run", "write_report"]

REPORT_FORMAT = "noisecraft-eval/1"

_LABELS = {
    "fd": "FD", "kid": "KID", "kid_std_err": "KID std. err.", "precision": "precision", "recall": "recall",
    "accuracy": "class accuracy", "coverage": "class coverage", "bpd": "bits/dim (dequantized bound)",
}


def evaluate_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    n: int | None = None,
    metrics: str | Sequence[str] | None = None,
    solver: str | None = None,
    nfe: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    weights: str = "ema",
    features: str | Path | FeatureExtractor | None = None,
    sweep_nfe: Sequence[int] = (),
    nll_n: int = 64,
    nll_levels: int = 256,
    kid_subsets: int = 100,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    echo: Callable[[str], None] | None = None,
    physics: float | None = None,
    physics_sigma: float = math.inf,
) -> dict[str, Any]:
    """Sample a run, score the samples against its training data, write REPORT_DIR; returns report.json's dict.

    How depends on what the run's modality names as its evaluation (`Modality.eval_features`, a key
    of `RUN_EVALUATIONS`): images are scored by `evaluate_image_run`, audio by
    `audio_run.evaluate_audio_run`, video by `video_run.evaluate_video_run`. n and metrics default to the protocol's (images: 1000 samples,
    fd,kid,pr,acc; audio: the floor's number of clips, every audio metric).

    solver / nfe / guidance default to the run's [sample] section. features: a fit-features folder,
    an Inception weight file, "inception", an extractor, or None (the built-in dataset's classifier).
    sweep_nfe: also score samples at these NFE (same seeds) and plot quality against NFE.
    nll_n: held-out images whose likelihood is computed when "nll" is among the metrics; nll_levels:
        the levels they are quantized to on [-1, 1] for the dequantized bits/dim bound (256 = 8-bit).
    physics / physics_sigma: field runs with a PDE residual (darcy) only: sample with physics guidance of
        weight ζ_p = physics acting at σ <= physics_sigma (`fields.physics.physics_dps`).
    """
    from ..runs import Run

    run = Run.open(run_dir)
    kind = run.get_modality().eval_features
    if features is None and kind is None:
        raise EvalError(f"run {str(run_dir)!r} holds {run.modality} data {run.shape}: there are no default evaluation "
                        f"features for the {run.modality} modality yet; give --features, or evaluate an image, "
                        "audio or video run")
    protocol = RUN_EVALUATIONS[kind or "classifier"]  # features given for a modality without defaults: as images
    if physics is not None and kind != "field-statistics":
        raise EvalError(f"physics guidance applies to field runs with a PDE residual (darcy); run {str(run_dir)!r} "
                        f"holds {run.modality} data")
    options = RunEvalOptions(n=n, metrics=metrics, solver=solver, nfe=nfe, guidance=guidance, seed=seed,
                             weights=weights, features=features, sweep_nfe=tuple(sweep_nfe), nll_n=nll_n,
                             nll_levels=nll_levels, kid_subsets=kid_subsets, cache_dir=cache_dir,
                             use_cache=use_cache, echo=echo or quiet, physics=physics, physics_sigma=physics_sigma)
    return protocol(run, run_dir, out_dir, options)


def evaluate_image_run(run: Any, run_dir: str | Path, out_dir: str | Path, options: RunEvalOptions) -> dict[str, Any]:
    """`evaluate_run` for an opened image run (or any run scored with image features): n default
    1000, metrics default fd,kid,pr,acc."""
    from ..io import save_grid
    from ..runs import prepare_values
    from ..runtime import num_threads
    from ..sampling import SpecError

    o = options
    n, metrics, solver, nfe, guidance, seed, weights = o.n, o.metrics, o.solver, o.nfe, o.guidance, o.seed, o.weights
    features, sweep_nfe, nll_n, nll_levels, echo = o.features, o.sweep_nfe, o.nll_n, o.nll_levels, o.echo
    n = 1000 if n is None else n
    metrics = DEFAULT_METRICS if metrics is None else metrics
    metrics = parse_metrics(metrics)
    sc = run.config.sample
    if not 2 <= n <= 1_000_000:
        raise EvalError(f"n {n} is out of range; valid: 2..1000000")
    values = prepare_values(run.conditioners, {}, n)  # classes in turn; a required condition (an image) fails here
    conditional = run.num_classes > 0
    try:
        spec = run.spec(solver=solver, nfe=nfe, guidance=guidance if conditional else 1.0, seed=seed)
        spec.check_seed_range(n)
    except SpecError as e:
        raise EvalError(str(e)) from None
    if isinstance(nll_levels, bool) or not isinstance(nll_levels, int) or nll_levels < 2:
        raise EvalError(f"nll_levels {nll_levels!r} is out of range; valid: an integer >= 2")
    for k in sweep_nfe:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10_000:
            raise EvalError(f"sweep_nfe {k} is out of range; valid: 1..10000")
    solver, nfe, guidance = spec.solver, spec.nfe, spec.guidance
    out = check_report_out(out_dir)

    # Real data at the run's resolution and channels: the same images the model was trained on.
    data_cfg = run.config.data
    channels = data_cfg.channels or None
    resolution = run.data_shape[-1]  # a latent run: the decoded images' size
    if "nll" in metrics and run.is_latent:
        raise EvalError(f"run {str(run_dir)!r} is a latent diffusion model: its likelihood would be of latents, not "
                        "images; leave out the nll metric")
    splits = real_splits(data_cfg.source, resolution=resolution, channels=channels, seed=0)
    if isinstance(features, FeatureExtractor):
        extractor = features
    elif features is not None:
        extractor = load_extractor(features)
    else:
        extractor = default_extractor(data_cfg.source, resolution=resolution, channels=channels, echo=echo)

    if "fd" in metrics and n < extractor.feature_dim + 1:
        raise EvalError(f"n {n} is too small for FD with {extractor.feature_dim}-d features; need at least "
                        f"{extractor.feature_dim + 1} samples (feature_dim + 1), or leave fd out of --metrics")

    t0 = time.perf_counter()
    ref = build_reference(splits.images, extractor, holdout=splits.holdout_images, holdout_labels=splits.holdout_labels,
                          name=splits.name, metrics=metrics, cache_dir=o.cache_dir, use_cache=o.use_cache,
                          kid_subsets=o.kid_subsets, seed=seed)
    reference_seconds = time.perf_counter() - t0

    labels = values["class_labels"].tolist() if conditional else None
    timings: dict[str, float] = {"reference_seconds": reference_seconds}
    threads = run.config.train.threads
    with num_threads(threads):
        den = run.denoiser(weights)

        def draw(k: int):
            return run.generate(spec.replace(nfe=k), n, weights=weights, **values).clamp(-1, 1)

        echo(f"sampling {n} images ({solver}, nfe={nfe}) ...")
        t0 = time.perf_counter()
        samples = draw(nfe)
        timings["sampling_seconds"] = time.perf_counter() - t0
    sample_metrics = [m for m in metrics if m != "nll"]
    if sample_metrics:
        generated = evaluate_samples(samples, ref, labels=labels, metrics=sample_metrics)
        timings["evaluation_seconds"] = generated.pop("seconds")
    else:
        generated, timings["evaluation_seconds"] = {"n": n}, 0.0

    sweep = []
    for k in sorted(set(sweep_nfe)):
        echo(f"sweep: sampling {n} images at nfe={k} ...")
        with num_threads(threads):
            t0 = time.perf_counter()
            xs = samples if k == nfe else draw(k)  # same seeds: the main samples are reused
            sampled = timings["sampling_seconds"] if k == nfe else time.perf_counter() - t0
        sweep_metrics = [m for m in sample_metrics if m in ("fd", "kid")] or ["fd"]
        row = evaluate_samples(xs, ref, labels=labels, metrics=sweep_metrics)
        row.pop("class_histogram", None)
        sweep.append({"nfe": k, **row, "sampling_seconds": sampled})

    nll = None
    if "nll" in metrics:
        # Held-out images (never trained on); the reference split only if there is no held-out image.
        pool, pool_labels = ((splits.holdout_images, splits.holdout_labels) if splits.holdout_images.shape[0]
                             else (splits.images, splits.labels))
        k = min(nll_n, pool.shape[0])
        imgs, lab = pool[:k], (pool_labels[:k] if conditional else None)
        echo(f"likelihood of {k} held-out images ({nll_levels} levels, dequantized; probability-flow ODE) ...")
        # Scored at the resolution the model was trained on: that is the data it models. The span check
        # uses every real image, so data upsampled from a lower resolution is recognised (see evaluate_nll).
        with num_threads(threads):
            nll = evaluate_nll(den, imgs, labels=lab, num_classes=run.num_classes, levels=nll_levels,
                               support=torch.cat([splits.images, splits.holdout_images]), sigma_min=sc.sigma_min,
                               sigma_max=sc.sigma_max, seed=seed)
        timings["nll_seconds"] = nll.pop("nll_seconds")
        generated.update({k2: nll[k2] for k2 in ("bpd", "bpd_std_err")})

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "run": str(run_dir),
        "weights": weights,
        "dataset": data_cfg.source,
        "conditional": conditional,
        "class_names": run.class_names,
        "n": n,
        "seed": seed,
        "solver": solver,
        "nfe": nfe,
        "guidance": guidance,
        "sigma_min": sc.sigma_min,
        "sigma_max": sc.sigma_max,
        "metrics": list(metrics),
        "generated": generated,
        "noise_floor": ref.noise_floor,
        "nll": nll,
        "reference": ref.describe(),
        "nfe_sweep": sweep,
        "directions": {k: v for k, v in METRIC_DIRECTIONS.items()},
        "timings": timings,
        "environment": environment(torch.get_num_threads()),
    }
    out.mkdir(parents=True, exist_ok=True)
    k = run.num_classes
    nrow = k if conditional and n >= k else max(1, math.ceil(math.sqrt(min(n, 100))))
    grid_n = min(n, nrow * 10) if conditional else min(n, nrow * nrow)
    save_grid(samples[:grid_n], out / "samples.png", nrow, scale=max(1, 64 // resolution))
    write_report(report, out)
    return report


# How a run is evaluated, by its modality's `eval_features` (noisecraft.modalities.Modality).
RUN_EVALUATIONS: dict[str, Callable[[Any, str | Path, str | Path, RunEvalOptions], dict[str, Any]]] = {
    "classifier": evaluate_image_run,
    "audio-classifier": evaluate_audio_run,
    "video-motion": evaluate_video_run,
    "field-statistics": evaluate_field_run,
}


def _plots(report: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    hist_gen = report["generated"].get("class_histogram")
    hist_real = report["noise_floor"].get("class_histogram")
    if hist_gen:
        fig, ax = plt.subplots(figsize=(6, 3))
        k = len(hist_gen)
        xs = list(range(k))
        ax.bar([x - 0.2 for x in xs], hist_gen, width=0.4, label="generated")
        if hist_real:
            ax.bar([x + 0.2 for x in xs], hist_real, width=0.4, label="held-out real")
        names = report.get("class_names") or [str(i) for i in xs]
        ax.set_xticks(xs, names[:k] if len(names) >= k else [str(i) for i in xs])
        ax.set_ylabel("fraction predicted as class")
        ax.legend(loc="lower right", fontsize="small", framealpha=0.9)
        fig.tight_layout()
        fig.savefig(out / "classes.png", dpi=100)
        plt.close(fig)
        files.append("classes.png")
    sweep = report.get("nfe_sweep") or []
    if len(sweep) >= 2:
        keys = [k for k in ("fd", "kid") if k in sweep[0]]
        fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
        for ax, key in zip(axes[0], keys):
            ax.plot([r["nfe"] for r in sweep], [r[key] for r in sweep], "o-", label="generated")
            floor = report["noise_floor"].get(key)
            if floor is not None:
                ax.axhline(floor, color="gray", linestyle="--", label="noise floor (held-out real)")
            ax.set_xscale("log")
            ax.set_xticks([r["nfe"] for r in sweep], [str(r["nfe"]) for r in sweep])
            ax.minorticks_off()
            ax.set_xlabel("NFE")
            ax.set_ylabel(_LABELS[key])
            ax.set_title(f"{_LABELS[key]} vs NFE ({report['solver']})")
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "nfe_sweep.png", dpi=100)
        plt.close(fig)
        files.append("nfe_sweep.png")
    return files


def _likelihood_lines(nll: dict, sigma_min: float) -> list[str]:
    estimator = ("exact trace" if nll["trace"] == "exact" else
                 f"Hutchinson trace with {nll['probes']} Rademacher probes per image")
    span = nll.get("span")
    lines = ["## Likelihood", "",
             f"{nll['nll_n']} held-out images, rounded to {nll['levels']} levels on {nll['data_range']} (largest change "
             f"{nll['quantization_max_change']:.3g}) and dequantized with uniform noise over each bin "
             f"({nll['dequant_draws']} draw(s) per image): **{nll['bpd']:.4f} ± {nll['bpd_std_err']:.4f} bits/dim** "
             "(mean ± standard error over images). This is an upper bound on the model's codelength for those "
             "discrete images, -log₂ P(x) ≤ -(E_u log p(x + u) + D·ln Δ)/ln 2, with p the probability-flow ODE "
             f"density at σ_min = {sigma_min} ({estimator}; its error per image is about "
             f"{nll['estimator_std_err_per_dim']:.2g} bits/dim and is included in the standard error). Conditional "
             "models give -log P(x | class).", ""]
    if span is not None:
        lines += [f"Span of the {span['n']} real images: {span['rank']} of {span['dims']} dimensions.", ""]
    if nll.get("note"):
        lines += [f"Note: {nll['note']}.", ""]
    return lines


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.md (plus plots) into out_dir; samples.png is written by the caller."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(report, out)
    report["files"] = {"samples": "samples.png", "plots": plots}
    gen, floor = report["generated"], report["noise_floor"]
    ref = report["reference"]
    ext = ref["extractor"]
    lines = [
        f"# Evaluation of `{report['run']}`",
        "",
        f"- weights: {report['weights']}; {report['n']} samples, seed {report['seed']} (sample i uses seed + i)",
        f"- sampler: {report['solver']}, NFE {report['nfe']}, guidance {report['guidance']}, "
        f"σ ∈ [{report['sigma_min']}, {report['sigma_max']}]",
        f"- reference: {ref['name']} ({ref['n_reference']} images); noise floor: {ref['n_holdout']} held-out images "
        f"vs the same reference",
        f"- features: {ext['name']} ({ext['feature_dim']}-d"
        + (f", held-out accuracy {ext['held_out_accuracy']:.4f}" if ext.get("held_out_accuracy") is not None else "")
        + f", fingerprint {ext['fingerprint']})",
        "",
        "| metric | generated | noise floor (held-out real vs reference) | better |",
        "|---|---|---|---|",
    ]
    for key in ("fd", "kid", "precision", "recall", "accuracy", "coverage", "bpd"):
        if key in gen or key in floor:
            g = format_value(gen.get(key))
            f = format_value(floor.get(key))
            if key in ("kid", "bpd"):
                g += f" ± {format_value(gen.get(key + '_std_err'))}" if key + "_std_err" in gen else ""
                f += f" ± {format_value(floor.get(key + '_std_err'))}" if key + "_std_err" in floor else ""
            better = {"min": "lower", "max": "higher"}.get(METRIC_DIRECTIONS.get(key, ""), "")
            lines.append(f"| {_LABELS[key]} | {g} | {f} | {better} |")
    lines += [
        "",
        "FD and KID are biased upwards at small sample sizes; compare numbers at the same n. KID is the mean of "
        "unbiased MMD² estimates over random subsets ± its standard error. Class accuracy is the fraction of samples "
        "the feature classifier assigns to the class they were generated for (on held-out real images: the "
        "classifier's own accuracy); coverage is the fraction of classes predicted at least once.",
        "",
        "## Samples",
        "",
        "![samples](samples.png)",
        "",
    ]
    if "classes.png" in plots:
        lines += ["## Predicted classes", "", "![classes](classes.png)", ""]
    if report.get("nfe_sweep"):
        lines += ["## Quality vs NFE", "", "| NFE | FD | KID | sampling (s) |", "|---|---|---|---|"]
        for r in report["nfe_sweep"]:
            lines.append(f"| {r['nfe']} | {format_value(r.get('fd'))} | {format_value(r.get('kid'))} | {r['sampling_seconds']:.1f} |")
        lines.append(f"| noise floor | {format_value(floor.get('fd'))} | {format_value(floor.get('kid'))} | |")
        lines.append("")
        if "nfe_sweep.png" in plots:
            lines += ["![quality vs NFE](nfe_sweep.png)", ""]
    if report.get("nll"):
        lines += _likelihood_lines(report["nll"], report["sigma_min"])
    t = report["timings"]
    lines += ["## Timings", "",
              f"- reference features: {t['reference_seconds']:.2f} s ({'cache hit' if ref['from_cache'] else 'computed and cached'})",
              f"- sampling: {t['sampling_seconds']:.2f} s",
              f"- evaluation of {report['n']} samples (features + metrics): {t['evaluation_seconds']:.2f} s"]
    if "nll_seconds" in t:
        lines.append(f"- likelihood: {t['nll_seconds']:.2f} s")
    lines.append("")
    json_path, md_path = out / "report.json", out / "report.md"
    _atomic_text(json_path, json.dumps(report, indent=2) + "\n")
    _atomic_text(md_path, "\n".join(lines))
    return json_path, md_path


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)
