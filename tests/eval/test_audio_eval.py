"""Audio evaluation end to end on a synthetic note set: each figure against its real-data floor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noisecraft.eval import EvalError
from noisecraft.eval.audio import (
    AudioClips,
    audio_report,
    build_audio_reference,
    evaluate_audio,
    format_audio_report,
    real_halves,
    sample_rate_of,
)
from noisecraft.eval.audio_features import fit_audio_features

from audio_synth import toy_notes

RATE = 8000
FIT = dict(steps=200, width=32, feature_dim=32)


@pytest.fixture(scope="module")
def sets():
    return AudioClips(*toy_notes(640, RATE, seed=0), RATE), AudioClips(*toy_notes(320, RATE, seed=1), RATE)


@pytest.fixture(scope="module")
def reference(sets):
    train, test = sets
    ext = fit_audio_features(train.data, train.labels, RATE, class_names=train.class_names, use_cache=False, **FIT)
    return build_audio_reference(test, train, ext)


def _report(reference, kind: str, n: int = 160):
    labels = torch.arange(n) % 16  # classes in turn, as evaluate_audio asks for them
    if kind == "fresh":  # new real clips: a perfect model
        waves = toy_notes(n, RATE, seed=2, labels=labels)[0]
    elif kind == "one-timbre":  # right notes, every one played as a square wave
        waves = toy_notes(n, RATE, seed=3, labels=labels, timbre="square")[0]
    else:  # white noise
        waves = torch.randn(n, 1, 4096, generator=torch.Generator().manual_seed(0)) * 0.3
    return audio_report(waves, labels, reference)


@pytest.fixture(scope="module")
def reports(reference):
    return {kind: _report(reference, kind) for kind in ("fresh", "one-timbre", "noise")}


def test_real_halves_split_every_class():
    labels = torch.tensor([0] * 7 + [1] * 4 + [2])
    a, b = real_halves(labels, seed=3)
    assert not set(a) & set(b) and sorted([*a, *b]) == list(range(12))
    assert np.bincount(labels[a], minlength=3).tolist() == [4, 2, 1]
    assert np.bincount(labels[b], minlength=3).tolist() == [3, 2, 0]
    assert not np.array_equal(real_halves(labels, seed=4)[0], a)


def test_fd_and_kid_sit_at_the_floor_for_real_clips_only(reference, reports):
    floor = reference.noise_floor
    fresh, one, noise = (reports[k]["generated"] for k in ("fresh", "one-timbre", "noise"))
    assert floor["n"] == 160 and fresh["n"] == 160
    assert fresh["fd"] < 3 * floor["fd"]  # measured: 0.005 vs floor 0.009
    assert one["fd"] > 100 * floor["fd"] and noise["fd"] > 100 * floor["fd"]  # measured: 9.6 and 32
    # Both real sets are exactly class-balanced, which pulls the unbiased KID below 0 by the same amount.
    assert abs(fresh["kid"] - floor["kid"]) < 0.02
    assert one["kid"] > floor["kid"] + 0.5 and noise["kid"] > floor["kid"] + 0.5


def test_class_timbre_and_pitch_accuracy(reference, reports):
    floor = reference.noise_floor
    fresh, one, noise = (reports[k]["generated"] for k in ("fresh", "one-timbre", "noise"))
    assert floor["accuracy"] >= 0.9 and fresh["accuracy"] >= 0.9 and fresh["timbre_accuracy"] >= 0.9
    # Every clip a square wave: a quarter of the requests asked for that timbre; the notes are right.
    assert one["timbre_accuracy"] == pytest.approx(0.25, abs=0.05) and one["accuracy"] <= 0.3
    assert one["pitch_accuracy"] >= 0.95 and one["pitch_median_abs_cents"] < 10.0
    # The "noise" timbre has no period: YIN calls it unvoiced, so real clips score 3/4.
    assert floor["pitch_accuracy"] == pytest.approx(0.75, abs=0.02)
    assert fresh["pitch_accuracy"] == pytest.approx(floor["pitch_accuracy"], abs=0.05)
    assert noise["pitch_accuracy"] == 0.0 and noise["pitch_voiced_rate"] == 0.0


def test_near_copies(reference, reports, sets):
    train, _ = sets
    floor = reference.noise_floor["near_copy_rate"]
    fresh = reports["fresh"]["generated"]["near_copy_rate"]
    # 3 random parameters per tonal clip: a fresh draw is sometimes much nearer one training clip than
    # any other, which is why the rate comes with the floor of real held-out clips.
    assert floor <= 0.1 and fresh <= 0.1 and abs(fresh - floor) <= 0.05
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:5] for c in range(16)])
    copies = audio_report(train.data[idx], train.labels[idx], reference)["generated"]
    assert copies["near_copy_rate"] == 1.0 and copies["accuracy"] == 1.0


def test_report_is_json_and_reads_as_a_table(reports):
    for r in reports.values():  # strict JSON: no NaN (white noise has no pitch error: None)
        json.dumps(r, allow_nan=False)
    assert reports["noise"]["generated"]["pitch_median_abs_cents"] is None
    report = reports["fresh"]
    assert report["timbres"] == ["sine", "square", "sawtooth", "noise"] and report["rate"] == RATE
    assert report["reference"] == {"n_reference": 160, "n_floor": 160, "n_test": 320, "n_train": 640}
    table = format_audio_report(report)
    for row in ("| FD |", "| KID |", "| class accuracy |", "| timbre accuracy |", "| pitch accuracy (±50.0 cents) |",
                "| near copies of training clips |"):
        assert row in table


def test_unconditional_and_plain_class_names(sets):
    train, test = sets
    ext = fit_audio_features(train.data, train.labels, RATE, class_names=train.class_names, use_cache=False,
                             **dict(FIT, steps=20))
    plain = [f"class{i}" for i in range(16)]
    tr, te = (AudioClips(s.data, s.labels, plain, RATE) for s in (train, test))
    ref = build_audio_reference(te, tr, ext)
    gen = audio_report(test.data[:64], test.labels[:64], ref)
    assert "accuracy" in gen["generated"] and "pitch_accuracy" not in gen["generated"]
    assert "timbre_accuracy" not in gen["noise_floor"] and "TIMBRE:NOTE" in gen["notes"][0]
    uncond = audio_report(test.data[:64], None, ref)["generated"]
    assert "accuracy" not in uncond and "coverage" in uncond and "near_copy_rate" in uncond


def test_evaluate_audio_samples_classes_in_turn(sets):
    train, test = sets
    asked = []

    def generate(labels):
        asked.append(labels)
        return toy_notes(len(labels), RATE, seed=7, labels=labels)[0]

    report = evaluate_audio(generate, train, test, fit=dict(FIT, steps=100))
    assert asked[0].tolist() == [i % 16 for i in range(160)]  # n defaults to the floor's sample size
    assert report["generated"]["accuracy"] >= 0.9 and report["features"]["held_out_accuracy"] >= 0.9
    assert set(report["timings"]) == {"features_seconds", "reference_seconds", "sampling_seconds", "evaluation_seconds"}


def test_errors(reference, sets):
    train, test = sets
    with pytest.raises(EvalError, match=r"generated must be clips \(N, 1, 4096\)"):
        audio_report(torch.zeros(4, 1, 100), None, reference)
    with pytest.raises(EvalError, match="3 requested labels for 4"):
        audio_report(torch.zeros(4, 1, 4096), [0, 1, 2], reference)
    with pytest.raises(EvalError, match="0..15"):
        audio_report(torch.zeros(2, 1, 4096), [0, 16], reference)
    with pytest.raises(EvalError, match="fitted at 8000 Hz but the data are at 16000 Hz"):
        build_audio_reference(AudioClips(test.data, test.labels, test.class_names, 16000),
                              AudioClips(train.data, train.labels, train.class_names, 16000), reference.features)
    with pytest.raises(EvalError, match="sample rates differ"):
        build_audio_reference(AudioClips(test.data, test.labels, test.class_names, 16000), train, reference.features)
    with pytest.raises(EvalError, match="no valid sample rate"):
        sample_rate_of(object())

    class WithRate:
        rate = 8000

    assert sample_rate_of(WithRate()) == 8000
