"""`noisecraft eval RUN` for audio runs: sample the run, score the clips with `evaluate_audio`, write the report.

    REPORT_DIR/
        report.json      every figure of `evaluate_audio` next to its real-vs-real floor, plus the run,
                         sampler, settings, timings and machine
        report.md        the same as a table for people
        samples.png      spectrograms of one generated clip per class (the modality's preview)
        samples/         those clips as WAVs (000000.wav is class 0, ...)

The audio modality names this protocol (`AudioModality.eval_features = "audio-classifier"`) and
`eval.report.evaluate_run` looks it up, so no generic code asks which modality a run holds.

The real data are the run's own: its dataset's "train" split (what the model learned from) fits the
log-mel feature classifier (`fit_audio_features`, cached on disk by a hash of the clips and every
setting) and supplies the near-copy check; the "test" split (folders: a held-out 15 % of each class)
is cut into two halves, A the reference and B the floor. The reference side (the classifier's fit,
the halves, KID's subsets) always uses seed 0, so floors compare across `--seed`, which only moves
the samples (sample i uses seed + i).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import METRICS
from ..data.note_names import NoteNameError, class_midis, midi_to_hz
from ..io.files import atomic_write_text
from .audio import AudioClips, evaluate_audio, format_audio_report, real_halves
from .audio_features import fit_audio_features, load_audio_features
from .features import EvalError, FeatureExtractor
from .output import check_report_out, environment, json_values
from .run_options import RunEvalOptions, sample_count
from .splits import real_splits

__all__ = ["AUDIO_METRICS", "DEFAULT_AUDIO_METRICS", "parse_audio_metrics", "yin_for_clips", "pitch_for_clips",
           "evaluate_audio_run",
           "write_audio_report"]

# The metric groups an audio run can be asked for (`--metrics`) and the report keys each keeps.
AUDIO_METRICS: dict[str, tuple[str, ...]] = {
    "fd": ("fd",),
    "kid": ("kid", "kid_std_err", "kid_subset_size"),
    "acc": ("accuracy", "coverage"),
    "timbre": ("timbre_accuracy", "timbre_accuracy_by_timbre"),
    "pitch": ("pitch_accuracy", "pitch_voiced_rate", "pitch_median_abs_cents", "pitch_accuracy_by_timbre"),
    "copies": ("near_copy_rate",),
}
DEFAULT_AUDIO_METRICS = tuple(AUDIO_METRICS)
_SCORED = {k for keys in AUDIO_METRICS.values() for k in keys}
FEATURE_DIM = 64  # of the fitted log-mel classifier's features (FD needs more clips than this)
_YIN_DEFAULTS = {"fmin": 50.0, "window_s": 0.025, "oversample": 4}  # estimate_f0's defaults


def parse_audio_metrics(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    """'fd,pitch' or a list -> the metric groups of an audio run; None -> all. EvalError naming a bad one."""
    if metrics is None:
        return DEFAULT_AUDIO_METRICS
    items = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    valid = ", ".join(AUDIO_METRICS)
    if not items:
        raise EvalError(f"no metrics given; valid for audio runs: {valid}")
    for m in items:
        if m not in AUDIO_METRICS:
            what = "applies to image runs only" if m in METRICS else "is unknown"
            raise EvalError(f"metric {m!r} {what}; valid for audio runs: {valid}")
    return tuple(dict.fromkeys(items))


def yin_for_clips(length: int, rate: int, class_names: Sequence[str]) -> dict[str, float]:
    """`estimate_f0` settings for clips of `length` samples: {} (the defaults) when those fit the clip.

    Short clips (a tiny run's 256 samples) cannot hold the default 25 ms window plus a 50 Hz period,
    so the search starts a little over an octave below the lowest class note (octave errors stay
    visible) and the window shrinks to what the clip holds. EvalError when even that does not fit.
    """
    fs = rate * _YIN_DEFAULTS["oversample"]
    room = length * _YIN_DEFAULTS["oversample"]  # YIN works on the oversampled clip

    def size(fmin: float, window_s: float) -> tuple[int, int]:
        tau_max = math.ceil(fs / fmin)
        return max(tau_max, round(window_s * fs)) + tau_max + 1, tau_max

    if size(_YIN_DEFAULTS["fmin"], _YIN_DEFAULTS["window_s"])[0] <= room:
        return {}
    try:
        fmin = float(midi_to_hz(class_midis(class_names).min())) / 2.2
    except NoteNameError:
        return {}  # no notes: pitch is not scored
    tau_max = size(fmin, 0.0)[1]
    window = room - tau_max - 1
    if window < tau_max:
        raise EvalError(f"clips of {length} samples at {rate} Hz are too short to measure the pitch of notes down to "
                        f"{fmin * 2.2:.1f} Hz (need at least {-(-(2 * tau_max + 1) // _YIN_DEFAULTS['oversample'])} "
                        "samples); leave pitch out of --metrics")
    return {"fmin": fmin, "window_s": window / fs}


_PITCH_METHODS = {"shs": "subharmonic summation", "yin": "YIN"}  # settings.pitch.method -> words


def pitch_for_clips(length: int, rate: int, class_names: Sequence[str]) -> dict[str, Any]:
    """`pitch_accuracy` settings for clips of `length` samples: subharmonic summation (`estimate_f0_shs`,
    which measures plucks and FM bells too) where a clip holds the four periods of its lowest
    candidate (50 Hz) that it needs; shorter clips (a tiny run's 256 samples) use YIN as
    `yin_for_clips` sets it."""
    if length >= 4 * math.ceil(rate / _YIN_DEFAULTS["fmin"]):
        return {"method": "shs"}
    return {"method": "yin", **yin_for_clips(length, rate, class_names)}


def _real_sets(run: Any, rate: int) -> tuple[AudioClips, AudioClips, str]:
    """The run's training clips and held-out clips (at its length and rate), and the data's name."""
    splits = real_splits(run.config.data.source, resolution=run.shape[-1], seed=0, sample_rate=rate)
    if len(splits.class_names) < 2:
        raise EvalError(f"audio evaluation fits its feature classifier on labelled clips; {splits.name!r} has "
                        f"{len(splits.class_names)} classes (give a folder with a sub-folder per class, or --features)")
    if splits.holdout_images.shape[0] < 2:
        raise EvalError(f"{splits.name!r} holds too few clips for a held-out split ({splits.holdout_images.shape[0]}); "
                        "give more clips per class")
    train = AudioClips(splits.images, splits.labels, splits.class_names, rate)
    test = AudioClips(splits.holdout_images, splits.holdout_labels, splits.class_names, rate)
    return train, test, splits.name


def _features(features: Any, train: AudioClips, test: AudioClips, name: str, cache_dir: Any,
              use_cache: bool, echo: Callable[[str], None]) -> tuple[FeatureExtractor, float]:
    t0 = time.perf_counter()
    if features is not None:
        ext = features
    else:
        echo(f"audio features: fitting on the {train.data.shape[0]} training clips of {name!r} (or loading them "
             "from the cache) ...")
        ext = fit_audio_features(train.data, train.labels, train.sample_rate, class_names=train.class_names,
                                 holdout=(test.data, test.labels), seed=0, dataset=name, cache_dir=cache_dir,
                                 use_cache=use_cache, feature_dim=FEATURE_DIM)
    if list(ext.class_names) != list(train.class_names):
        raise EvalError(f"the feature classifier's classes ({len(ext.class_names)}: {ext.class_names[:3]}...) are not "
                        f"the data's ({len(train.class_names)}: {train.class_names[:3]}...)")
    return ext, time.perf_counter() - t0


def _check_n(n: int | None, metrics: tuple[str, ...], feature_dim: int, floor_n: int, spec: Any) -> int:
    n = sample_count(n, floor_n, "clips", spec)
    if "fd" in metrics and n < feature_dim + 1:
        raise EvalError(f"n {n} is too small for FD with {feature_dim}-d features; need at least "
                        f"{feature_dim + 1} clips (feature_dim + 1), or leave fd out of --metrics")
    return n


def evaluate_audio_run(run: Any, run_dir: str | Path, out_dir: str | Path, options: RunEvalOptions) -> dict[str, Any]:
    """Sample an audio run (an opened `Run`), score it with `evaluate_audio`, write REPORT_DIR.

    n: clips to generate (default: as many as the floor's half of the test split, so FD and KID
    compare like with like). metrics: groups of `AUDIO_METRICS` (default all). features: a folder
    from `save_audio_features` or an extractor (default: fitted on the run's training clips and
    cached). cache_dir: the feature cache (default $NOISECRAFT_CACHE/audio-features).
    The image-only options (nll_n, nll_levels) do not apply to audio and are not read.
    """
    from ..runs import prepare_values
    from ..runtime import num_threads
    from ..sampling import SpecError

    o = options
    n, metrics, solver, nfe, guidance, seed, weights = o.n, o.metrics, o.solver, o.nfe, o.guidance, o.seed, o.weights
    features, cache_dir, use_cache, echo = o.features, o.cache_dir, o.use_cache, o.echo
    metric_list = parse_audio_metrics(metrics)
    if o.sweep_nfe:
        raise EvalError("sweep_nfe is not available for audio runs yet; evaluate one NFE per call (--nfe)")
    conditional = run.num_classes > 0
    try:
        spec = run.spec(solver=solver, nfe=nfe, guidance=guidance if conditional else 1.0, seed=seed)
    except SpecError as e:
        raise EvalError(str(e)) from None
    out = check_report_out(out_dir)
    modality = run.get_modality()
    train, test, name = _real_sets(run, modality.sample_rate)
    if conditional and list(run.class_names) != list(train.class_names):
        raise EvalError(f"run {str(run_dir)!r} was trained on other classes than {name!r} now has; cannot score it")
    if features is not None and not isinstance(features, FeatureExtractor):
        features = load_audio_features(features)
    floor_n = int(real_halves(test.labels, 0)[1].size)  # the floor's half B, as build_audio_reference cuts it
    n = _check_n(n, metric_list, FEATURE_DIM if features is None else features.feature_dim, floor_n, spec)
    ext, feature_seconds = _features(features, train, test, name, cache_dir, use_cache, echo)

    kept: list[torch.Tensor] = []

    def generate(labels: torch.Tensor) -> torch.Tensor:
        values = prepare_values(run.conditioners, {"class_labels": labels} if conditional else {}, n)
        with num_threads(run.config.train.threads):
            kept.append(run.generate(spec, n, weights=weights, **values).clamp(-1, 1))
        return kept[-1]

    pitch = pitch_for_clips(run.shape[-1], modality.sample_rate, train.class_names) if "pitch" in metric_list else {}
    rep = evaluate_audio(generate, train, test, n=n, conditional=conditional, features=ext, seed=0, echo=echo,
                         kid_subsets=o.kid_subsets, pitch=pitch)
    dropped = _SCORED - {k for m in metric_list for k in AUDIO_METRICS[m]}
    for part in ("generated", "noise_floor"):
        rep[part] = {k: v for k, v in rep[part].items() if k not in dropped}
    # notes about figures nobody asked for (FD's sample size, pitch without note names) would only confuse
    unasked = tuple(prefix for prefix, groups in (("FD needs", {"fd"}), ("timbre and pitch", {"timbre", "pitch"}))
                    if not groups & set(metric_list))
    rep["notes"] = [line for line in rep["notes"] if not line.startswith(unasked)]
    rep["timings"]["features_seconds"] = feature_seconds
    rep.update(run=str(run_dir), weights=weights, dataset=name, conditional=conditional, n=n, seed=seed,
               solver=spec.solver, nfe=spec.nfe, guidance=spec.guidance, sigma_min=spec.sigma_min,
               sigma_max=spec.sigma_max, metrics=list(metric_list),
               environment=environment(run.config.train.threads))
    _write_samples(modality, kept[0], run.class_names if conditional else [], out)
    write_audio_report(rep, out)
    return rep


def _write_samples(modality: Any, samples: torch.Tensor, class_names: list[str], out: Path) -> None:
    """One clip per class (the first K clips ask for classes 0..K-1), as spectrograms and WAVs."""
    k = min(samples.shape[0], len(class_names) or 16)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    modality.write_preview(samples[:k], out / "samples.png", nrow=min(k, 8))
    for i in range(k):
        modality.write(samples[i], out / "samples" / f"{i:06d}.wav")


def _by_timbre_table(report: dict[str, Any]) -> list[str]:
    """Markdown lines: timbre and pitch accuracy per requested timbre, generated / floor ([] without notes)."""
    gen, floor = report["generated"], report["noise_floor"]
    keys = [k for k in ("timbre_accuracy_by_timbre", "pitch_accuracy_by_timbre") if isinstance(gen.get(k), dict)]
    if not keys:
        return []

    def cell(d: dict, key: str, timbre: str) -> str:
        v = (d.get(key) or {}).get(timbre)
        return "—" if v is None else f"{v:.3g}"

    head = " | ".join(k.replace("_by_timbre", "").replace("_", " ") + " (generated / floor)" for k in keys)
    lines = ["By requested timbre:", "", f"| timbre | {head} |", "|---" * (len(keys) + 1) + "|"]
    for t in gen[keys[0]]:
        lines.append(f"| {t} | " + " | ".join(f"{cell(gen, k, t)} / {cell(floor, k, t)}" for k in keys) + " |")
    return lines + [""]


def _fmt_seconds(t: dict, key: str) -> str:
    return f"{t[key]:.1f} s" if key in t else "—"


def write_audio_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write report.json and report.md (samples.png and samples/ are written by `evaluate_audio_run`)."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref, feats, t = report["reference"], report["features"], report["timings"]
    held = feats.get("held_out_accuracy")
    names = report.get("class_names") or []
    lines = [
        f"# Evaluation of `{report['run']}` (audio)",
        "",
        f"- weights: {report['weights']}; {report['n']} clips of {report['shape'][-1]} samples at {report['rate']} Hz, "
        f"seed {report['seed']} (clip i uses seed + i; clip i asks for class i mod {len(names) or 1})",
        f"- sampler: {report['solver']}, NFE {report['nfe']}, guidance {report['guidance']}, "
        f"σ ∈ [{report['sigma_min']}, {report['sigma_max']}]",
        f"- real data: {report['dataset']!r}: {ref['n_train']} training clips; {ref['n_test']} held-out clips cut "
        f"into a reference half A ({ref['n_reference']}) and a floor half B ({ref['n_floor']})",
        f"- features: {feats['name']} ({feats['feature_dim']}-d log-mel classifier fitted on the training clips"
        + (f", held-out accuracy {held:.4f}" if held is not None else "") + f", fingerprint {feats['fingerprint']})",
        "",
        format_audio_report(report),
        *_by_timbre_table(report),
        "The floor is each figure for real held-out clips: FD and KID of half B against half A (the same "
        "reference the generated clips are scored against), the per-clip figures on every held-out clip. "
        "Class and timbre accuracy are read from the feature classifier, pitch from "
        f"{_PITCH_METHODS.get(report['settings'].get('pitch', {}).get('method'), 'YIN')} (within ±"
        f"{report['settings']['tol_cents']:g} cents of the class's note; unvoiced clips count as wrong), near copies "
        "from the waveform distance to the nearest training clip. FD and KID are biased by the sample size: "
        "compare figures at the same n.",
        "",
        "## Samples",
        "",
        "One generated clip per class (spectrograms; 0 Hz at the bottom), also in `samples/` as WAVs"
        + (f" (000000.wav = {names[0]!r}, ...)" if names else "") + ".",
        "",
        "![samples](samples.png)",
        "",
        "## Timings",
        "",
        f"- feature classifier: {_fmt_seconds(t, 'features_seconds')} (from the cache: {feats.get('from_cache')}); "
        f"reference and floors: {_fmt_seconds(t, 'reference_seconds')}",
        f"- sampling: {_fmt_seconds(t, 'sampling_seconds')}; scoring: {_fmt_seconds(t, 'evaluation_seconds')}",
        f"- machine: {report['environment']['cpu']}, {report['environment']['cpus']} CPUs, torch "
        f"{report['environment']['torch']}",
        "",
    ]
    json_path, md_path = out / "report.json", out / "report.md"
    atomic_write_text(json_path, json.dumps(json_values(report), indent=2) + "\n")
    atomic_write_text(md_path, "\n".join(lines))
    return json_path, md_path
