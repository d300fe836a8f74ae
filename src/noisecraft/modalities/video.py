"""The video modality: clips (C, T, H, W) in [-1, 1] with C = 1 (gray) or 3 (RGB) at a frame rate.

* `write(x, path)`: `.gif` (the modality's file format: Pillow, loops forever, no extra needed) or
  `.mp4` (H.264 via imageio-ffmpeg, `pip install 'noisecraft[video]'`; without it a one-line
  `FFmpegMissing` error says so), frames enlarged by the display scale (nearest neighbour), written
  atomically. GIF is exact for values on the 8-bit grid k/127.5 - 1 when every frame has at most 256
  colours (all gray clips); MP4 is lossy (within ~1/255 on average, see tests/modalities/test_video.py).
  An MP4 whose enlarged frames would have an odd side is enlarged twice as much (yuv420p needs even sides).
* `read(path, (C, T, H, W), start=0, stride=1, resize=False)`: a GIF, a video file (MP4, MOV, WebM,
  MKV, AVI) or a folder of frame images (in natural name order: f2 before f10), taken at the modality's frame rate
  (`noisecraft.io.video.read_frames`: a clip at another rate is resampled in time), then the T frames
  start, start + stride, ..., converted to C channels (RGB -> gray by ITU-R 601 luma, gray -> RGB by
  repetition). Frames of exactly (k*H, k*W) for an integer k >= 1 are reduced by k x k block means (so
  any display scale reads back exactly); with `resize=True` any other size is centre-cropped to the
  aspect H:W and resized (antialiased bilinear), otherwise refused. A clip with too few frames is a
  `DataError` naming how many it has and how many the read needs.
* Previews: one strip of the T frames per sample (true colours, gutters between frames), one sample
  per row (a strip is already T frames wide), enlarged by the display scale.

The frame rate is the modality's one option (`options()` -> {"fps": 10}): a video dataset carries
it, a run records it in run.json. It must be one of `GIF_FPS` (a whole number of 1/100 s per frame,
which GIF files store exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..io.images import to_uint8
from ..io.readers import DataError, _to_channels, to_unit_range
from ..io.video import GIF_FPS, read_frames, write_gif, write_mp4
from .array import panel_grid, tile, upscale
from .base import Modality, check_nrow, check_scale, to_float_cpu

__all__ = ["VideoModality", "VIDEO_DISPLAY_SCALE", "DEFAULT_FPS", "VIDEO_FILE_EXTS"]

VIDEO_DISPLAY_SCALE = 2
DEFAULT_FPS = 10
VIDEO_FILE_EXTS = (".gif", ".mp4")  # what `write` produces; `read` takes more (see the module docstring)


def check_fps(fps: object) -> int:
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or int(fps) not in GIF_FPS:
        raise ValueError(f"fps {fps!r} is not valid; valid: {', '.join(map(str, GIF_FPS))} "
                         "(frames per second: a whole number of 1/100 s per frame, as GIF stores it)")
    return int(fps)


def _check_index(value: object, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


class VideoModality(Modality):
    name = "video"
    ranks = (3,)
    file_ext = ".gif"
    display_scale = VIDEO_DISPLAY_SCALE
    eval_features = "video-motion"  # noisecraft.eval.video_run: frame accuracy, identity, trajectory residual, FVD
    also_writes = (".mp4",)  # `noisecraft sample` writes these beside every GIF (skipped, with a note, without ffmpeg)

    def __init__(self, fps: int = DEFAULT_FPS) -> None:
        self.fps = check_fps(fps)

    # --- options ------------------------------------------------------------------------------------
    def options(self) -> dict:
        return {"fps": self.fps}

    def configure(self, **options: object) -> "VideoModality":
        unknown = sorted(set(options) - {"fps"})
        if unknown:
            raise ValueError(f"unknown video modality option(s) {unknown}; valid: fps")
        return VideoModality(options.get("fps", self.fps))  # type: ignore[arg-type]

    def shape_doc(self) -> str:
        return "(C, T, H, W) with C = 1 (gray) or 3 (RGB)"

    def _check_channels(self, shape: tuple[int, ...]) -> None:
        if shape[0] not in (1, 3):
            raise ValueError(f"video sample shape {shape} is not valid: expected {self.shape_doc()}")

    def check_path(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix.lower() not in VIDEO_FILE_EXTS:
            raise ValueError(f"video files are written as {' or '.join(VIDEO_FILE_EXTS)}; got {str(path)!r}")
        return path

    # --- files --------------------------------------------------------------------------------------
    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        """One clip (C, T, H, W) in [-1, 1] -> `path` (.gif or .mp4), frames enlarged `scale` times."""
        self.check_sample(x)
        s = check_scale(scale, self.display_scale)
        path = self.check_path(path)
        frames = to_uint8(to_float_cpu(x).transpose(0, 1))  # (T, H, W, C) uint8
        if path.suffix.lower() == ".gif":
            return write_gif(frames, path, fps=self.fps, scale=s)
        h, w = frames.shape[1:3]
        if (s * h) % 2 or (s * w) % 2:
            s *= 2  # yuv420p needs even sides; read() accepts any integer enlargement
        return write_mp4(upscale_frames(frames, s), path, fps=self.fps)

    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None, start: int = 0,
             stride: int = 1, resize: bool = False) -> Tensor:
        """T frames start, start+stride, ... of the clip at `path` -> float32 (C, T, H, W) in [-1, 1].
        `scale` is checked only: frames of any integer multiple of (H, W) are reduced exactly."""
        self.check_shape(shape)
        check_scale(scale, self.display_scale)
        c, t, h, w = (int(v) for v in shape)
        start, stride = _check_index(start, "start", 0), _check_index(stride, "stride", 1)
        need = start + (t - 1) * stride + 1
        frames = read_frames(path, self.fps, max_frames=need)
        if len(frames) < need:
            raise DataError(f"video {str(path)!r} has {len(frames)} frames at {self.fps} fps; reading T={t} frames "
                            f"from frame {start} at stride {stride} needs {need}")
        clip = np.stack([_to_channels(frames[i], c) for i in range(start, need, stride)])  # (T, H', W', C) uint8
        x = to_unit_range(torch.from_numpy(clip)).permute(3, 0, 1, 2)  # (C, T, H', W')
        return fit_frames(x, h, w, resize=resize, path=path)

    # --- previews -----------------------------------------------------------------------------------
    def preview_image(self, x: Tensor, *, nrow: int, scale: int | None = None) -> Tensor:
        """One row per sample: its T frames side by side (`nrow` is checked but every strip is a row)."""
        check_nrow(nrow)
        return panel_grid(self, x, nrow=1, scale=scale)

    def panel(self, x: np.ndarray, s: int) -> np.ndarray:
        """(C, T, H, W) in [-1, 1] -> the frames side by side, RGB (h, w, 3) in [0, 1], `s` px gutters."""
        u = (np.clip(np.nan_to_num(x.astype(np.float64), nan=0.0), -1.0, 1.0) + 1.0) / 2.0
        if u.shape[0] == 1:
            u = np.repeat(u, 3, axis=0)
        frames = [upscale(u[:, k].transpose(1, 2, 0), s) for k in range(u.shape[1])]
        return tile(frames, len(frames), gap=s)[s:-s, s:-s]  # no outer border: the panel grid adds one

    def __repr__(self) -> str:
        return f"VideoModality(fps={self.fps}, file_ext='.gif', display_scale={self.display_scale})"


def upscale_frames(frames: np.ndarray, s: int) -> np.ndarray:
    """uint8 (T, H, W, C) -> (T, s*H, s*W, C) by pixel repetition."""
    return frames if s == 1 else np.repeat(np.repeat(frames, s, axis=1), s, axis=2)


def fit_frames(x: Tensor, h: int, w: int, *, resize: bool, path: str | Path) -> Tensor:
    """(C, T, H', W') -> (C, T, h, w): unchanged, k x k block means for H' = k*h and W' = k*w, or (with
    `resize`) centre-cropped to the aspect h:w and resized; ValueError naming the sizes otherwise."""
    got_h, got_w = x.shape[-2:]
    if (got_h, got_w) == (h, w):
        return x.contiguous()
    k = got_h // h
    if got_h % h == 0 and got_w == k * w:
        # float64 block means are exact for the constant blocks of a nearest-neighbour enlargement
        return F.avg_pool2d(x.to(torch.float64), k).to(torch.float32).contiguous()
    if not resize:
        raise ValueError(f"video {str(path)!r} has frames of {got_w}x{got_h}; valid: {w}x{h} or an integer multiple "
                         f"(k*{w})x(k*{h}), or read with resize=True")
    if got_h * w > got_w * h:  # too tall: crop rows
        ch, cw = max(1, round(got_w * h / w)), got_w
    else:
        ch, cw = got_h, max(1, round(got_h * w / h))
    top, left = (got_h - ch) // 2, (got_w - cw) // 2
    x = x[..., top:top + ch, left:left + cw]
    out = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)  # frames as the batch
    return out.clamp(-1.0, 1.0).contiguous()
