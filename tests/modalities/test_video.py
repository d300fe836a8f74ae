"""The video modality: GIF round trips bit for bit on the 8-bit grid, MP4 within a lossy tolerance,
any integer enlargement reads back exactly, reading picks T frames at a start and stride at the
modality's frame rate (GIF frames Pillow merged, other rates, folders of frames), previews are one
frame strip per sample, and every bad input is a one-line error."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.data import DataError
from noisecraft.io.images import save_image
from noisecraft.io.video import FFmpegMissing, frame_indices, read_frames, write_gif
from noisecraft.modalities import VideoModality, get_modality


def grid_clip(shape, seed=0, levels=256) -> torch.Tensor:
    """A clip on the 8-bit grid k/127.5 - 1 with at most `levels` distinct values per channel."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, levels, shape, generator=g) * (255 // max(levels - 1, 1))
    return (k.to(torch.float32) / 127.5 - 1.0)


def smooth_clip(c=3, t=6, h=16, w=16) -> torch.Tensor:
    """A moving colour gradient with a bright square: content like real clips (for the lossy MP4)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    frames = []
    for k in range(t):
        f = torch.stack([0.6 * xx, 0.6 * yy, 0.3 * (xx + yy)])[:c].clone()
        f[:, 4:8, 2 + k:6 + k] = 0.9
        frames.append(f)
    return torch.stack(frames, 1)  # (C, T, H, W)


def test_registered_with_the_frame_rate_as_its_option():
    v = get_modality("video")
    assert isinstance(v, VideoModality) and v.options() == {"fps": 10} and v.file_ext == ".gif"
    assert get_modality("video", {"fps": 25}).fps == 25
    for bad in (7, 0, 10.0, True):
        with pytest.raises(ValueError, match="fps .* valid: 1, 2, 4, 5, 10, 20, 25, 50"):
            get_modality("video", {"fps": bad})
    with pytest.raises(ValueError, match="unknown video modality option"):
        get_modality("video", {"rate": 10})
    for shape in ((1, 4, 8, 8), (3, 1, 5, 7)):
        v.check_shape(shape)
    for shape in ((2, 4, 8, 8), (1, 8, 8), (3, 0, 8, 8)):
        with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
            v.check_shape(shape)


@pytest.mark.parametrize("channels", [1, 3])
def test_gif_round_trips_bit_for_bit_at_any_display_scale(tmp_path, channels):
    v = get_modality("video")
    x = grid_clip((channels, 5, 8, 6), levels=256 if channels == 1 else 6)  # RGB: 216 colours <= 256 per frame
    for scale in (1, 2, 3):
        path = v.write(x, tmp_path / f"s{scale}.gif", scale=scale)
        with Image.open(path) as im:
            assert im.size == (6 * scale, 8 * scale) and im.n_frames == 5 and im.info.get("loop") == 0
            assert im.info["duration"] == 100  # 10 fps
        assert torch.equal(v.read(path, x.shape), x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1.gif", "s2.gif", "s3.gif"]  # no temp files left


def test_gif_keeps_repeated_frames_that_pillow_merges(tmp_path):
    v = get_modality("video", {"fps": 4})
    x = grid_clip((1, 6, 4, 4))
    x[:, 2] = x[:, 1]
    x[:, 3] = x[:, 1]  # frames 1-3 identical: Pillow stores one frame shown three times as long
    path = v.write(x, tmp_path / "a.gif")
    with Image.open(path) as im:
        assert im.n_frames == 4
    assert torch.equal(v.read(path, x.shape), x)


def test_mp4_round_trips_within_a_lossy_tolerance(tmp_path, ffmpeg):
    v = get_modality("video")
    for c in (1, 3):
        x = (smooth_clip(c=c) * 127.5).round() / 127.5  # on the 8-bit grid
        path = v.write(x, tmp_path / f"c{c}.mp4")
        y = v.read(path, x.shape)
        err = (y - x).abs() * 127.5  # in 8-bit steps
        assert y.shape == x.shape and err.mean() < 2.0 and err.max() < 40, (c, err.mean(), err.max())
    odd = grid_clip((1, 3, 5, 7))
    path = v.write(odd, tmp_path / "odd.mp4", scale=1)  # yuv420p needs even sides: written at scale 2
    assert v.read(path, odd.shape).shape == odd.shape


def test_read_takes_t_frames_from_start_at_stride(tmp_path):
    v = get_modality("video")
    x = grid_clip((3, 10, 4, 4), levels=4)
    path = v.write(x, tmp_path / "a.gif")
    assert torch.equal(v.read(path, (3, 3, 4, 4), start=1, stride=3), x[:, 1::3])  # frames 1, 4, 7
    u8 = ((x[:, 8:] + 1) * 127.5).round()  # (3, 2, 4, 4): the last two frames
    luma = (u8 * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1, 1)).sum(0, keepdim=True).round()  # ITU-R 601
    assert torch.equal(v.read(path, (1, 2, 4, 4), start=8), luma / 127.5 - 1)
    with pytest.raises(DataError, match=r"has 10 frames at 10 fps; reading T=4 frames from frame 2 at stride 3 needs 12"):
        v.read(path, (3, 4, 4, 4), start=2, stride=3)
    for kw in ({"start": -1}, {"stride": 0}):
        with pytest.raises(ValueError, match="must be an integer >="):
            v.read(path, (3, 2, 4, 4), **kw)


def test_read_resamples_other_frame_rates_in_time(tmp_path, ffmpeg):
    x = grid_clip((1, 8, 4, 4))
    path = get_modality("video", {"fps": 20}).write(x, tmp_path / "fast.gif")
    assert torch.equal(get_modality("video", {"fps": 10}).read(path, (1, 4, 4, 4)), x[:, 1::2])  # middles of 100 ms
    assert torch.equal(get_modality("video", {"fps": 20}).read(path, (1, 8, 4, 4)), x)
    mp4 = get_modality("video", {"fps": 20}).write(smooth_clip(c=1, t=8), tmp_path / "fast.mp4")
    assert len(read_frames(mp4, 10)) == 4 and len(read_frames(mp4, 20)) == 8 and len(read_frames(mp4, 20, max_frames=3)) == 3
    # the timeline rule itself: frames of 100, 300 and 100 ms at 10 fps
    assert frame_indices([100, 300, 100], 10) == [0, 1, 1, 1, 2]
    assert frame_indices([0, 0, 0], 5) == [0, 1, 2]  # no durations: one period each


def test_read_a_folder_of_frames_and_resize(tmp_path):
    v = get_modality("video")
    x = grid_clip((3, 4, 6, 6), levels=8)
    folder = tmp_path / "frames"
    for k in range(4):
        save_image(x[:, k], folder / f"f{k:03d}.png", scale=2)
    (folder / "notes.txt").write_text("ignored")
    assert torch.equal(v.read(folder, x.shape), x)
    with pytest.raises(ValueError, match=r"frames of 12x12; valid: 5x6 or an integer multiple .* resize=True"):
        v.read(folder, (3, 4, 6, 5))
    y = v.read(folder, (3, 4, 3, 5), resize=True)  # centre-cropped to 5:3 and shrunk
    assert y.shape == (3, 4, 3, 5) and y.min() >= -1 and y.max() <= 1


def test_bad_files_are_one_line_data_errors(tmp_path, ffmpeg):
    v = get_modality("video")
    with pytest.raises(DataError, match="does not exist"):
        v.read(tmp_path / "none.gif", (1, 2, 4, 4))
    (tmp_path / "bad.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(DataError, match="cannot read video"):
        v.read(tmp_path / "bad.gif", (1, 2, 4, 4))
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="cannot read video"):
        v.read(tmp_path / "bad.mp4", (1, 2, 4, 4))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        v.read(tmp_path / "empty", (1, 2, 4, 4))
    mixed = tmp_path / "mixed"
    save_image(torch.zeros(1, 4, 4), mixed / "a.png")
    save_image(torch.zeros(1, 5, 4), mixed / "b.png")
    with pytest.raises(DataError, match="every frame must have one size"):
        v.read(mixed, (1, 2, 4, 4))
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(DataError, match="is not a GIF"):
        v.read(tmp_path / "clip.txt", (1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"written as \.gif or \.mp4"):
        v.write(torch.zeros(1, 2, 4, 4), tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        v.write(torch.zeros(1, 4, 4), tmp_path / "a.gif")


def test_mp4_without_imageio_ffmpeg_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    v = get_modality("video")
    with pytest.raises(FFmpegMissing, match=r"pip install 'noisecraft\[video\]'") as e:
        v.write(torch.zeros(1, 2, 4, 4), tmp_path / "a.mp4")
    assert "\n" not in str(e.value) and not list(tmp_path.iterdir())
    assert v.write(torch.zeros(1, 2, 4, 4), tmp_path / "a.gif").is_file()  # GIF needs nothing extra


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch, ffmpeg):
    v = get_modality("video")
    path = v.write(grid_clip((1, 2, 4, 4)), tmp_path / "a.mp4")
    before = path.read_bytes()
    import imageio_ffmpeg

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(imageio_ffmpeg, "write_frames", broken)
    with pytest.raises(OSError, match="disk full"):
        v.write(grid_clip((1, 2, 4, 4), seed=1), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.mp4"]


def test_preview_is_one_frame_strip_per_sample(tmp_path):
    v = get_modality("video")
    x = torch.stack([smooth_clip(c=3, t=3, h=4, w=5), smooth_clip(c=3, t=3, h=4, w=5) * -1])
    img = v.preview_image(x, nrow=8, scale=1)
    s = 1  # strips: 3 frames of 5 px + 2 gutters of s; panels: gutter 2s around each, one per row
    assert img.shape == (3, 2 * 4 + 3 * 2 * s, 3 * 5 + 2 * s + 2 * 2 * s)
    top, left = 2 * s, 2 * s
    assert torch.allclose(img[:, top:top + 4, left:left + 5], (x[0, :, 0] + 1) / 2, atol=1e-6)  # true colours
    gray = v.preview_image(x[:, :1], nrow=1, scale=2)
    assert gray.shape[0] == 3 and torch.equal(gray[0], gray[1])
    path = v.write_preview(x, tmp_path / "grid.png", nrow=4)
    with Image.open(path) as im:
        assert im.size == (v.preview_image(x, nrow=4).shape[2], v.preview_image(x, nrow=4).shape[1])
    with pytest.raises(ValueError, match="nrow"):
        v.preview_image(x, nrow=0)


def test_write_gif_checks_its_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8 array"):
        write_gif(np.zeros((2, 4, 4, 2), dtype=np.uint8), tmp_path / "a.gif", fps=10)
    with pytest.raises(ValueError, match="cannot be stored in a GIF exactly"):
        write_gif(np.zeros((2, 4, 4, 1), dtype=np.uint8), tmp_path / "a.gif", fps=30)
