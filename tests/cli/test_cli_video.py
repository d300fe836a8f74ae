"""Video through the CLI: a tiny `moving-digits` run (the 3-D U-Net, 2 steps) samples looping GIFs,
MP4s and a frame-strip grid that read back as (C, T, H, W) clips; `data export` writes the real
clips as GIFs that read back exactly; a text-to-video `moving-shapes` run samples from a prompt; and
without imageio-ffmpeg `sample` still writes the GIFs and says in one line why there is no MP4."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cli_helpers import VIDEO_SHAPE, VIDEO_TINY, run, train_tiny_video
from noisecraft.data import load_moving_digits
from noisecraft.runs import Run

SHAPE, TINY = VIDEO_SHAPE, VIDEO_TINY


@pytest.fixture(scope="module")
def video_run(tmp_path_factory) -> Path:
    return train_tiny_video(tmp_path_factory.mktemp("runs") / "md")


def test_sample_writes_gifs_mp4s_and_a_frame_strip_grid(video_run, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    r = Run.open(video_run)
    assert r.modality == "video" and r.shape == SHAPE and r.modality_options == {"fps": 10}
    out = tmp_path / "s"
    result = run("sample", video_run, "--n", 2, "--class", 3, "--seed", 1, "--nfe", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.gif", "000000.mp4", "000001.gif", "000001.mp4", "grid.png"]
    m = r.get_modality()
    x = r.generate(r.spec(nfe=2, seed=1), 2, class_labels=3).clamp(-1, 1)  # what sample drew
    q = ((x + 1) * 127.5).round() / 127.5 - 1  # on the GIF's 8-bit grid
    for i in range(2):
        with Image.open(out / f"{i:06d}.gif") as im:
            assert im.n_frames <= 4 and im.info.get("loop") == 0 and im.size == (32, 32)  # tiny's sample.scale = 2
        assert torch.allclose(m.read(out / f"{i:06d}.gif", SHAPE), q[i], atol=1e-6)
        mp4 = m.read(out / f"{i:06d}.mp4", SHAPE)
        assert mp4.shape == SHAPE and (mp4 - q[i]).abs().mean() < 3 / 127.5  # lossy H.264: 0.7 steps measured
    with Image.open(out / "grid.png") as im:
        grid = m.preview_image(x, nrow=2, scale=2)
        assert im.size == (grid.shape[2], grid.shape[1]) and im.size[0] > im.size[1]  # two strips of 4 frames


def test_sample_without_ffmpeg_writes_gifs_and_says_why_no_mp4(video_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    out = tmp_path / "s"
    result = run("sample", video_run, "--n", 1, "--nfe", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.gif", "grid.png"]
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "pip install 'noisecraft[video]'" in warnings[0] and "wrote no .mp4 files" in warnings[0]


def test_export_writes_real_clips_as_gifs(tmp_path):
    out = tmp_path / "D"
    result = run("data", "export", "moving-digits", "--split", "test", "--n", 4, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.gif", "000001.gif", "000002.gif", "000003.gif", "labels.csv"]
    ds = load_moving_digits(split="test")
    with open(out / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    m = ds.get_modality()
    from noisecraft.data.export import subset_indices

    for row, i in zip(rows, subset_indices(len(ds), 4, 0).tolist()):
        clip = m.read(out / row["file"], ds.sample_shape)
        assert row["label"] == ds.class_names[int(ds.labels[i])]
        assert (clip - ds.data[i]).abs().max() <= 1 / 255 + 1e-6  # the 8-bit GIF of the real clip


def test_text_to_video_run_samples_from_a_prompt(tmp_path):
    out = tmp_path / "shapes"
    result = run("train", "tiny", "--out", out, "--steps", 1, "--set", "data.source=moving-shapes",
                 "--set", "data.resolution=8", "--set", "data.options.frames=2", "--set", "data.options.num_clips=12",
                 "--set", "data.conditional=false", "--set", "text.encoder=small", "--set", "train.batch_size=4",
                 "--set", "sample.nfe=2", "--set", "sample.per_class=1", "--quiet")
    assert result.exit_code == 0, result.output
    s = tmp_path / "s"
    result = run("sample", out, "--n", 1, "--nfe", 2, "--prompt", "a red circle moving left", "--out", s)
    assert result.exit_code == 0, result.output
    assert (s / "000000.gif").is_file() and (s / "prompts.txt").read_text() == "000000.gif\ta red circle moving left\n"
    assert Run.open(out).get_modality().read(s / "000000.gif", (3, 2, 8, 8)).shape == (3, 2, 8, 8)
