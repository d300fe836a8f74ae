"""Video files: GIF through Pillow (no extra needed), MP4 through imageio-ffmpeg, and folders of frames.

* `write_gif(frames, path, fps=, scale=)`: uint8 frames (T, H, W, C), C = 1 or 3, as a GIF that
  loops forever, atomically (`noisecraft.io.images.save_gif`). Gray frames are stored exactly; RGB
  frames go through Pillow's per-frame 256-colour palette, exact when a frame has at most 256
  distinct colours. Pillow merges a frame identical to the previous one into it (one GIF frame
  shown for twice the time); readers here undo that by timing (below).
* `write_mp4(frames, path, fps=)`: H.264 in yuv420p (what every player opens) at constant rate
  `fps`, CRF 10 (near lossless), written to a hidden temp file in the target folder and moved into
  place, so it is atomic like every writer. yuv420p needs even sizes: callers enlarge odd frames.
* `read_frames(path, fps)`: a GIF, a video file (MP4, MOV, WebM, MKV, AVI; via ffmpeg) or a folder
  of image files (in natural name order, `frame_files`) -> uint8 frames (N, H, W, 1 or 3) **at `fps`**: the clip's own
  timeline (GIF frame durations, the video's frame rate, 1 / fps per image of a folder) is sampled
  at the middle of every 1 / fps period, taking the frame shown then (nearest, no blending). A file
  at `fps` comes back frame for frame; one at another rate is resampled in time. `max_frames`
  stops decoding early (the decoder never reads further than needed).

Missing, unreadable, empty or oversized files (Pillow's `MAX_IMAGE_PIXELS` per frame) are a
`DataError` naming the file; MP4 without imageio-ffmpeg is an `FFmpegMissing` (a `DataError`) with
the one line that says how to install it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .files import atomic_output
from .images import save_gif
from .readers import DataError, _normalize, _open, _why, decode_image

__all__ = ["GIF_EXTENSIONS", "FRAME_EXTENSIONS", "FFMPEG_EXTENSIONS", "VIDEO_EXTENSIONS", "FFMPEG_HINT", "FFmpegMissing", "ffmpeg_exe",
           "write_gif", "write_mp4", "read_frames", "frame_indices", "frame_files", "natural_key", "GIF_FPS"]

GIF_EXTENSIONS = (".gif",)
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # the image files of a folder of frames
FFMPEG_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi")
VIDEO_EXTENSIONS = GIF_EXTENSIONS + FFMPEG_EXTENSIONS
# GIF stores frame durations in 1/100 s: these rates are a whole number of centiseconds per frame.
GIF_FPS = (1, 2, 4, 5, 10, 20, 25, 50)
FFMPEG_HINT = "pip install 'noisecraft[video]' (imageio-ffmpeg, which bundles ffmpeg; GIF needs nothing extra)"
MP4_CRF = 10  # x264 constant rate factor: 0 lossless .. 51 worst; 10 is visually lossless
MAX_DECODED_FRAMES = 100_000  # a clip claiming more is refused instead of decoded


class FFmpegMissing(DataError):
    """MP4 (any ffmpeg format) was asked for but imageio-ffmpeg is not installed."""


def ffmpeg_exe() -> str:
    """The ffmpeg program imageio-ffmpeg ships, or FFmpegMissing with the install hint."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FFmpegMissing(f"MP4 files need imageio-ffmpeg, which is not installed: {FFMPEG_HINT}") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:  # installed without a usable binary
        raise FFmpegMissing(f"imageio-ffmpeg found no ffmpeg program ({e}); {FFMPEG_HINT}") from None


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3) \
            or 0 in frames.shape:
        what = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames must be a non-empty uint8 array (T, H, W, C) with C = 1 or 3, got {what}")
    return frames


def _gif_duration_ms(fps: int) -> int:
    if isinstance(fps, bool) or fps not in GIF_FPS:
        raise ValueError(f"fps {fps!r} cannot be stored in a GIF exactly; valid: {', '.join(map(str, GIF_FPS))} "
                         "(a whole number of 1/100 s per frame)")
    return 1000 // fps


def write_gif(frames: np.ndarray, path: str | os.PathLike, *, fps: int, scale: int = 1) -> Path:
    """uint8 (T, H, W, C) -> a looping GIF at `fps` (one of `GIF_FPS`), enlarged `scale` times."""
    frames = _check_frames(frames)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0  # (T, C, H, W), exact grid
    return save_gif(list(x), path, duration_ms=_gif_duration_ms(fps), scale=scale, loop=0)


def write_mp4(frames: np.ndarray, path: str | os.PathLike, *, fps: int) -> Path:
    """uint8 (T, H, W, C) with even H and W -> H.264 MP4 (yuv420p, CRF `MP4_CRF`) at `fps`, atomically."""
    frames = _check_frames(frames)
    path = Path(path)
    t, h, w, c = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"MP4 (yuv420p) needs even frame sizes, got {w}x{h}; enlarge the frames first")
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or not 1 <= fps <= 240:
        raise ValueError(f"fps must be an integer in 1..240, got {fps!r}")
    ffmpeg_exe()
    import imageio_ffmpeg

    rgb = np.ascontiguousarray(np.repeat(frames, 3, axis=-1) if c == 1 else frames)
    with atomic_output(path, keep_suffix=True) as tmp:  # ffmpeg picks the container from the suffix
        writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=int(fps), codec="libx264", quality=None,
                                             macro_block_size=1, output_params=["-crf", str(MP4_CRF)])
        writer.send(None)  # start ffmpeg
        for f in rgb:
            writer.send(f)
        writer.close()
    return path


def frame_indices(durations_ms: list[float], fps: int) -> list[int]:
    """Which source frame is shown at the middle of each 1/fps period of a clip whose frames last
    `durations_ms` (0 or missing = one period): one index per whole period the clip covers, at least one."""
    period = 1000.0 / fps
    d = np.array([period if not v or v <= 0 else float(v) for v in durations_ms], dtype=np.float64)
    ends = np.cumsum(d)
    n = max(1, int(math.floor(ends[-1] / period + 1e-6)))
    mids = (np.arange(n) + 0.5) * period
    return np.minimum(np.searchsorted(ends, mids, side="right"), len(d) - 1).tolist()


def _gif_frames(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    with _open(path) as img:
        for i in range(min(getattr(img, "n_frames", 1), MAX_DECODED_FRAMES)):
            img.seek(i)
            img.load()
            yield np.ascontiguousarray(_normalize(img)), float(img.info.get("duration") or 0)


def _ffmpeg_frames(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    ffmpeg_exe()
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta: dict[str, Any] = next(gen)
        w, h = (int(v) for v in meta["size"])
        if w * h > (Image.MAX_IMAGE_PIXELS or 1 << 62):
            raise DataError(f"frames of {w}x{h} exceed Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS}")
        fps = float(meta.get("fps") or 0)
        period = 1000.0 / fps if fps > 0 else 0.0
        for k, raw in enumerate(gen):
            if k >= MAX_DECODED_FRAMES:
                break
            yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3), period
    finally:
        gen.close()


def natural_key(name: str) -> tuple:
    """Sort key ordering digit runs by value, so "f2.png" comes before "f10.png" (then by the plain
    name, so "f01" and "f1" keep one order)."""
    parts = re.split(r"(\d+)", name)  # text, digits, text, ...: every odd part is a digit run
    return tuple((int(p),) if i % 2 else (p.casefold(),) for i, p in enumerate(parts)), name


def frame_files(path: Path) -> list[Path]:
    """The frame images of the folder `path` (FRAME_EXTENSIONS, hidden files ignored) in natural name order."""
    files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def _folder_frames(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    files = frame_files(path)
    if not files:
        raise DataError(f"the folder holds no image files ({', '.join(FRAME_EXTENSIONS)})")
    for f in files[:MAX_DECODED_FRAMES]:
        try:
            yield decode_image(f), 0.0
        except Exception as e:  # noqa: BLE001 - any decoder failure: name the frame file
            raise DataError(f"frame {f.name!r}: {_why(e)}") from e


def _source(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    if path.is_dir():
        return _folder_frames(path)
    suffix = path.suffix.lower()
    if suffix in GIF_EXTENSIONS:
        return _gif_frames(path)
    if suffix in FFMPEG_EXTENSIONS:
        return _ffmpeg_frames(path)
    raise DataError(f"video {str(path)!r} is not a GIF, a video file ({', '.join(FFMPEG_EXTENSIONS)}) or a folder of frames")


def read_frames(path: str | os.PathLike, fps: int, *, max_frames: int | None = None,
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """The clip at `path` as frames at `fps` (see the module docstring): a list of uint8 (H, W) gray or
    (H, W, 3) RGB arrays, the first `max_frames` of them when given. DataError naming the file.
    `transform` is applied to each frame as it is decoded (e.g. a resize), so a long video is never
    held in memory at its own size."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"video {str(path)!r} does not exist")
    frames: list[np.ndarray] = []
    durations: list[float] = []
    first: tuple[int, ...] = ()
    try:
        for frame, duration in _source(path):
            if frames and frame.shape != first:
                raise DataError(f"frame {len(frames)} is {frame.shape[1]}x{frame.shape[0]}, the first "
                                f"{first[1]}x{first[0]}: every frame must have one size")
            first = frame.shape
            frames.append(frame if transform is None else transform(frame))
            durations.append(duration)
            if max_frames is not None:  # stop once the clip's timeline covers max_frames periods
                if len(frame_indices(durations, fps)) >= max_frames:
                    break
    except (FFmpegMissing, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable file"
        raise DataError(f"cannot read video {str(path)!r}: {_why(e)}") from e
    if not frames:
        raise DataError(f"video {str(path)!r} holds no frames")
    idx = frame_indices(durations, fps)
    if max_frames is not None:
        idx = idx[:max_frames]
    return [frames[i] for i in idx]
