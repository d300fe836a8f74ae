"""Audio through the CLI: a tiny `notes` run (at 11025 Hz, to show the rate travels with the run)
samples 16-bit WAVs + a spectrogram grid, inpaints a time span keeping every other sample bit for
bit, and answers bad spans and mismatched flags with one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from cli_helpers import assert_user_error, run
from noisecraft.runs import Run

RATE, LENGTH = 11025, 256
TINY = ["--set", "data.source=notes", "--set", f"data.resolution={LENGTH}", "--set", f"data.sample_rate={RATE}",
        "--set", "train.batch_size=8", "--set", "sample.nfe=2", "--set", "sample.per_class=1"]
LEGACY = Path(__file__).parents[1] / "runs" / "data" / "run-v1"  # an image run


@pytest.fixture(scope="module")
def notes_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "notes"
    result = run("train", "tiny", "--out", out, "--steps", 2, *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def _pcm(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == RATE
    return data


def test_sample_writes_wavs_at_the_runs_rate_and_a_spectrogram_grid(notes_run, tmp_path):
    out = tmp_path / "s"
    result = run("sample", notes_run, "--class", "pluck:A4", "--n", 3, "--seed", 5, "--nfe", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.wav", "000001.wav", "000002.wav", "grid.png"]
    for i in range(3):
        info = sf.info(str(out / f"{i:06d}.wav"))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, 1, LENGTH, "PCM_16")
    # the files are Run.generate's samples, quantized to 16 bits; grid.png is their spectrograms
    r = Run.open(notes_run)
    x = r.generate(r.spec(nfe=2, seed=5), 3, class_labels="pluck:A4").clamp(-1, 1)
    grid = r.get_modality().preview_image(x, nrow=2, scale=r.config.sample.scale)
    with Image.open(out / "grid.png") as im:
        assert im.mode == "RGB" and im.size == (grid.shape[2], grid.shape[1])
        assert np.abs(np.asarray(im) / 255.0 - grid.permute(1, 2, 0).numpy()).max() < 1 / 255 + 1e-6
    got = torch.from_numpy(np.stack([_pcm(out / f"{i:06d}.wav") for i in range(3)]) / 32768.0).float()
    assert (got - x[:, 0]).abs().max() <= 0.5 / 32768 + 1e-6
    assert_user_error(run("sample", notes_run, "--class", "pluck:A9", "--n", 1, "--out", tmp_path / "bad"),
                      "--class", "pluck:A9")


def test_inpaint_keeps_every_sample_outside_the_span(notes_run, tmp_path):
    assert run("sample", notes_run, "--n", 1, "--nfe", 2, "--out", tmp_path / "s").exit_code == 0
    clip = tmp_path / "s" / "000000.wav"
    out = tmp_path / "i"
    result = run("inpaint", notes_run, "--audio", clip, "--span", "0.005:0.015", "--n", 2, "--nfe", 3, "--class", "bell:C4",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 2 inpainted clips" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.wav", "000001.wav", "grid.png"]
    lo, hi = round(0.005 * RATE), round(0.015 * RATE)  # 55, 165
    src = _pcm(clip)
    for i in range(2):
        res = _pcm(out / f"{i:06d}.wav")
        assert res.shape == (LENGTH,)
        assert np.array_equal(res[:lo], src[:lo]) and np.array_equal(res[hi:], src[hi:])  # bit for bit
        assert not np.array_equal(res[lo:hi], src[lo:hi])
    assert not np.array_equal(_pcm(out / "000000.wav")[lo:hi], _pcm(out / "000001.wav")[lo:hi])  # seeds differ


@pytest.mark.parametrize("args, fragments", [
    (["--span", "0.01:0.5"], ["--span '0.01:0.5' ends after the clip", "0.02322 s long (256 samples at 11025 Hz)"]),
    (["--span", "0.02:0.01"], ["--span '0.02:0.01' is empty or reversed"]),
    (["--span", "0.1"], ["--span '0.1' is not valid; expected START:END in seconds"]),
    (["--span", "-1:0.01"], ["--span '-1:0.01' is not valid"]),
    ([], ["missing --span START:END"]),
])
def test_bad_spans_are_one_line_errors(notes_run, tmp_path, args, fragments):
    clip = tmp_path / "in.wav"
    sf.write(str(clip), np.zeros(LENGTH), RATE, subtype="PCM_16")
    assert_user_error(run("inpaint", notes_run, "--audio", clip, *args, "--out", tmp_path / "o"), *fragments)
    assert not (tmp_path / "o").exists()


def test_flags_that_do_not_fit_the_run(notes_run, tmp_path):
    image = tmp_path / "in.png"
    Image.new("L", (8, 8)).save(image)
    assert_user_error(run("inpaint", notes_run, "--image", image, "--mask", image, "--out", tmp_path / "o"),
                      "is an audio model: give --audio WAV --span START:END")
    assert_user_error(run("inpaint", notes_run, "--span", "0:0.01", "--out", tmp_path / "o"), "missing --audio WAV")
    assert_user_error(run("inpaint", notes_run, "--audio", tmp_path / "nope.wav", "--span", "0:0.01", "--out", tmp_path / "o"),
                      "cannot read audio file", "nope.wav", "does not exist")
    assert_user_error(run("img2img", notes_run, "--image", image, "--strength", 0.5, "--out", tmp_path / "o"),
                      "is an audio model: give --audio WAV instead of --image")
    legacy = tmp_path / "v1"
    shutil.copytree(LEGACY, legacy)
    assert_user_error(run("inpaint", legacy, "--audio", image, "--span", "0:0.1", "--out", tmp_path / "o"),
                      "--audio/--span need an audio model", "model of image data")
    assert_user_error(run("inpaint", legacy, "--image", image, "--out", tmp_path / "o"), "missing --mask MASK")
    assert not (tmp_path / "o").exists()


def test_sdedit_variation_of_a_clip(notes_run, tmp_path):
    """img2img --audio: SDEdit on a clip; a tiny strength changes it little, full strength a lot; the
    input's flag must fit the run."""
    src = tmp_path / "s"
    assert run("sample", notes_run, "--class", "sine:A4", "--n", 1, "--seed", 1, "--nfe", 2, "--out", src).exit_code == 0
    clip = _pcm(src / "000000.wav") / 32768.0
    change = {}
    for strength in (0.02, 1.0):
        out = tmp_path / f"v{strength}"
        result = run("img2img", notes_run, "--audio", src / "000000.wav", "--strength", strength, "--n", 2,
                     "--nfe", 4, "--seed", 3, "--out", out)
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == ["000000.wav", "000001.wav", "grid.png"]
        change[strength] = float(np.abs(_pcm(out / "000000.wav") / 32768.0 - clip).mean())
    assert change[0.02] < 0.2 * change[1.0], change
    assert_user_error(run("img2img", notes_run, "--image", src / "grid.png", "--strength", 0.5, "--out", tmp_path / "b1"),
                      "audio model", "--audio")
    legacy = tmp_path / "v1"
    shutil.copytree(LEGACY, legacy)
    assert_user_error(run("img2img", legacy, "--audio", src / "000000.wav", "--strength", 0.5, "--out", tmp_path / "b2"),
                      "--image", "audio model")


def test_data_export_notes_writes_wavs(tmp_path):
    result = run("data", "export", "notes", "--split", "test", "--n", 3, "--out", tmp_path / "real")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "real").iterdir())
    assert names == ["000000.wav", "000001.wav", "000002.wav", "labels.csv"]
    assert sf.info(str(tmp_path / "real" / "000002.wav")).samplerate == 8000


def test_the_notes_preset_resolves_to_a_1d_unet():
    import json

    from noisecraft.config import load_config
    from noisecraft.train import build_net

    result = run("train", "notes", "--dry-run")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["data"]["source"] == "notes" and cfg["data"]["resolution"] == 4096 and cfg["train"]["steps"] == 1200
    net = build_net(load_config("notes"), (1, 4096))
    assert net.config["dims"] == 1 and net.config["attn_resolutions"] == [128, 64]
    assert net(torch.zeros(2, 1, 4096), torch.ones(2)).shape == (2, 1, 4096)
