"""The built-in `notes` dataset: pinned, deterministic splits; balanced classes; every note sounds at
its pitch (autocorrelation f0 within 50 cents for the harmonic timbres, the bell's carrier after its
FM index has decayed); attributes per class name; exported as 8 kHz WAVs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from noisecraft.data import BUILTIN_DATASETS, NotesDataset, load_dataset
from noisecraft.data.export import export_dataset
from noisecraft.data.notes import (NOTE_MIDI, NOTE_NAMES, NOTES_CLASSES, NOTES_SPLIT_SIZES, TIMBRES, generate_notes,
                                   midi_to_hz, note_attributes)


def f0_autocorr(x: np.ndarray, rate: int, fmin: float = 150.0, fmax: float = 1200.0) -> float:
    """f0 from the first autocorrelation peak within 90% of the largest in the lag range (so a
    period is not mistaken for two), refined by parabolic interpolation."""
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    lo, hi = int(rate / fmax), int(rate / fmin) + 1
    seg = ac[lo:hi]
    lag = lo + next(i for i in range(1, len(seg) - 1)
                    if seg[i] >= seg[i - 1] and seg[i] >= seg[i + 1] and seg[i] >= 0.9 * seg.max())
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    return rate / (lag + 0.5 * (a - c) / (a - 2 * b + c))


def cents(f: float, ref: float) -> float:
    return 1200.0 * np.log2(f / ref)


@pytest.fixture(scope="module")
def test_split() -> NotesDataset:
    return load_dataset("notes", split="test")


def test_classes_attributes_and_registry():
    assert BUILTIN_DATASETS["notes"] is not None and len(NOTES_CLASSES) == 32
    assert NOTES_CLASSES[0] == "sine:C4" and NOTES_CLASSES[11] == "pluck:A4" and NOTES_CLASSES[-1] == "brass:A5"
    assert note_attributes("pluck:A4") == ("pluck", 69) and note_attributes("bell:D#5") == ("bell", 75)
    assert [note_attributes(c) for c in NOTES_CLASSES] == [(t, m) for t in TIMBRES for m in NOTE_MIDI]
    assert midi_to_hz(69) == 440.0 and abs(midi_to_hz(60) - 261.6256) < 1e-3
    np.testing.assert_allclose(midi_to_hz(np.array([57, 81])), [220.0, 880.0])
    assert np.all(np.diff(NOTE_MIDI) == 3) and NOTE_NAMES[3] == "A4"
    for bad in ["pluck:A6", "guitar:A4", "pluck", "", 3]:
        with pytest.raises(ValueError, match="is not a notes class; valid: TIMBRE:NOTE"):
            note_attributes(bad)


def test_splits_are_pinned_balanced_and_deterministic(test_split):
    tr = load_dataset("notes")
    assert isinstance(tr, NotesDataset) and tr.modality == "audio" and tr.modality_options == {"sample_rate": 8000}
    assert tr.sample_rate == 8000 and tr.get_modality().sample_rate == 8000
    assert (len(tr), len(test_split)) == (NOTES_SPLIT_SIZES["train"], NOTES_SPLIT_SIZES["test"]) == (2048, 512)
    assert tr.sample_shape == (1, 4096) and tr.class_names == list(NOTES_CLASSES)
    assert torch.bincount(tr.labels, minlength=32).tolist() == [64] * 32
    assert torch.bincount(test_split.labels, minlength=32).tolist() == [16] * 32
    assert tr.data.dtype == torch.float32 and tr.data.abs().max() <= 1 and torch.isfinite(tr.data).all()
    again = load_dataset("notes")
    assert torch.equal(again.data, tr.data) and torch.equal(again.labels, tr.labels)
    assert not torch.equal(tr.data[:512], test_split.data)
    # the attributes match the labels
    for i in range(0, 2048, 97):
        timbre, midi = note_attributes(tr.class_names[int(tr.labels[i])])
        assert TIMBRES[int(tr.timbre[i])] == timbre and int(tr.midi[i]) == midi
        assert abs(cents(float(tr.f0[i]), midi_to_hz(midi))) <= 10.0
    a, b = generate_notes(64, 5, 1024), generate_notes(64, 5, 1024)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(generate_notes(64, 6, 1024)["x"], a["x"])


def test_every_note_peaks_at_its_velocity_and_has_a_little_noise(test_split):
    peak = test_split.data.abs().amax(-1)[:, 0]
    assert peak.min() > 0.48 and peak.max() < 0.92
    tail = test_split.data[:, 0, -200:]  # released notes: mostly the noise floor
    assert 0.002 < float(tail.std(-1).median()) < 0.02


@pytest.mark.parametrize("timbre", ["sine", "pluck", "brass"])
def test_harmonic_timbres_sound_at_their_pitch(test_split, timbre):
    ti = TIMBRES.index(timbre)
    sel = torch.nonzero(test_split.timbre == ti)[:, 0].tolist()
    assert len(sel) == 128
    errors = [cents(f0_autocorr(test_split.data[i, 0, :2048].double().numpy(), 8000), midi_to_hz(int(test_split.midi[i])))
              for i in sel]
    assert max(abs(e) for e in errors) < 50  # within a quarter tone of the note asked for
    played = [cents(float(test_split.f0[i]), midi_to_hz(int(test_split.midi[i]))) for i in sel]
    assert np.median(np.abs(np.array(errors) - played)) < 5  # and close to the detuned frequency itself


def test_bell_carrier_is_the_note_and_its_spectrum_is_inharmonic(test_split):
    sel = torch.nonzero(test_split.timbre == TIMBRES.index("bell"))[:, 0].tolist()
    for i in sel[:40]:
        x = test_split.data[i, 0, 1200:2800].double().numpy()  # 0.15..0.35 s: the FM index has decayed
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
        f_peak = np.argmax(spec) * 8000 / (8 * len(x))
        assert abs(cents(f_peak, float(test_split.f0[i]))) < 50
    # early on, a strong partial sits 1.4 x f0 away from the carrier: not on the harmonic series
    i = sel[0]
    x = test_split.data[i, 0, :1024].double().numpy()
    spec = np.abs(np.fft.rfft(x * np.hanning(1024), 8192))
    f0 = float(test_split.f0[i])
    side = spec[int(round(0.4 * f0 * 8192 / 8000))]  # |f0 - 1.4 f0|: the lower sideband, folded
    assert side > 0.05 * spec.max()


def test_options_and_errors():
    ds = load_dataset("notes", split="test", resolution=1024, sample_rate=16000)
    assert ds.sample_shape == (1, 1024) and ds.sample_rate == 16000 and len(ds) == 512
    i = int(torch.nonzero(ds.timbre == 0)[0, 0])
    assert abs(cents(f0_autocorr(ds.data[i, 0].double().numpy(), 16000), midi_to_hz(int(ds.midi[i])))) < 50
    al = load_dataset("notes", split="all", resolution=256)
    assert len(al) == 2560 and torch.equal(al.data[2048:], load_dataset("notes", split="test", resolution=256).data)
    unl = load_dataset("notes", labels=False, resolution=256)
    assert unl.num_classes == 0 and not unl.labels.any() and unl.midi.shape == (2048,)
    for kwargs, fragment in [({"channels": 3}, "channels must be 1 or None for 'notes'"),
                             ({"hflip": True}, "hflip=True is not valid for 'notes'"),
                             ({"split": "heldout"}, "split must be one of train, test, all"),
                             ({"sample_rate": 2000}, "sample_rate 2000 is too low"),
                             ({"sample_rate": 8000.0}, "sample_rate must be an integer number of Hz")]:
        with pytest.raises(ValueError, match=fragment):
            load_dataset("notes", **kwargs)


def test_export_writes_wavs_at_the_rate(tmp_path, test_split):
    out = export_dataset("notes", split="test", n=5, seed=2, out=tmp_path / "real")
    files = sorted(p.name for p in out.iterdir())
    assert files == ["000000.wav", "000001.wav", "000002.wav", "000003.wav", "000004.wav", "labels.csv"]
    info = sf.info(str(out / "000000.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 4096, "PCM_16")
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert all(r["label"] in NOTES_CLASSES for r in rows)
    from noisecraft.data.export import subset_indices

    idx = subset_indices(512, 5, 2)
    x = test_split.get_modality().read(out / "000003.wav", (1, 4096))
    assert (x - test_split.data[idx[3]]).abs().max() <= 0.5 / 32768 + 1e-7
    assert rows[3]["label"] == test_split.class_names[int(test_split.labels[idx[3]])]
