"""The `spoken-digits` built-in: espeak-ng speech, split by voice, balanced, deterministic, cached.

Synthesis tests shrink the splits (a few voices, one take) so each runs in about a second; the
plan tests check the real splits without synthesizing them."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

import noisecraft.data.spoken_digits as sd
from noisecraft.data import DataError, load_dataset
from noisecraft.io_safety import read_safetensors

from needs_program import require_program

LENGTH = 2048


@pytest.fixture
def espeak():
    return require_program("espeak-ng", "espeak-ng")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    root = tmp_path / "nc-cache"
    monkeypatch.setenv("NOISECRAFT_CACHE", str(root))
    return root


@pytest.fixture
def small_splits(monkeypatch):
    """Two training voices and one test voice (each from its real split), one take per word."""
    monkeypatch.setitem(sd.SPLIT_VOICES, "train", ("en-us+m1", "en-gb+f1"))
    monkeypatch.setitem(sd.SPLIT_VOICES, "test", ("en-us+m3",))
    monkeypatch.setattr(sd, "TAKES", 1)


def test_the_splits_hold_out_whole_voices_and_balance_the_words():
    train, test = sd.spoken_digits_plan("train"), sd.spoken_digits_plan("test")
    assert (len(train), len(test)) == (1920, 640)
    voices = {s: {u.voice for u in plan} for s, plan in (("train", train), ("test", test))}
    assert not voices["train"] & voices["test"]
    assert voices["train"] | voices["test"] == set(sd.VOICES) and len(voices["test"]) == 16
    # every accent and every variant is still heard in training
    assert {v.split("+")[0] for v in voices["train"]} == set(sd.ACCENTS)
    assert {v.split("+")[1] for v in voices["train"]} == set(sd.VARIANTS)
    for plan, voices_in in ((train, 48), (test, 16)):
        assert Counter(u.label for u in plan) == {d: voices_in * sd.TAKES for d in range(10)}
        assert Counter((u.voice, u.label) for u in plan).most_common(1)[0][1] == sd.TAKES
        pitch, speed = np.array([u.pitch for u in plan]), np.array([u.speed for u in plan])
        assert sd.PITCH_RANGE[0] <= pitch.min() < pitch.max() <= sd.PITCH_RANGE[1]
        assert sd.SPEED_RANGE[0] <= speed.min() < speed.max() <= sd.SPEED_RANGE[1]
    assert sd.spoken_digits_plan("train") == train  # the plan is fixed by the split's seed
    with pytest.raises(ValueError, match="split must be one of train, test"):
        sd.spoken_digits_plan("all")


def test_synthesis_is_deterministic_and_centres_each_word(espeak):
    plan = sd.spoken_digits_plan("test")[:6]
    length = sd.SPOKEN_DIGITS_LENGTH  # 1.02 s: the whole word fits
    a = sd.synthesize(plan, 8000, length)
    b = sd.synthesize(plan, 8000, length, workers=1)  # another schedule, same bytes
    assert a.dtype == np.int16 and a.shape == (6, length) and np.array_equal(a, b)
    assert np.all(np.abs(a).max(1) == round(sd.PEAK * 32767))
    x = a.astype(np.float64)
    centroid = (np.arange(length) * x**2).sum(1) / (x**2).sum(1)
    assert np.all(np.abs(centroid - length / 2) < 2)  # centred on its energy, to a sample
    assert np.all(x[:, :400] == 0) and np.all(x[:, -400:] == 0)  # silence at both ends: nothing was cut
    assert len({row.tobytes() for row in a}) == 6  # different words, voices, pitches: different clips


def test_load_gives_balanced_audio_splits_with_their_voices(espeak, small_splits):
    train = load_dataset("spoken-digits", split="train", resolution=LENGTH)
    test = load_dataset("spoken-digits", split="test", resolution=LENGTH, sample_rate=11025)
    assert train.data.shape == (20, 1, LENGTH) and train.data.dtype == torch.float32
    assert train.modality == "audio" and train.sample_rate == 8000 and test.sample_rate == 11025
    assert train.class_names == list(sd.DIGIT_WORDS) == ["zero", "one", "two", "three", "four", "five", "six",
                                                          "seven", "eight", "nine"]
    assert torch.bincount(train.labels).tolist() == [2] * 10 and torch.bincount(test.labels).tolist() == [1] * 10
    names = lambda ds: {sd.VOICES[int(v)] for v in ds.voice}  # noqa: E731
    assert names(train) == {"en-us+m1", "en-gb+f1"} and names(test) == {"en-us+m3"}
    both = load_dataset("spoken-digits", split="all", resolution=LENGTH)
    assert torch.equal(both.data, torch.cat([train.data, load_dataset("spoken-digits", split="test",
                                                                      resolution=LENGTH).data]))
    with pytest.raises(ValueError, match="hflip=True is not valid for 'spoken-digits'"):
        load_dataset("spoken-digits", hflip=True)


def test_the_second_load_reads_the_cache(espeak, small_splits, cache, monkeypatch):
    calls = []
    real = sd._clip
    monkeypatch.setattr(sd, "_clip", lambda *a: calls.append(a[0]) or real(*a))
    first = load_dataset("spoken-digits", split="test", resolution=LENGTH)
    assert len(calls) == 10
    files = list((cache / "datasets" / "spoken-digits").glob("test-*.safetensors"))
    assert len(files) == 1
    arrays, meta = read_safetensors(files[0], framework="np")  # plain arrays, no pickle
    assert arrays["x"].dtype == np.int16 and arrays["x"].shape == (10, LENGTH) and len(meta["key"]) == 64
    second = load_dataset("spoken-digits", split="test", resolution=LENGTH)
    assert len(calls) == 10  # read from the cache
    assert torch.equal(first.data, second.data) and torch.equal(first.labels, second.labels)
    load_dataset("spoken-digits", split="test", resolution=LENGTH // 2)
    assert len(calls) == 20  # another length is another key
    files[0].write_bytes(b"not a safetensors file")  # a damaged file is regenerated, with a warning
    with pytest.warns(RuntimeWarning, match="unreadable.*regenerating"):
        third = load_dataset("spoken-digits", split="test", resolution=LENGTH)
    assert len(calls) == 30 and torch.equal(third.data, first.data)


def test_without_espeak_ng_the_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    with pytest.raises(DataError) as e:
        load_dataset("spoken-digits", split="test")
    assert str(e.value) == "spoken-digits needs the espeak-ng program: apt-get install espeak-ng"
    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    result = CliRunner().invoke(cli, ["train", "spoken-digits", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and result.output.strip() == ("error: spoken-digits needs the espeak-ng program: "
                                                               "apt-get install espeak-ng")


def test_the_preset_trains_through_the_cli(espeak, small_splits, tmp_path):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli
    from noisecraft.runs import Run

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "spoken-digits", "--out", str(out), "--steps", "2", "--set",
                                      "data.resolution=1024", "--set", "train.batch_size=4", "--set", "sample.nfe=2",
                                      "--set", "train.tensorboard=false", "--set", "ema.phema_every=0", "--quiet"])
    assert result.exit_code == 0, result.output
    run = Run.open(out)
    assert run.shape == (1, 1024) and run.modality == "audio" and run.class_names == list(sd.DIGIT_WORDS)
    assert json.loads((out / "run.json").read_text())["modality_options"] == {"sample_rate": 8000}
    assert run.net_config["dims"] == 1 and run.net_config["patch_size"] == 8 and len(run.net_config["channel_mult"]) == 5


def test_a_missing_program_skips_its_tests_except_under_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the espeak-ng program: apt-get install espeak-ng"):
        require_program("espeak-ng", "espeak-ng")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install espeak-ng .CI=true"):
        require_program("espeak-ng", "espeak-ng")
