"""`noisecraft inpaint | upscale` with mask- and low-res-conditioned runs: the model path is picked
from the run, and a wrong run, method or input size is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_user_error, run

TINY = ["--set", "train.batch_size=8", "--set", "sample.nfe=2", "--set", "sample.per_class=1",
        "--set", "ema.phema_every=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for kind in ("", "mask", "lowres"):
        out[kind] = root / (kind or "plain")
        result = run("train", "tiny", "--out", out[kind], "--steps", 2, *TINY, "--set", f"cond.image={kind!r}", "--quiet")
        assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(d / "image.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255  # white = regenerate
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8)).save(d / "low4.png")
    Image.fromarray(rng.integers(0, 256, (2, 2), dtype=np.uint8)).save(d / "low2.png")
    return d


def test_inpaint_with_a_mask_run_keeps_known_pixels(runs, files, tmp_path):
    out = tmp_path / "inp"
    result = run("inpaint", runs["mask"], "--image", files / "image.png", "--mask", files / "mask.png", "--n", 2,
                 "--nfe", 3, "--solver", "dpmpp_2m", "--out", out)  # any solver: one sampler pass
    assert result.exit_code == 0, result.output
    src = np.asarray(Image.open(files / "image.png")).astype(int)
    known = np.asarray(Image.open(files / "mask.png")) < 128
    for i in range(2):
        img = np.asarray(Image.open(out / f"{i:06d}.png")).astype(int)
        img = img[::2, ::2]  # written at the display scale (sample.scale = 2 in the tiny preset)
        assert img.shape == (8, 8) and np.abs(img[known] - src[known]).max() <= 1


def test_upscale_with_a_lowres_run(runs, files, tmp_path):
    out = tmp_path / "up"
    result = run("upscale", runs["lowres"], "--image", files / "low4.png", "--n", 2, "--nfe", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert "4x4 -> 8x8" in result.output
    assert Image.open(out / "000001.png").size == (16, 16)  # 8x8 at the display scale 2


@pytest.mark.parametrize("kind, args, fragments", [
    ("mask", ["--resample", "3"], ["--resample 3 applies to RePaint only"]),
    ("mask", ["--method", "repaint"], ["--method repaint needs a run without an image condition", "mask-conditioned"]),
    ("", ["--method", "model"], ["--method model needs a run trained with [cond] image = 'mask'"]),
    ("lowres", [], ["trained for super-resolution", "noisecraft upscale"]),
    ("mask", ["--method", "palette"], ["--method 'palette' is not a method; valid: auto, repaint, model"]),
])
def test_inpaint_errors(runs, files, tmp_path, kind, args, fragments):
    result = run("inpaint", runs[kind], "--image", files / "image.png", "--mask", files / "mask.png", *args,
                 "--out", tmp_path / "o")
    assert_user_error(result, *fragments)


@pytest.mark.parametrize("kind, image, args, fragments", [
    ("lowres", "low2.png", [], ["upscales by its lowres_factor 2", "give a 4x4 image"]),
    ("lowres", "low4.png", ["--method", "dps"], ["--method dps is zero-shot", "use --method model"]),
    ("lowres", "low4.png", ["--sigma-y", "0.1"], ["--sigma-y 0.1 applies to the zero-shot methods only"]),
    ("", "low4.png", ["--method", "model"], ["--method model needs a run trained with [cond] image = 'lowres'"]),
    ("mask", "low4.png", [], ["trained for inpainting", "noisecraft inpaint"]),
])
def test_upscale_errors(runs, files, tmp_path, kind, image, args, fragments):
    result = run("upscale", runs[kind], "--image", files / image, *args, "--out", tmp_path / "o")
    assert_user_error(result, *fragments)


@pytest.mark.parametrize("kind,command,use", [("mask", "sample", "noisecraft inpaint"), ("lowres", "sample", "noisecraft upscale"),
                                               ("mask", "eval", "noisecraft inpaint")])
def test_sample_and_eval_point_a_conditioned_run_to_its_task(runs, tmp_path, kind, command, use):
    args = ["sample", runs[kind], "--n", 2, "--out", tmp_path / "s"] if command == "sample" else ["eval", "run", runs[kind], "--n", 2, "--out", tmp_path / "e"]
    assert_user_error(run(*args), f"{kind}-conditioned model", use)
    assert not (tmp_path / "s").exists()
