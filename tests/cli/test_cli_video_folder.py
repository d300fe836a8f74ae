"""Your own videos through the CLI: a tiny 3-D run on a folder of GIFs and frame folders in class
sub-folders (data.options makes it a video folder) trains, resumes and samples GIFs of the folder's
clip shape at its clip rate; bad options and folders stop with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_user_error, run
from noisecraft.io.video import write_gif
from noisecraft.runs import Run

SHAPE = (1, 4, 16, 16)  # frames=4 at resolution 16, gray


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """up/ (a 20x24 GIF of 12 frames at 10 fps) and down/ (a folder of 10 PNG frames), gray noise."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    (root / "up").mkdir()
    write_gif(rng.integers(0, 256, (12, 20, 24, 1), dtype=np.uint8), root / "up" / "a.gif", fps=10)
    (root / "down" / "b").mkdir(parents=True)
    for k in range(10):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "down" / "b" / f"{k}.png")
    return root


def _train(videos: Path, out: Path, *extra):
    return run("train", "tiny", "--out", out, "--steps", 2, "--set", f"data.source={str(videos)!r}",
               "--set", "data.resolution=16", "--set", "data.options.frames=4", "--set", "data.options.stride=2",
               "--set", "data.options.fps=20", "--set", "train.batch_size=4", "--set", "sample.nfe=2",
               "--set", "sample.per_class=1", "--quiet", *extra)


def test_train_resume_and_sample_a_video_folder(videos, tmp_path):
    out = tmp_path / "run"
    result = _train(videos, out)
    assert result.exit_code == 0, result.output
    r = Run.open(out)
    assert r.modality == "video" and r.shape == SHAPE and r.modality_options == {"fps": 10}  # 20 fps / stride 2
    assert r.config.data.options == {"frames": 4, "stride": 2, "fps": 20}
    assert json.loads((out / "run.json").read_text())["class_names"] == ["down", "up"]
    result = run("train", "--resume", out, "--steps", 3, "--quiet")
    assert result.exit_code == 0, result.output
    assert "step 3" in result.output
    s = tmp_path / "s"
    result = run("sample", out, "--n", 2, "--class", "up", "--seed", 1, "--nfe", 2, "--out", s)
    assert result.exit_code == 0, result.output
    m = r.get_modality()
    for i in range(2):
        with Image.open(s / f"{i:06d}.gif") as im:
            assert im.info.get("duration") == 100 and im.size == (32, 32)  # 10 fps, sample.scale = 2
        assert m.read(s / f"{i:06d}.gif", SHAPE).shape == SHAPE


@pytest.mark.parametrize("override, fragments", [
    ("data.options.stride=3", ["stride 3 at fps 20", "valid strides at fps 20: 1, 2, 4, 5, 10, 20"]),
    ("data.options.frames=40", ["frames=40 at stride=2 needs 79 decoded frames per clip", "has 24 at fps 20"]),
    ("data.options.frame=4", ["unknown key data.options.frame", "frames, stride, clip_every, fps"]),
])
def test_bad_video_options_stop_with_one_line(videos, tmp_path, override, fragments):
    result = _train(videos, tmp_path / "run", "--set", override)
    assert_user_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_a_folder_of_mp4s_without_options_says_how_to_read_it(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    result = run("train", "tiny", "--out", tmp_path / "run", "--steps", 1, "--set", f"data.source={str(tmp_path / 'clips')!r}")
    assert_user_error(result, "holds video files", "data.options.frames = T")
