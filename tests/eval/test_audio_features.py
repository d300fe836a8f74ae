"""The audio feature classifier: mel filterbank, log-mel front end, fitting, caching, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import noisecraft.eval.audio_features as af
from noisecraft.eval import EvalError

from audio_synth import toy_notes

RATE = 8000
FIT = dict(steps=200, width=32, feature_dim=32, seed=0)


@pytest.fixture(scope="module")
def toy():
    """(train, test) toy note sets: 16 TIMBRE:NOTE classes, 640 and 320 clips of 4096 samples at 8 kHz."""
    return toy_notes(640, RATE, seed=0), toy_notes(320, RATE, seed=1)


def test_mel_scale_and_filterbank():
    assert af.hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.05)  # the HTK scale's anchor
    np.testing.assert_allclose(af.mel_to_hz(af.hz_to_mel([0.0, 440.0, 4000.0])), [0.0, 440.0, 4000.0], atol=1e-9)
    fb = af.mel_filterbank(8000, 1024, 64, fmin=30.0)
    assert fb.shape == (64, 513) and fb.min() >= 0 and fb.max() <= 1
    # Neighbouring triangles share corners, so between the first and the last centre they sum to 1.
    centres = af.mel_to_hz(np.linspace(af.hz_to_mel(30.0), af.hz_to_mel(4000.0), 66))[1:-1]
    bins = np.arange(513) * 8000 / 1024
    inside = (bins >= centres[0]) & (bins <= centres[-1])
    np.testing.assert_allclose(fb.sum(0)[inside], 1.0, atol=1e-9)
    assert fb.sum(0)[bins > 4000.0].sum() == 0.0
    with pytest.raises(ValueError, match="holds no FFT bin"):
        af.mel_filterbank(8000, 64, 64)
    with pytest.raises(ValueError, match="fmin"):
        af.mel_filterbank(8000, 1024, 64, fmin=5000.0)


def test_log_mel_levels():
    front = af.LogMel(af.LogMelConfig.for_rate(RATE))
    assert front.config.n_fft == 1024 and af.LogMelConfig.for_rate(16000).n_fft == 2048
    t = torch.arange(4096) / RATE
    sine = torch.sin(2 * torch.pi * 1000.0 * t)[None, None]  # (1, 1, L)
    loud, quiet = front(0.8 * sine), front(0.4 * sine)
    assert loud.shape == (1, 64, 1 + 4096 // 256)
    # Half the amplitude is 6.02 dB less in every band that holds the tone; values are (dB + 50)/50.
    band = loud[0, :, 8].argmax()
    assert float(loud[0, band, 8] - quiet[0, band, 8]) == pytest.approx(20 * np.log10(2) / 50, abs=1e-4)
    # The triangles sum to 1, so the bands share out the tone's STFT power exactly: A²/4 on its bin
    # (1000 Hz is bin 128 of 1024 at 8 kHz) and A²/16 on each neighbour (periodic Hann), 1.5·A²/4 in all.
    power = 10 ** ((loud[0, :, 8].double() * 50 - 50) / 10)
    assert float(power.sum()) == pytest.approx(1.5 * 0.8**2 / 4, rel=1e-4)
    assert torch.all(front(torch.zeros(2, 1, 4096)) == -1.0)  # silence sits on the -100 dB floor
    stereo = torch.cat([0.8 * sine, 0.8 * sine], dim=1)
    torch.testing.assert_close(front(stereo), loud)  # channels are mixed to mono


def test_fit_classifies_held_out_clips(toy):
    (xtr, ytr, names), (xte, yte, _) = toy
    ext = af.fit_audio_features(xtr, ytr, RATE, class_names=names, holdout=(xte, yte), use_cache=False, **FIT)
    assert ext.info["held_out_accuracy"] >= 0.9  # measured: 1.0
    assert ext.num_classes == 16 and ext.feature_dim == 32 and ext.info["rate"] == RATE
    f, pred = ext.features_and_predictions(xte[:10])
    assert f.shape == (10, 32) and f.dtype == np.float64 and pred.shape == (10,)
    # KID's kernel stays O(1): training features have mean |f|²/F = 1.
    assert (ext.features(xtr) ** 2).mean() == pytest.approx(1.0, rel=1e-4)


def test_fit_is_deterministic_and_cached(toy, isolated_cache):
    (xtr, ytr, names), (xte, yte, _) = toy
    small = dict(FIT, steps=20)
    a = af.fit_audio_features(xtr, ytr, RATE, class_names=names, holdout=(xte, yte), **small)
    b = af.fit_audio_features(xtr, ytr, RATE, class_names=names, holdout=(xte, yte), **small)
    assert not a.info["from_cache"] and b.info["from_cache"]
    assert a.fingerprint == b.fingerprint and a.info["held_out_accuracy"] == b.info["held_out_accuracy"]
    np.testing.assert_array_equal(a.features(xte), b.features(xte))
    folder = isolated_cache / "audio-features" / a.info["key"][:32]
    assert sorted(p.name for p in folder.iterdir()) == ["extractor.json", "weights.safetensors"]
    c = af.fit_audio_features(xtr, ytr, RATE, class_names=names, holdout=(xte, yte), **dict(small, seed=1))
    d = af.fit_audio_features(xtr[:-1], ytr[:-1], RATE, class_names=names, holdout=(xte, yte), **small)
    assert not c.info["from_cache"] and not d.info["from_cache"]
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    # A damaged cache entry is refitted with a warning, never trusted.
    (folder / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.warns(RuntimeWarning, match="cannot be loaded"):
        e = af.fit_audio_features(xtr, ytr, RATE, class_names=names, holdout=(xte, yte), **small)
    assert not e.info["from_cache"] and e.fingerprint == a.fingerprint


def test_save_load_round_trip_and_tampering(toy, tmp_path):
    (xtr, ytr, names), (xte, _, _) = toy
    ext = af.fit_audio_features(xtr, ytr, RATE, class_names=names, use_cache=False, **dict(FIT, steps=10))
    folder = af.save_audio_features(ext, tmp_path / "feat")
    meta = json.loads((folder / "extractor.json").read_text())
    assert meta["format"] == af.AUDIO_FEATURES_FORMAT and meta["class_names"] == names
    back = af.load_audio_features(folder)
    assert back.fingerprint == ext.fingerprint
    np.testing.assert_array_equal(back.features(xte[:8]), ext.features(xte[:8]))
    meta["class_names"] = names[::-1]
    meta["dataset"] = "other"  # changes the name, hence the fingerprint
    (folder / "extractor.json").write_text(json.dumps(meta))
    with pytest.raises(EvalError, match="fingerprint"):
        af.load_audio_features(folder)
    with pytest.raises(EvalError, match="cannot be loaded"):
        af.load_audio_features(tmp_path / "missing")


def test_fit_errors(toy):
    (xtr, ytr, names), _ = toy
    with pytest.raises(ValueError, match=r"\(N, C, L\)"):
        af.fit_audio_features(xtr[:, 0], ytr, RATE)
    with pytest.raises(EvalError, match="class names"):
        af.fit_audio_features(xtr, ytr, RATE, class_names=names[:3])
    with pytest.raises(ValueError, match="rate"):
        af.fit_audio_features(xtr, ytr, 100)
