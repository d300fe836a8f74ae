"""Video folders: GIFs, MP4s and folders of frames cut into clips of T frames at a stride (clip counts
from the lengths, exact pixels for lossless GIF/PNG sources, natural frame order), labels from class
folders, sizes mixed by resizing, and every bad input a one-line error naming the value or file."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.config import ConfigError, load_config
from noisecraft.data import DataError, find_videos, load_dataset, load_video_folder
from noisecraft.io.video import FFmpegMissing, write_gif, write_mp4
from noisecraft.train import build_dataset


def _frames(t: int, h: int = 8, w: int = 8, c: int = 1, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, C) noise whose frame k also carries k in pixel (0, 0), so frames are told apart."""
    f = np.random.default_rng(seed).integers(0, 256, (t, h, w, c), dtype=np.uint8)
    f[:, 0, 0, :] = np.arange(t, dtype=np.uint8)[:, None] * 7
    return f


def _unit(u8: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) -> the dataset's (C, T, H, W) in [-1, 1]."""
    return torch.from_numpy(u8).permute(3, 0, 1, 2).to(torch.float32) / 127.5 - 1.0


def _frame_folder(path, frames: np.ndarray, names=None) -> None:
    path.mkdir(parents=True)
    for k, f in enumerate(frames):
        name = names[k] if names else f"{k:04d}.png"
        Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f).save(path / name)


def _expected_clips(length: int, frames: int, stride: int, every: int) -> int:
    span = (frames - 1) * stride + 1
    return 0 if length < span else (length - span) // every + 1


@pytest.mark.parametrize("frames, stride, every", [(4, 1, None), (4, 2, None), (3, 1, 1), (2, 5, 3)])
def test_clip_count_and_content_follow_lengths_frames_and_stride(tmp_path, frames, stride, every):
    lengths = {"a.gif": 10, "b.gif": 7, "c.gif": 16}
    sources = {}
    for i, (name, n) in enumerate(lengths.items()):
        sources[name] = _frames(n, seed=i)
        write_gif(sources[name], tmp_path / name, fps=10)
    opts = {"frames": frames, "stride": stride} | ({"clip_every": every} if every else {})
    ds = load_dataset(tmp_path, video=opts)
    step = every or frames * stride
    assert len(ds) == sum(_expected_clips(n, frames, stride, step) for n in lengths.values())
    assert ds.sample_shape == (1, frames, 8, 8) and ds.fps == 10 // stride and ds.modality == "video"
    assert ds.num_classes == 0 and not ds.labels.any()
    for i, (name, start) in enumerate(ds.clip_sources):  # every clip is exactly frames start, start + stride, ...
        assert torch.equal(ds.data[i], _unit(sources[name][start:start + (frames - 1) * stride + 1:stride]))
    starts = [s for name, s in ds.clip_sources if name == "c.gif"]
    assert starts == list(range(0, 16 - (frames - 1) * stride, step))


def test_lossless_sources_round_trip_exactly(tmp_path):
    gray, rgb = _frames(6, 12, 10, 1, seed=1), _frames(6, 12, 10, 3, seed=2)
    rgb[..., :] = rgb[..., :] // 64 * 64  # at most 64 colours a frame: the GIF palette is exact
    (tmp_path / "gray").mkdir()
    write_gif(gray, tmp_path / "gray" / "g.gif", fps=10)
    _frame_folder(tmp_path / "rgb" / "clip", rgb)
    g = load_dataset(tmp_path / "gray", resolution=10, video={"frames": 6})
    assert g.sample_shape == (1, 6, 10, 10)
    assert torch.equal(g.data[0], _unit(gray[:, 1:11]))  # the centred 10x10 square, resized 1:1
    r = load_video_folder(tmp_path / "rgb", frames=3, resolution=10)  # a frame folder; RGB frames keep 3 channels
    assert r.sample_shape == (3, 3, 10, 10) and len(r) == 2
    assert torch.equal(r.data[1], _unit(rgb[3:6, 1:11]))
    write_gif(rgb, tmp_path / "rgb.gif", fps=10)
    r2 = load_video_folder(tmp_path, frames=6, labels=False, resolution=10)  # the GIF next to folders: all videos
    assert [s for s, _ in r2.clip_sources] == ["gray/g.gif", "rgb.gif", "rgb/clip"]
    assert torch.equal(r2.data[1], _unit(rgb[:, 1:11]))


def test_frame_folders_play_in_natural_order_and_mixed_sizes_are_resized(tmp_path):
    frames = _frames(11, 16, 16)
    names = [f"frame{k + 1}.png" for k in range(11)]  # frame1 .. frame11: plain string order would put frame10 second
    _frame_folder(tmp_path / "v", frames, names)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(tmp_path / "v" / "frame12.png")  # a bigger 12th frame
    (tmp_path / "v" / "notes.txt").write_text("ignored")
    ds = load_video_folder(tmp_path / "v", frames=11)  # the root itself is one frame folder: one unlabeled video
    assert len(ds) == 1 and ds.sample_shape == (1, 11, 16, 16) and ds.clip_sources == [(".", 0)]
    assert torch.equal(ds.data[0], _unit(frames))
    ds = load_video_folder(tmp_path / "v", frames=12, resolution=8)  # every frame resized, the odd one too
    assert ds.sample_shape == (1, 12, 8, 8) and bool((ds.data[0, 0, 11] == -1).all())


def test_class_folders_label_every_clip_of_their_videos(tmp_path):
    (tmp_path / "cats").mkdir()
    write_gif(_frames(8), tmp_path / "cats" / "a.gif", fps=10)
    _frame_folder(tmp_path / "cats" / "b", _frames(4, 20, 24, 3))
    _frame_folder(tmp_path / "dogs" / "deeper" / "c", _frames(12))
    ds = load_dataset(tmp_path, resolution=8, video={"frames": 4})
    assert ds.class_names == ["cats", "dogs"]
    assert [s for s, _ in ds.clip_sources] == ["cats/a.gif", "cats/a.gif", "cats/b", "dogs/deeper/c", "dogs/deeper/c",
                                               "dogs/deeper/c"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1] and ds.channels == 3  # one RGB video makes all RGB
    assert load_dataset(tmp_path, resolution=8, video={"frames": 4}, labels=False).num_classes == 0
    write_gif(_frames(8), tmp_path / "loose.gif", fps=10)
    with pytest.raises(DataError, match="both in class sub-folders and directly in the folder"):
        load_dataset(tmp_path, resolution=8, video={"frames": 4})


def test_gif_time_is_resampled_to_fps_and_stride_sets_the_clip_rate(tmp_path):
    write_gif(_frames(20), tmp_path / "v.gif", fps=20)  # 1 s at 20 fps
    ds = load_video_folder(tmp_path, frames=5, fps=10)  # decoded at 10 fps: 10 frames, the odd ones of the file
    assert len(ds) == 2 and ds.fps == 10
    assert torch.equal(ds.data[0], _unit(_frames(20)[1:10:2]))
    ds = load_video_folder(tmp_path, frames=5, fps=20, stride=2, clip_every=1)  # the same 10 fps from the file's rate
    assert ds.fps == 10 and len(ds) == 20 - 9 + 1 and torch.equal(ds.data[0], _unit(_frames(20)[0:9:2]))


def test_mp4_clips(tmp_path, ffmpeg):
    frames = np.repeat(np.linspace(0, 255, 9).astype(np.uint8)[:, None, None, None], 16, 1).repeat(16, 2).repeat(3, 3)
    write_mp4(frames, tmp_path / "v.mp4", fps=10)  # 9 flat frames, brighter each frame
    ds = load_dataset(tmp_path, video={"frames": 4}, channels=1)
    assert len(ds) == 2 and ds.sample_shape == (1, 4, 16, 16)
    assert (ds.data[1] - _unit(frames[4:8, ..., :1])).abs().max() < 4 / 127.5  # lossy H.264
    write_gif(_frames(4, 16, 16), tmp_path / "g.gif", fps=10)
    assert [s for s, _ in load_video_folder(tmp_path, frames=4).clip_sources] == ["g.gif", "v.mp4", "v.mp4"]


def test_mp4_without_imageio_ffmpeg_stops_even_when_skipping(tmp_path, monkeypatch):
    (tmp_path / "v.mp4").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(FFmpegMissing, match=r"pip install 'noisecraft\[video\]'"):
        load_video_folder(tmp_path, frames=2, on_error="skip")


def test_unreadable_and_too_short_videos_follow_on_error(tmp_path):
    write_gif(_frames(8), tmp_path / "a.gif", fps=10)
    write_gif(_frames(3), tmp_path / "b.gif", fps=10)
    (tmp_path / "c.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(DataError, match=r"cannot read video '.*c\.gif': .*on_error='skip'") as e:
        load_video_folder(tmp_path, frames=4)
    assert "\n" not in str(e.value)
    (tmp_path / "c.gif").unlink()
    with pytest.raises(DataError, match=r"'.*b\.gif': too short: 3 decoded frames at fps 10, a clip of frames=4 at "
                                        r"stride=1 spans 4"):
        load_video_folder(tmp_path, frames=4)
    (tmp_path / "c.gif").write_bytes(b"GIF89a broken")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable video\(s\)"):
        ds = load_video_folder(tmp_path, frames=4, on_error="skip")
    assert len(ds) == 2 and [p.rsplit("/", 1)[-1] for p in ds.skipped_files] == ["b.gif", "c.gif"]


@pytest.mark.parametrize("kw, match", [
    ({"frames": 9}, r"^frames=9 at stride=1 needs 9 decoded frames per clip, but the longest video in '.*' \('.*a\.gif'\) "
                    r"has 8 at fps 10; lower frames or stride$"),
    ({"frames": 4, "stride": 5}, r"^frames=4 at stride=5 needs 16"),
    ({"frames": 0}, r"^frames must be an integer in 1\.\.256"),
    ({"frames": 4, "stride": 0}, r"^stride must be an integer >= 1 .*got 0$"),
    ({"frames": 4, "stride": 4}, r"^stride 4 at fps 10 makes clips play at 2\.5 frames per second, .*valid strides at "
                                 r"fps 10: 1, 2, 5, 10"),
    ({"frames": 4, "fps": 0}, r"^fps must be an integer 1\.\.240"),
    ({"frames": 4, "clip_every": -1}, r"^clip_every must be an integer >= 1"),
    ({"frames": 4, "fps": 30, "stride": 2}, r"^stride 2 at fps 30 .*valid strides at fps 30: 3, 6, 15, 30"),
])
def test_bad_options_are_one_line_errors(tmp_path, kw, match):
    write_gif(_frames(8), tmp_path / "a.gif", fps=10)
    write_gif(_frames(5), tmp_path / "b.gif", fps=10)
    with pytest.raises((ValueError, DataError), match=match) as e:
        load_video_folder(tmp_path, on_error="skip", **kw)
    assert "\n" not in str(e.value)


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"^video folder '.*nothing' does not exist"):
        load_video_folder(tmp_path / "nothing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no videos")
    with pytest.raises(DataError, match=r"^no videos found in '.*empty' \(searched recursively for \.gif, \.mp4"):
        load_dataset(tmp_path / "empty", video={"frames": 4})
    _frame_folder(tmp_path / "mixed" / "v", _frames(4))
    write_gif(_frames(4), tmp_path / "mixed" / "v" / "x.gif", fps=10)
    with pytest.raises(DataError, match=r"holds frame images \(e\.g\. '0000\.png'\) and also 'x\.gif'; a folder of frames"):
        find_videos(tmp_path / "mixed")
    (tmp_path / "mp4s").mkdir()
    (tmp_path / "mp4s" / "a.mp4").write_bytes(b"")
    with pytest.raises(DataError, match=r"holds video files \(e\.g\. '.*a\.mp4'\) and no images: read it as videos with "
                                        r"video=\{'frames': T\} \(in a config: data\.options\.frames = T"):
        load_dataset(tmp_path / "mp4s")
    with pytest.raises(ValueError, match=r"^unknown video folder option 'frame'; valid: frames, stride, clip_every, fps$"):
        load_dataset(tmp_path / "mp4s", video={"frame": 4})
    with pytest.raises(ValueError, match=r"^video options apply to folders of videos; the built-in 'moving-digits'"):
        load_dataset("moving-digits", video={"frames": 4})


def test_config_options_make_a_folder_a_video_folder(tmp_path):
    write_gif(_frames(8), tmp_path / "a.gif", fps=10)
    cfg = load_config("tiny", [f"data.source={str(tmp_path)!r}", "data.resolution=8", "data.options.frames=4",
                               "data.options.stride=2", "data.options.fps=20"])
    ds = build_dataset(cfg)
    assert ds.sample_shape == (1, 4, 8, 8) and ds.fps == 10 and len(ds) == 2  # 0.8 s at 20 fps: 16 frames, clips of 8
    for override, match in [("data.options.frame=4", r"^unknown key data\.options\.frame for the folder .*: a folder takes the "
                                                     r"video clip options frames, stride, clip_every, fps"),
                            ("data.options.stride=0", r"^data\.options: stride must be an integer >= 1"),
                            ("data.sample_rate=8000", r"^data\.sample_rate = 8000 applies to audio data; data\.options makes")]:
        with pytest.raises(ConfigError, match=match):
            load_config("tiny", [f"data.source={str(tmp_path)!r}", "data.options.frames=4", override])
    cfg = load_config("video-folder", [f"data.source={str(tmp_path)!r}"])
    assert cfg.data.options == {"frames": 16, "stride": 1, "fps": 10}
