"""Evaluation of generated sound against real clips: every figure next to its real-data floor.

    ext = fit_audio_features(train.data, train.labels, rate, class_names=train.class_names)
    ref = build_audio_reference(test, train, ext)           # the real data's floors, computed once
    report = audio_report(generated, requested_labels, ref) # {"generated": {...}, "noise_floor": {...}}
    report = evaluate_audio(generate, train, test)          # all of it: fit/load features, sample, score

`train` and `test` are dataset-like objects (`AudioSet`): `.data` (N, C, L) in [-1, 1], `.labels`
(N,), `.class_names` (`TIMBRE:NOTE`, e.g. "pluck:A4") and the sample rate as `.sample_rate` (or
`.rate`). The figures, each with its floor (the same figure for real held-out data):

| key | generated | floor |
|---|---|---|
| fd, kid | features of the samples vs test half A | test half B vs test half A |
| accuracy | classifier's class == requested class | classifier on the test clips |
| timbre_accuracy | timbre of the predicted class == requested timbre | on the test clips |
| pitch_accuracy | f0 within ±50 cents of the requested note (`pitch_accuracy`) | on the test clips |
| near_copy_rate | samples that are near copies of a training clip | test clips vs the training clips |

The test split is cut into two disjoint halves, stratified by class (`real_halves`); A is the
reference, B plays "a perfect model's samples". Sample as many clips as B holds (the default) so
that FD and KID, which are biased by the sample size, compare like with like.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from .audio_features import fit_audio_features
from .features import EvalError, FeatureExtractor
from .metrics import class_accuracy, class_coverage, frechet_distance, kid, min_samples_for_stats, near_copies
from ..data.note_names import NoteNameError, class_midis, class_timbres
from .pitch import pitch_accuracy

__all__ = [
    "AUDIO_REPORT_FORMAT",
    "AUDIO_METRIC_DIRECTIONS",
    "AudioSet",
    "AudioClips",
    "sample_rate_of",
    "real_halves",
    "NoteClasses",
    "AudioReference",
    "build_audio_reference",
    "audio_report",
    "evaluate_audio",
    "format_audio_report",
]

AUDIO_REPORT_FORMAT = "noisecraft-audio-report/1"
AUDIO_METRIC_DIRECTIONS = {"fd": "min", "kid": "min", "accuracy": "max", "coverage": "max", "timbre_accuracy": "max",
                           "pitch_accuracy": "max", "near_copy_rate": "min"}


class AudioSet(Protocol):
    """What evaluation reads from an audio dataset (the sample rate as `sample_rate` or `rate`)."""

    data: Tensor  # (N, C, L) in [-1, 1]
    labels: Tensor  # (N,) int
    class_names: list[str]


@dataclass
class AudioClips:
    """A plain `AudioSet`: clips (N, C, L), labels (N,), class names and the sample rate in Hz."""

    data: Tensor
    labels: Tensor
    class_names: list[str]
    sample_rate: int


def sample_rate_of(ds: Any) -> int:
    """The sample rate (Hz) of a dataset-like object: `.sample_rate`, else `.rate`."""
    rate = getattr(ds, "sample_rate", None)
    rate = getattr(ds, "rate", None) if rate is None else rate
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise EvalError(f"{type(ds).__name__} has no valid sample rate (.sample_rate or .rate, a positive integer in "
                        f"Hz), got {rate!r}")
    return int(rate)


def real_halves(labels: Tensor | np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets (A, B) that split every class in half (A gets the odd one), sorted."""
    lab = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    a, b = [], []
    for c in np.unique(lab):
        idx = rng.permutation(np.flatnonzero(lab == c))
        cut = (idx.size + 1) // 2
        a.append(idx[:cut]), b.append(idx[cut:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


class NoteClasses(NamedTuple):
    """What `TIMBRE:NOTE` class names say: the timbres, each class's timbre index and MIDI note."""

    timbres: list[str]
    timbre_of: np.ndarray  # (K,) int64
    midi_of: np.ndarray  # (K,) int64


def _note_classes(class_names: Sequence[str]) -> tuple[NoteClasses | None, str | None]:
    """The classes' timbres and notes, or None and why the names are not TIMBRE:NOTE."""
    try:
        timbres, timbre_of = class_timbres(class_names)
        return NoteClasses(timbres, timbre_of, class_midis(class_names)), None
    except NoteNameError as e:
        return None, f"timbre and pitch accuracy need TIMBRE:NOTE class names ({e})"


def _fd_kid(ref: np.ndarray, other: np.ndarray, *, kid_subsets: int, kid_subset_size: int, seed: int) -> dict:
    out: dict[str, Any] = {}
    need = min_samples_for_stats(ref.shape[1])
    out["fd"] = frechet_distance(ref, other) if min(ref.shape[0], other.shape[0]) >= need else None
    if min(ref.shape[0], other.shape[0]) >= 2:
        r = kid(ref, other, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        out.update(kid=r.mean, kid_std_err=r.std_err, kid_subset_size=r.subset_size)
    return out


def _by_timbre(right: np.ndarray, target: np.ndarray, notes: NoteClasses) -> dict[str, float | None]:
    """The fraction of `right` (N,) among the clips requested in each timbre (None: none requested)."""
    timbre = notes.timbre_of[target]
    return {name: (float(right[timbre == i].mean()) if (timbre == i).any() else None)
            for i, name in enumerate(notes.timbres)}


def _class_figures(pred: np.ndarray, target: np.ndarray | None, num_classes: int, notes: NoteClasses | None) -> dict:
    out: dict[str, Any] = {"coverage": class_coverage(pred, num_classes)}
    if target is None:
        return out
    out["accuracy"] = class_accuracy(pred, target)
    if notes is not None:
        right = notes.timbre_of[pred] == notes.timbre_of[target]
        out["timbre_accuracy"] = float(right.mean())
        out["timbre_accuracy_by_timbre"] = _by_timbre(right, target, notes)
    return out


def _pitch_figures(waves: Tensor, rate: int, target: np.ndarray | None, notes: NoteClasses | None, tol_cents: float,
                   pitch: dict) -> dict:
    if target is None or notes is None:
        return {}
    acc = pitch_accuracy(waves, rate, notes.midi_of[target], tol_cents=tol_cents, **pitch)
    cents = acc.median_abs_cents
    return {"pitch_accuracy": acc.accuracy, "pitch_voiced_rate": acc.voiced_rate,
            "pitch_median_abs_cents": None if np.isnan(cents) else cents,  # None: nothing voiced
            "pitch_accuracy_by_timbre": _by_timbre(acc.right, target, notes)}


def _check_data(test: AudioSet, train: AudioSet, features: FeatureExtractor) -> int:
    rate = sample_rate_of(train)
    if sample_rate_of(test) != rate:
        raise EvalError(f"train and test sample rates differ: {rate} Hz vs {sample_rate_of(test)} Hz")
    if features.num_classes < 2:
        raise EvalError(f"audio evaluation needs a classifier extractor (fit_audio_features); {features.name!r} has no "
                        "classifier head")
    if features.info.get("rate") not in (None, rate):
        raise EvalError(f"the feature extractor was fitted at {features.info['rate']} Hz but the data are at {rate} Hz")
    if list(test.class_names) != list(train.class_names):
        raise EvalError("train and test have different class names")
    shape = tuple(train.data.shape[1:])
    if tuple(test.data.shape[1:]) != shape or len(shape) != 2:
        raise EvalError(f"train and test must hold clips (N, C, L) of one shape, got {tuple(train.data.shape)} and "
                        f"{tuple(test.data.shape)}")
    return rate


@dataclass
class AudioReference:
    """What generated clips are scored against, computed once: the real test features (half A), the
    training clips (for near copies), the settings, and every figure's floor (`noise_floor`)."""

    features: FeatureExtractor
    rate: int
    shape: tuple[int, ...]
    class_names: list[str]
    note_classes: NoteClasses | None  # None: the class names are not TIMBRE:NOTE
    notes: list[str]  # sentences for the report
    reference_features: np.ndarray  # (N_A, F) features of test half A
    train_vectors: np.ndarray  # (N_train, C·L) float64: the training clips, for near copies
    noise_floor: dict[str, Any]
    split: dict[str, int]
    settings: dict[str, Any]

    def scores(self, waves: Tensor, target: np.ndarray | None, feats: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
        """Every figure for clips (N, C, L) from their features, predictions and requested classes."""
        s = self.settings
        out: dict[str, Any] = {"n": int(waves.shape[0])}
        out.update(_fd_kid(self.reference_features, feats, kid_subsets=s["kid_subsets"],
                           kid_subset_size=s["kid_subset_size"], seed=s["seed"]))
        out.update(self.clip_scores(waves, target, pred))
        return out

    def clip_scores(self, waves: Tensor, target: np.ndarray | None, pred: np.ndarray) -> dict[str, Any]:
        """The per-clip figures: class, timbre and pitch accuracy, near copies."""
        s = self.settings
        out = _class_figures(pred, target, len(self.class_names), self.note_classes)
        out.update(_pitch_figures(waves, self.rate, target, self.note_classes, s["tol_cents"], s["pitch"]))
        copies = near_copies(waves.flatten(1).double(), self.train_vectors, ratio=s["copy_ratio"])
        out["near_copy_rate"] = copies.rate
        return out


def build_audio_reference(
    test: AudioSet,
    train: AudioSet,
    features: FeatureExtractor,
    *,
    seed: int = 0,
    tol_cents: float = 50.0,
    copy_ratio: float = 1 / 3,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pitch: dict | None = None,
) -> AudioReference:
    """The reference for `audio_report`, with the floor of every figure (the real test clips scored
    like generated ones; FD and KID as half B against half A).

    features: an audio `FeatureExtractor` (e.g. `fit_audio_features` on `train`). seed: the A/B split
    and KID's subsets. tol_cents: pitch tolerance. copy_ratio: the near-copy ratio test
    (`metrics.near_copies`) on waveforms. pitch: keyword arguments for `pitch_accuracy` (its
    `method` and the estimator's settings; default: subharmonic summation with its defaults).
    """
    rate = _check_data(test, train, features)
    names = list(train.class_names)
    labels = np.asarray(torch.as_tensor(test.labels).cpu(), dtype=np.int64).reshape(-1)
    a, b = real_halves(labels, seed)
    feats, pred = features.features_and_predictions(test.data)
    settings = {"seed": seed, "tol_cents": tol_cents, "copy_ratio": copy_ratio, "copy_space": "waveform",
                "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size, "pitch": {"method": "shs", **(pitch or {})}}
    note_classes, why_not = _note_classes(names)
    split = {"n_reference": int(a.size), "n_floor": int(b.size), "n_test": int(labels.size),
             "n_train": int(train.data.shape[0])}
    ref = AudioReference(features, rate, tuple(train.data.shape[1:]), names, note_classes, [why_not] if why_not else [],
                         feats[a], train.data.detach().flatten(1).double().cpu().numpy(), {}, split, settings)
    # FD and KID: half B against half A; the per-clip figures: every test clip.
    floor = {"n": int(b.size), **_fd_kid(feats[a], feats[b], kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                         seed=seed)}
    floor.update(ref.clip_scores(test.data, labels, pred))
    ref.noise_floor = floor
    return ref


def audio_report(generated: Tensor, requested: Tensor | Sequence[int] | None, reference: AudioReference) -> dict[str, Any]:
    """Scores of generated clips (N, C, L) next to their floors (see the module notes).

    requested: the class index each clip was generated for (None for an unconditional model: then
    only FD, KID, coverage and near copies). Returns a JSON-ready dict: "generated" and
    "noise_floor" with the same keys, "reference", "settings", "features", "notes", "directions",
    "seconds".
    """
    t0 = time.perf_counter()
    ref = reference
    if not isinstance(generated, Tensor) or tuple(generated.shape[1:]) != ref.shape:
        raise EvalError(f"generated must be clips (N, {', '.join(map(str, ref.shape))}) like the training data, got "
                        f"{tuple(getattr(generated, 'shape', ()))}")
    k = len(ref.class_names)
    target = None if requested is None else np.asarray(torch.as_tensor(requested).cpu(), dtype=np.int64).reshape(-1)
    if target is not None and target.shape != (generated.shape[0],):
        raise EvalError(f"got {target.size} requested labels for {generated.shape[0]} generated clips")
    if target is not None and not (0 <= target.min() and target.max() < k):
        raise EvalError(f"requested labels must lie in 0..{k - 1}, got {target.min()}..{target.max()}")
    feats, pred = ref.features.features_and_predictions(generated)
    gen = ref.scores(generated, target, feats, pred)
    notes = list(ref.notes)
    if gen.get("fd") is None or ref.noise_floor.get("fd") is None:
        notes.append(f"FD needs at least {min_samples_for_stats(feats.shape[1])} clips per set (feature_dim + 1); "
                     "it is left out where a set is smaller")
    if target is None:
        notes.append("no requested labels (unconditional): class, timbre and pitch accuracy are left out")
    return {
        "format": AUDIO_REPORT_FORMAT,
        "rate": ref.rate,
        "shape": list(ref.shape),
        "class_names": ref.class_names,
        "timbres": None if ref.note_classes is None else ref.note_classes.timbres,
        "generated": gen,
        "noise_floor": dict(ref.noise_floor),
        "reference": dict(ref.split),
        "settings": dict(ref.settings),
        "features": ref.features.describe(),
        "notes": notes,
        "directions": dict(AUDIO_METRIC_DIRECTIONS),
        "seconds": time.perf_counter() - t0,
    }


def evaluate_audio(
    generate: Callable[[Tensor], Tensor],
    train: AudioSet,
    test: AudioSet,
    *,
    n: int | None = None,
    conditional: bool = True,
    features: FeatureExtractor | None = None,
    seed: int = 0,
    fit: dict | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    echo: Callable[[str], None] | None = None,
    **reference_kw,
) -> dict[str, Any]:
    """Sample n clips with `generate(labels) -> (n, C, L)` (classes in turn: clip i asks for class
    i mod K) and score them with `audio_report` against `build_audio_reference(test, train, ...)`.

    n: default the size of the floor's half of `test`, so generated and floor figures share a sample
    size. conditional=False: the labels are still passed but not scored. features: default the audio
    feature classifier fitted on `train` (held-out accuracy on `test`; cached on disk; `fit` holds
    extra `fit_audio_features` arguments). reference_kw go to `build_audio_reference`. The report
    gains "timings" (features, reference, sampling, evaluation, in seconds).
    """
    rate = sample_rate_of(train)
    timings: dict[str, float] = {}
    if features is None:
        if echo:
            echo("audio features: fitting (or loading from the cache) ...")
        t0 = time.perf_counter()
        features = fit_audio_features(train.data, train.labels, rate, class_names=list(train.class_names),
                                      holdout=(test.data, test.labels), seed=seed, cache_dir=cache_dir,
                                      use_cache=use_cache, **(fit or {}))
        timings["features_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = build_audio_reference(test, train, features, seed=seed, **reference_kw)
    timings["reference_seconds"] = time.perf_counter() - t0
    n = ref.split["n_floor"] if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise EvalError(f"n must be an integer >= 2, got {n!r}")
    labels = torch.arange(n) % len(ref.class_names)
    if echo:
        echo(f"sampling {n} clips ...")
    t0 = time.perf_counter()
    generated = generate(labels)
    timings["sampling_seconds"] = time.perf_counter() - t0
    if not isinstance(generated, Tensor) or generated.shape[0] != n:
        raise EvalError(f"generate(labels) must return a tensor of {n} clips, got {tuple(getattr(generated, 'shape', ()))}")
    report = audio_report(generated.detach().cpu().float(), labels if conditional else None, ref)
    timings["evaluation_seconds"] = report.pop("seconds")
    report["timings"] = timings
    return report


_LABELS = {"fd": "FD", "kid": "KID", "accuracy": "class accuracy", "coverage": "class coverage",
           "timbre_accuracy": "timbre accuracy", "pitch_accuracy": "pitch accuracy (±{tol} cents)",
           "pitch_voiced_rate": "voiced clips", "pitch_median_abs_cents": "median |pitch error| (cents)",
           "near_copy_rate": "near copies of training clips"}


def format_audio_report(report: dict[str, Any]) -> str:
    """The report as a Markdown table: figure, generated, floor, which way is better."""
    gen, floor = report["generated"], report["noise_floor"]
    tol = report["settings"]["tol_cents"]
    lines = [f"| metric | generated (n={gen['n']}) | floor: real held-out (n={floor['n']}) | better |", "|---|---|---|---|"]
    for key, label in _LABELS.items():
        if key not in gen and key not in floor:
            continue
        cells = []
        for d in (gen, floor):
            v = d.get(key)
            text = "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4g}"
            if key == "kid" and d.get("kid_std_err") is not None:
                text += f" ± {d['kid_std_err']:.2g}"
            cells.append(text)
        better = {"min": "lower", "max": "higher"}.get(AUDIO_METRIC_DIRECTIONS.get(key, ""), "")
        lines.append(f"| {label.format(tol=tol)} | {cells[0]} | {cells[1]} | {better} |")
    return "\n".join(lines + [f"\n{n}" for n in report.get("notes", [])]) + "\n"
