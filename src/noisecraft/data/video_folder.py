"""A video-folder dataset: GIFs, video files and folders of frames under a folder, cut into clips of T frames.

* Videos: every `.gif` and every file ffmpeg reads (`.mp4 .mov .webm .mkv .avi`, through
  imageio-ffmpeg, the `video` extra) under the root, recursively, plus every **folder of frames**:
  a folder holding image files (`.png .jpg .jpeg .webp .bmp`) is one video, its frames in natural
  name order (`f2.png` before `f10.png`). A frame folder must hold no video files and no
  sub-folders (either would be ambiguous); other files (notes, JSON) are ignored, as are hidden
  files and folders. Videos are sorted by their path relative to the root, as image folders are.
* Labels follow the image folders' rule (`data.folders.folder_classes`): with `labels=True` and every
  video inside a first-level sub-folder, the sub-folder names are the classes; every clip of a video
  carries its video's label. Videos (or frame folders) directly in the root make the data
  unlabeled. A root that is itself a folder of frames is one unlabeled video.
* Time: every video is first decoded at `fps` frames per second by the reader that `noisecraft
  predict --video` uses (`io.video.read_frames`: the frame shown at the middle of each 1/fps period
  of the video's own timeline: GIF frame durations, the file's frame rate; each image of a frame
  folder is one frame). A clip is then T = `frames` of those frames taken every `stride` frames,
  spanning (T - 1) * stride + 1 decoded frames; clips start every `clip_every` decoded frames
  (default T * stride: consecutive clips that do not overlap and leave no frame out between them).
  A video of L decoded frames gives floor((L - span) / clip_every) + 1 clips (0 when L < span).
  The clips play in real time at fps / stride frames per second, which is the dataset's (and the
  run's) frame rate and so must be one a GIF stores exactly (`io.video.GIF_FPS`): e.g. fps 10 with
  stride 1, 2, 5 or 10, or fps 30 with stride 3 (10 fps).
* Space: each frame's centred square is resampled to `resolution` x `resolution` with Lanczos, as
  image folders do (`images.square_resize`), so videos (and frames of one frame folder) of
  different sizes mix freely; `resolution=None` uses the smallest shorter side of any frame, so
  nothing is upsampled. `channels=None` gives 1 when every frame of every clip is gray
  (stored gray, or RGB with R = G = B, as Pillow returns a gray GIF's later frames), else 3;
  conversions as image folders (ITU-R 601 luma, repetition). MP4 (yuv420p) rarely decodes to exact
  gray, so give channels=1 for gray MP4s.
* Errors: an unreadable video, or one with fewer decoded frames than a clip spans, raises `DataError`
  naming the file and why with `on_error="strict"`; with "skip" it is left out and listed in
  `skipped_files`. When no video is long enough, one `DataError` says so with the longest length.
  A missing imageio-ffmpeg is always an error (`FFmpegMissing`), never a skip.

Nothing is cached: like image and audio folders, the folder is decoded on every load. Each clip's
origin is in `dataset.clip_sources`: (video path relative to the root, first decoded frame).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..io.readers import _open, _to_channels, _why, decode_image
from ..io.video import FRAME_EXTENSIONS, GIF_FPS, VIDEO_EXTENSIONS, FFmpegMissing, frame_files, read_frames
from .dataset import DataError, check_channels, check_resolution, to_unit_range
from .folders import Skips, folder_classes
from .images import square_resize
from .video import VideoDataset, check_frames

__all__ = ["VIDEO_FOLDER_OPTIONS", "check_video_options", "clip_starts", "find_videos",
           "load_video_folder", "video_options"]

VIDEO_FOLDER_OPTIONS = ("frames", "stride", "clip_every", "fps")
MAX_DECODE_FPS = 240


def _positive(value: object, name: str, what: str, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or (hi and value > hi):
        valid = f"1..{hi}" if hi else ">= 1"
        raise ValueError(f"{name} must be an integer {valid} ({what}), got {value!r}")
    return int(value)


def check_video_options(frames: object = 16, stride: object = 1, clip_every: object = None,
                        fps: object = 10) -> tuple[int, int, int, int, int]:
    """(frames, stride, clip_every, fps, clip_fps) checked; ValueError naming the bad value and what is valid."""
    frames = check_frames(frames)
    stride = _positive(stride, "stride", "decoded frames from one clip frame to the next")
    fps = _positive(fps, "fps", "the rate videos are decoded at", MAX_DECODE_FPS)
    clip_every = frames * stride if clip_every is None else _positive(clip_every, "clip_every",
                                                                      "decoded frames from one clip's start to the next")
    if fps % stride or fps // stride not in GIF_FPS:
        valid = [s for s in range(1, fps + 1) if fps % s == 0 and fps // s in GIF_FPS]
        raise ValueError(f"stride {stride} at fps {fps} makes clips play at {fps / stride:.3g} frames per second, which a GIF "
                         f"cannot store; valid strides at fps {fps}: {', '.join(map(str, valid))} (fps / stride must be one "
                         f"of {', '.join(map(str, GIF_FPS))})")
    return frames, stride, clip_every, fps, fps // stride


def clip_starts(length: int, frames: int, stride: int, clip_every: int) -> list[int]:
    """First decoded frame of every clip of a video of `length` decoded frames (see the module docstring)."""
    span = (frames - 1) * stride + 1
    return list(range(0, length - span + 1, clip_every)) if length >= span else []


def find_videos(root: str | os.PathLike) -> list[Path]:
    """GIFs, ffmpeg video files and frame folders under `root` (recursive, hidden entries ignored),
    sorted by relative POSIX path. DataError for a missing root, none found, or an ambiguous folder."""
    root = Path(root)
    exts = ", ".join(VIDEO_EXTENSIONS)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"video folder {str(root)!r} {what}; expected a folder of videos ({exts}) or of frame folders")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = sorted(f for f in filenames if not f.startswith("."))
        images = [f for f in names if os.path.splitext(f)[1].lower() in FRAME_EXTENSIONS]
        videos = [f for f in names if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS]
        if images:
            if videos or dirnames:
                other = videos[0] if videos else dirnames[0] + "/"
                raise DataError(f"{dirpath!r} holds frame images (e.g. {images[0]!r}) and also {other!r}; a folder of "
                                f"frames is one video and must hold only its images: move the other entries out")
            found.append(Path(dirpath))
        found.extend(Path(dirpath, f) for f in videos)
    if not found:
        raise DataError(f"no videos found in {str(root)!r} (searched recursively for {exts} files and folders of "
                        f"frame images {', '.join(FRAME_EXTENSIONS)})")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _shorter_side(video: Path, fps: int) -> int:
    """The smallest shorter side of a video's frames (a frame folder: every frame's header; a file: its first frame)."""
    if video.is_dir():
        sides = []
        for f in frame_files(video):
            with _open(f) as img:
                sides.append(min(img.size))
    else:
        sides = [min(read_frames(video, fps, max_frames=1)[0].shape[:2])]
    if min(sides) < 1:
        raise DataError("a frame has no pixels")
    return min(sides)


def _read_video(video: Path, fps: int, resolution: int) -> list[np.ndarray]:
    """Every decoded frame of a video at `fps`, each resized to (r, r) or (r, r, 3) uint8."""
    if not video.is_dir():
        return read_frames(video, fps, transform=lambda a: square_resize(a, resolution))
    out = []
    for f in frame_files(video):
        try:
            out.append(square_resize(decode_image(f), resolution))
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder failure: name the frame file
            raise DataError(f"frame {f.name!r}: {_why(e)}") from e
    return out


def _is_gray(a: np.ndarray) -> bool:
    """A frame stored gray, or RGB with R = G = B (Pillow returns a gray GIF's later frames as RGB)."""
    return a.ndim == 2 or bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


def _reason(video: Path, e: Exception) -> str:
    """Why a video is unreadable, without read_frames' own "cannot read video PATH: " prefix."""
    why = _why(e)
    prefix = f"cannot read video {str(video)!r}: "
    return why[len(prefix):] if why.startswith(prefix) else why


def load_video_folder(
    root: str | os.PathLike,
    *,
    frames: int = 16,
    stride: int = 1,
    clip_every: int | None = None,
    fps: int = 10,
    resolution: int | None = None,
    channels: int | None = None,
    labels: bool = True,
    on_error: str = "strict",
    hflip: bool = False,
) -> VideoDataset:
    """Cut every video under `root` into clips -> `VideoDataset` (N, C, frames, r, r) at fps / stride
    frames per second (see the module docstring for the rules)."""
    frames, stride, clip_every, fps, clip_fps = check_video_options(frames, stride, clip_every, fps)
    check_resolution(resolution)
    check_channels(channels)
    root = Path(root)
    skips = Skips(root, on_error, "video")
    videos = find_videos(root)
    class_names = [] if videos == [root] else folder_classes(root, videos, labels, "videos")
    class_index = {c: i for i, c in enumerate(class_names)}

    failed: dict[Path, tuple[str, Exception]] = {}  # unreadable videos, reported in sorted order with the short ones

    def fail(video: Path, e: Exception) -> None:
        if isinstance(e, (FFmpegMissing, MemoryError)):
            raise e
        if on_error == "strict":
            skips.fail(video, _reason(video, e), e)  # raises
        failed[video] = (_reason(video, e), e)

    if resolution is None:  # the smallest shorter side, from headers / first frames only
        sides = []
        for v in videos:
            try:
                sides.append(_shorter_side(v, fps))
            except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable video"
                fail(v, e)
        resolution = min(sides) if sides else 1

    decoded: dict[Path, list[np.ndarray]] = {}
    for v in videos:
        if v not in failed:
            try:
                decoded[v] = _read_video(v, fps, resolution)
            except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable video"
                fail(v, e)

    span = (frames - 1) * stride + 1
    if decoded and all(len(f) < span for f in decoded.values()):
        longest = max(decoded, key=lambda v: len(decoded[v]))
        raise DataError(f"frames={frames} at stride={stride} needs {span} decoded frames per clip, but the longest video in "
                        f"{str(root)!r} ({str(longest)!r}) has {len(decoded[longest])} at fps {fps}; lower frames or stride")
    clips, label_list, sources = [], [], []
    for v in videos:
        if v in failed:
            skips.fail(v, *failed[v])
            continue
        f = decoded[v]
        starts = clip_starts(len(f), frames, stride, clip_every)
        if not starts:
            skips.fail(v, f"too short: {len(f)} decoded frames at fps {fps}, a clip of frames={frames} at stride={stride} "
                          f"spans {span}")
            continue
        rel = "." if v == root else v.relative_to(root).as_posix()
        for s in starts:
            clips.append(f[s:s + span:stride])
            label_list.append(class_index[v.relative_to(root).parts[0]] if class_names else 0)
            sources.append((rel, s))
    skips.finish(len(clips))

    if channels is None:
        channels = 1 if all(_is_gray(a) for clip in clips for a in clip) else 3
    stacked = np.stack([np.stack([_to_channels(a, channels) for a in clip]) for clip in clips])  # (N, T, r, r, C) uint8
    data = to_unit_range(torch.from_numpy(stacked).permute(0, 4, 1, 2, 3).contiguous())  # (N, C, T, r, r)
    ds = VideoDataset(data, torch.tensor(label_list, dtype=torch.long), fps=clip_fps, class_names=class_names,
                      name=str(root), hflip=hflip, skipped_files=skips.files)
    ds.clip_sources = sources
    return ds


def video_options(options: Mapping) -> dict:
    """A `data.options` / `load_dataset(video=)` mapping checked for unknown keys (ValueError naming them)."""
    bad = sorted(set(options) - set(VIDEO_FOLDER_OPTIONS))
    if bad:
        raise ValueError(f"unknown video folder option {bad[0]!r}; valid: {', '.join(VIDEO_FOLDER_OPTIONS)}")
    return dict(options)
