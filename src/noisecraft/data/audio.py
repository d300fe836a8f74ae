"""An audio-folder dataset: every WAV / FLAC / OGG file under a folder, decoded eagerly to mono clips.

* Files, order and labels follow the image folders' rules (`data.folders`): recursive, hidden
  entries ignored, sorted by relative path; first-level sub-folders are the classes.
* Decoding (`noisecraft.io.audio`, shared with the audio modality, so a training clip and a task
  input decode alike): the channels are averaged to mono, the clip is resampled to `sample_rate`
  (default 8000 Hz) with a polyphase FIR (`scipy.signal.resample_poly`), then cut to its first
  `resolution` samples or padded at the end with silence, and clipped to [-1, 1].
  `resolution=None` uses the shortest clip's length at `sample_rate` (read from the headers), so
  nothing is padded.
* Errors: an unreadable file (undecodable, truncated, empty, non-finite samples, a header claiming
  more than `io.audio.MAX_FRAMES` frames) raises `DataError` naming the first such file with
  `on_error="strict"`; with `on_error="skip"` it is left out and listed in `skipped_files`.

The dataset's modality is "audio" with `modality_options = {"sample_rate": rate}`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..io.audio import AUDIO_EXTENSIONS, AudioFileError, audio_info, check_rate, fit_length, read_audio, resample, to_mono
from ..modalities import DEFAULT_SAMPLE_RATE
from .dataset import AudioDataset, check_resolution
from .folders import Skips, folder_classes, folder_files, list_files

__all__ = ["AUDIO_EXTENSIONS", "list_audio_files", "load_audio_folder"]


def list_audio_files(root: str | os.PathLike) -> list[Path]:
    """Audio files under `root` (recursive, hidden entries ignored), sorted by relative POSIX path."""
    return list_files(root, AUDIO_EXTENSIONS)


def _shortest(files: list[Path], rate: int) -> tuple[int, dict[Path, AudioFileError]]:
    """The shortest clip's length at `rate` from the headers, and the files whose header failed."""
    lengths, failed = [], {}
    for f in files:
        try:
            frames, _, r = audio_info(f)
        except AudioFileError as e:
            failed[f] = e
            continue
        lengths.append(math.ceil(frames * rate / r))
    return (min(lengths) if lengths else 1), failed


def load_audio_folder(
    root: str | os.PathLike,
    *,
    resolution: int | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
    labels: bool = True,
    on_error: str = "strict",
    hflip: bool = False,
) -> AudioDataset:
    """Decode every audio file under `root` into an `AudioDataset` (N, 1, resolution), modality "audio".

    channels: None or 1 (clips are mixed to mono). hflip: recorded only (time reversal).
    """
    check_resolution(resolution)
    if channels not in (None, 1):
        raise ValueError(f"channels must be 1 or None for an audio folder (clips are mixed to mono), got {channels!r}")
    rate = DEFAULT_SAMPLE_RATE if sample_rate is None else check_rate(sample_rate)
    root = Path(root)
    skips = Skips(root, on_error, "audio file")
    files = folder_files(root, AUDIO_EXTENSIONS, "audio", "audio files")
    class_names = folder_classes(root, files, labels, "audio files")
    class_index = {c: i for i, c in enumerate(class_names)}
    header_error: dict[Path, AudioFileError] = {}
    if resolution is None:
        resolution, header_error = _shortest(files, rate)

    clips, label_list = [], []
    for f in files:
        try:
            if f in header_error:
                raise header_error[f]
            x, r = read_audio(f)  # (C, L) float64
        except AudioFileError as e:
            skips.fail(f, e.reason, e)
            continue
        clips.append(np.clip(fit_length(resample(to_mono(x), r, rate), resolution), -1.0, 1.0))
        label_list.append(class_index[f.relative_to(root).parts[0]] if class_names else 0)
    skips.finish(len(clips))
    data = torch.from_numpy(np.stack(clips).astype(np.float32))  # (N, 1, L)
    return AudioDataset(data, torch.tensor(label_list, dtype=torch.long), class_names=class_names, name=str(root),
                        hflip=hflip, skipped_files=skips.files, sample_rate=rate)
