"""`noisecraft predict` / `interpolate` on a tiny 2-step `moving-digits` run: the kept frames of the
input GIF come back exactly in the written GIFs (8-bit grid), other frames are generated, and bad
input is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cli_helpers import VIDEO_SHAPE, VIDEO_TINY, run, train_tiny_video
from noisecraft.data import load_moving_digits
from noisecraft.runs import Run

SHAPE, TINY = VIDEO_SHAPE, VIDEO_TINY


@pytest.fixture(scope="module")
def video_run(tmp_path_factory) -> Path:
    return train_tiny_video(tmp_path_factory.mktemp("runs") / "md")


@pytest.fixture(scope="module")
def real_gif(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """A real 16x16 test clip of 4 frames written as a GIF at display scale 2, and what it reads back as."""
    ds = load_moving_digits(split="test", resolution=16, frames=4, num_clips=2)
    path = tmp_path_factory.mktemp("in") / "clip.gif"
    m = ds.get_modality()
    m.write(ds.data[0], path, scale=2)
    return path, m.read(path, SHAPE)


def _outputs(run_dir, out: Path, n: int) -> list[torch.Tensor]:
    m = Run.open(run_dir).get_modality()
    return [m.read(out / f"{i:06d}.gif", SHAPE) for i in range(n)]


def test_predict_keeps_the_first_frames_exactly(video_run, real_gif, tmp_path):
    path, clip = real_gif
    out = tmp_path / "p"
    result = run("predict", video_run, "--video", path, "--keep", 2, "--n", 2, "--nfe", 2, "--resample", 2,
                 "--seed", 3, "--out", out)
    assert result.exit_code == 0, result.output
    assert "predicted from 2 of 4 frames" in result.output
    assert {"000000.gif", "000001.gif", "grid.png"} <= {p.name for p in out.iterdir()}
    xs = _outputs(video_run, out, 2)
    for x in xs:
        assert torch.equal(x[:, :2], clip[:, :2])  # exact through the GIF round trip
        assert not torch.equal(x[:, 2:], clip[:, 2:])
    assert not torch.equal(xs[0][:, 2:], xs[1][:, 2:])  # seeds 3 and 4 differ


def test_predict_needs_only_the_kept_frames(video_run, tmp_path):
    ds = load_moving_digits(split="test", resolution=16, frames=2, num_clips=1)
    short = tmp_path / "two.gif"
    ds.get_modality().write(ds.data[0], short)
    out = tmp_path / "p"
    result = run("predict", video_run, "--video", short, "--keep", 2, "--nfe", 2, "--resample", 1, "--out", out)
    assert result.exit_code == 0, result.output
    x = _outputs(video_run, out, 1)[0]
    assert torch.equal(x[:, :2], ds.get_modality().read(short, (1, 2, 16, 16)))
    bad = run("predict", video_run, "--video", short, "--keep", 3, "--nfe", 2, "--out", tmp_path / "q")
    assert bad.exit_code == 2 and "has 2 frames" in bad.output and "needs 3" in bad.output


def test_interpolate_keeps_the_listed_frames_exactly(video_run, real_gif, tmp_path):
    path, clip = real_gif
    out = tmp_path / "i"
    result = run("interpolate", video_run, "--video", path, "--keep", "0,3", "--nfe", 2, "--resample", 1,
                 "--solver", "ddim", "--out", out)
    assert result.exit_code == 0, result.output
    x = _outputs(video_run, out, 1)[0]
    assert torch.equal(x[:, [0, 3]], clip[:, [0, 3]])
    assert not torch.equal(x[:, 1:3], clip[:, 1:3])


@pytest.mark.parametrize("command, keep, message", [
    ("predict", "0", "--keep 0 is out of range for a run of 4-frame clips; valid: 1..3"),
    ("predict", "4", "--keep 4 is out of range for a run of 4-frame clips; valid: 1..3"),
    ("interpolate", "0,4", "frame 4 is out of range for clips of 4 frames; valid: 0..3"),
    ("interpolate", "1,1", "frame 1 is listed twice"),
    ("interpolate", "0,1,2,3", "nothing to generate"),
    ("interpolate", "a,b", "is not a comma-separated list of frame indices"),
])
def test_bad_keep_is_a_one_line_error(video_run, real_gif, tmp_path, command, keep, message):
    result = run(command, video_run, "--video", real_gif[0], "--keep", keep, "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "o").exists()


def test_image_run_and_bad_files_are_refused(video_run, real_gif, tmp_path):
    img_run = tmp_path / "img"
    assert run("train", "tiny", "--out", img_run, "--steps", 1, "--quiet").exit_code == 0
    result = run("predict", img_run, "--video", real_gif[0], "--keep", 1, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "predict needs a video run" in result.output and "image data" in result.output
    result = run("interpolate", img_run, "--video", real_gif[0], "--keep", "0,2", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "interpolate needs a video run" in result.output
    result = run("predict", video_run, "--video", tmp_path / "missing.gif", "--keep", 1, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "missing.gif" in result.output and len(result.output.strip().splitlines()) == 1
    big = tmp_path / "big.gif"
    load_moving_digits(split="test", resolution=24, frames=4, num_clips=1).get_modality().write(
        load_moving_digits(split="test", resolution=24, frames=4, num_clips=1).data[0], big, scale=1)
    result = run("predict", video_run, "--video", big, "--keep", 1, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "24x24" in result.output
