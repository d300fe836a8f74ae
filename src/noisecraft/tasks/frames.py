"""Video prediction and interpolation as inpainting in time: whole frames are the known pixels.

A clip (B, C, T, H, W) with frames `keep` given is completed by `inpaint` (RePaint for a plain
model, one pass for a mask-conditioned one) under the mask that is 1 on every pixel of a kept frame
and 0 elsewhere. This is the zero-shot route of Video Diffusion Models (Ho et al. 2022, Sec. 3.1:
conditional sampling by replacement, with RePaint's resampling to harmonize the halves); the
kept frames come back exactly (the last step lands on σ = 0 where the known half is the input).

    predict_frames(den, clips, 4, ...)            keep frames 0..3, generate the rest
    inpaint_frames(den, clips, (0, 15), ...)      keep frames 0 and 15 (interpolation)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import torch
from torch import Tensor

from .inpaint import inpaint

__all__ = ["check_keep_frames", "parse_keep_frames", "frame_mask", "read_kept_frames", "inpaint_frames", "predict_frames"]


def check_keep_frames(keep: Sequence[int], frames: int) -> tuple[int, ...]:
    """The kept frame indices, sorted, or a ValueError naming the bad index and what is valid.

    Valid: distinct integers in 0..frames-1, at least one kept and at least one left to generate."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"clips need at least 2 frames to keep some and generate others, got {frames!r}")
    seen: set[int] = set()
    for k in keep:
        if isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"frame index {k!r} is not an integer; valid: 0..{frames - 1}")
        if not 0 <= k < frames:
            raise ValueError(f"frame {k} is out of range for clips of {frames} frames; valid: 0..{frames - 1}")
        if k in seen:
            raise ValueError(f"frame {k} is listed twice; give each kept frame once")
        seen.add(k)
    if not seen:
        raise ValueError(f"no frame to keep; give at least one index in 0..{frames - 1}")
    if len(seen) == frames:
        raise ValueError(f"all {frames} frames are kept, so there is nothing to generate; leave at least one out")
    return tuple(sorted(seen))


def parse_keep_frames(text: str, frames: int) -> tuple[int, ...]:
    """'0,15' -> (0, 15), checked by `check_keep_frames` (ValueError naming the bad item)."""
    items = [s.strip() for s in str(text).split(",")]
    try:
        keep = [int(s) for s in items]
    except ValueError:
        raise ValueError(f"--keep {text!r} is not a comma-separated list of frame indices (e.g. 0,15); "
                         f"valid indices: 0..{frames - 1}") from None
    return check_keep_frames(keep, frames)


def frame_mask(shape: Sequence[int], keep: Sequence[int]) -> Tensor:
    """The known-pixel mask (1, T, H, W) float of a clip shape (C, T, H, W): 1 on the kept frames.

    One mask for all channels and clips (`inpaint` broadcasts it; a mask-conditioned model takes it)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"a clip shape is (C, T, H, W), got {shape}")
    _, t, h, w = shape
    mask = torch.zeros(1, t, h, w)
    mask[:, list(check_keep_frames(keep, t))] = 1.0
    return mask


def read_kept_frames(modality: Any, path: str, shape: Sequence[int], keep: Sequence[int], *,
                     scale: int | None = None) -> tuple[Tensor, Tensor]:
    """(clip (C, T, H, W), known mask (1, T, H, W)) for predicting / interpolating from a video file:
    only its first max(keep) + 1 frames are read (by `modality`, as the run's data: frame rate,
    channels, the frame size or `scale` times it); frames not kept are 0. The CLI and the web app share it."""
    c, t, h, w = (int(s) for s in shape)
    known = frame_mask((c, t, h, w), keep)  # checks keep first: no file is read for a bad one
    need = max(keep) + 1
    part = modality.read(path, (c, need, h, w), scale=scale)
    clip = torch.zeros(c, t, h, w)
    clip[:, :need] = part
    return clip * known, known


def inpaint_frames(denoiser: Callable[..., Tensor], clips: Tensor, keep: Sequence[int], **kwargs: Any) -> Tensor:
    """Generate every frame of `clips` (B, C, T, H, W) not in `keep`; the kept frames are returned exactly.

    kwargs go to `inpaint` (method, solver, nfe, resample_steps, generator, conditioning, ...)."""
    if not isinstance(clips, Tensor) or clips.ndim != 5:
        raise ValueError(f"clips must be a tensor (B, C, T, H, W), got {getattr(clips, 'shape', type(clips).__name__)}")
    return inpaint(denoiser, clips, frame_mask(clips.shape[1:], keep).to(clips.device), **kwargs)


def predict_frames(denoiser: Callable[..., Tensor], clips: Tensor, keep: int, **kwargs: Any) -> Tensor:
    """Keep the first `keep` frames of `clips` (B, C, T, H, W) and generate the rest (1 <= keep < T)."""
    t = clips.shape[2] if isinstance(clips, Tensor) and clips.ndim == 5 else 0
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep < max(t, 2):
        raise ValueError(f"keep {keep!r} is out of range for clips of {t} frames; valid: 1..{t - 1} (keep the first K "
                         "frames, generate the rest)")
    return inpaint_frames(denoiser, clips, range(keep), **kwargs)

