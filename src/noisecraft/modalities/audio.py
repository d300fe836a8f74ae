"""The audio modality: (C, L) waveforms in [-1, 1] with C = 1 (mono) or 2 (stereo) at a sample rate.

* `write(x, path)`: a 16-bit PCM WAV at `sample_rate` (`noisecraft.io.audio.write_wav`: values clipped
  to [-1, 1]; what was written reads back within 1/32768, exactly for values on the 16-bit grid).
* `read(path, (C, L))`: any WAV / FLAC / OGG file, mixed to mono (C = 1: the mean of its channels;
  C = 2: mono is repeated, stereo kept, more channels refused), resampled to `sample_rate`
  (polyphase FIR, `scipy.signal.resample_poly`), then cut to its first L samples or padded at the
  end with silence, and clipped to [-1, 1]. A file we wrote at the model's rate and length reads back
  unchanged, so what `noisecraft sample` writes is a valid task input.
* Previews: one log-magnitude spectrogram per sample (short-time Fourier transform with a Hann
  window of ~32 ms: `n_fft` = the largest power of two <= 0.032 * rate, and <= L / 8 so that
  short clips still get ~32 frames; hop n_fft / 4), low
  frequencies at the bottom, drawn with the magma colour map on the fixed range
  [-80 dB, 0 dB] relative to a full-scale sine (not per-sample, so previews can be compared);
  stereo channels are stacked. Panels are tiled in a grid like every modality's, enlarged by the
  display scale (nearest neighbour).

The sample rate is the modality's one option (`options()` -> {"sample_rate": ...}): an audio
dataset carries it, a run records it in run.json, and `get_modality("audio", options)` rebuilds the
same modality for sampling and tasks. `span_mask` turns a time span "START:END" (seconds) into the
known-sample mask of audio inpainting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.audio import check_rate, fit_length, read_audio, resample, to_mono, write_wav
from ..io.readers import DataError
from .array import panel_grid, tile, upscale
from .base import Modality, check_scale, to_float_cpu

__all__ = ["AudioModality", "DEFAULT_SAMPLE_RATE", "AUDIO_DISPLAY_SCALE", "DB_RANGE", "parse_span", "spectrogram_db"]

DEFAULT_SAMPLE_RATE = 8000
AUDIO_DISPLAY_SCALE = 2
DB_RANGE = 80.0  # previews show [-DB_RANGE, 0] dB relative to a full-scale sine
_LUT: np.ndarray | None = None
_SPAN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*:\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def _magma(u: np.ndarray) -> np.ndarray:
    """Values (...) in [0, 1] -> magma RGB (..., 3)."""
    global _LUT
    if _LUT is None:
        from matplotlib import colormaps  # colour tables only; no figure is drawn

        _LUT = np.asarray(colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3], dtype=np.float64)  # (256, 3)
    return _LUT[np.rint(np.clip(u, 0.0, 1.0) * 255).astype(np.int64)]


def spectrogram_db(x: np.ndarray, rate: int) -> np.ndarray:
    """(L,) waveform -> (F, T) magnitude in dB relative to a full-scale sine, row 0 = 0 Hz."""
    from scipy.signal import stft

    length = x.shape[-1]
    n_fft = 2 ** int(math.floor(math.log2(max(2.0, 0.032 * rate))))
    n_fft = max(2, min(n_fft, 2 ** int(math.floor(math.log2(max(2, length // 8))))))  # short clips: >= ~32 frames
    n_fft = min(n_fft, length) if length > 1 else 1
    # scaling="spectrum" divides by the window sum: a sine of amplitude A peaks at A/2, hence the 2.
    _, _, z = stft(np.nan_to_num(x.astype(np.float64)), fs=rate, window="hann", nperseg=n_fft,
                   noverlap=n_fft - max(1, n_fft // 4), scaling="spectrum")
    return 20.0 * np.log10(np.maximum(2.0 * np.abs(z), 1e-12))


def parse_span(span: str) -> tuple[float, float]:
    """"START:END" in seconds -> (start, end) with 0 <= start < end, else ValueError naming it."""
    m = _SPAN.match(span) if isinstance(span, str) else None
    if m is None:
        raise ValueError(f"span {span!r} is not valid; expected START:END in seconds with 0 <= START < END, e.g. 0.2:0.4")
    start, end = float(m.group(1)), float(m.group(2))
    if not start < end:
        raise ValueError(f"span {span!r} is empty or reversed; expected START < END (seconds), e.g. 0.2:0.4")
    return start, end


class AudioModality(Modality):
    name = "audio"
    ranks = (1,)
    file_ext = ".wav"
    display_scale = AUDIO_DISPLAY_SCALE
    eval_features = "audio-classifier"  # noisecraft.eval.audio_run: FD, KID, class/timbre/pitch accuracy, copies

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        self.sample_rate = check_rate(sample_rate)

    # --- options ------------------------------------------------------------------------------------
    def options(self) -> dict:
        return {"sample_rate": self.sample_rate}

    def configure(self, **options: object) -> "AudioModality":
        unknown = sorted(set(options) - {"sample_rate"})
        if unknown:
            raise ValueError(f"unknown audio modality option(s) {unknown}; valid: sample_rate")
        return AudioModality(options.get("sample_rate", self.sample_rate))  # type: ignore[arg-type]

    def shape_doc(self) -> str:
        return "(C, L) with C = 1 (mono) or 2 (stereo)"

    def _check_channels(self, shape: tuple[int, ...]) -> None:
        if shape[0] not in (1, 2):
            raise ValueError(f"audio sample shape {shape} is not valid: expected {self.shape_doc()}")

    # --- files --------------------------------------------------------------------------------------
    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        """16-bit PCM WAV at the sample rate; `scale` is checked but does not apply to data files."""
        self.check_sample(x)
        check_scale(scale, self.display_scale)
        return write_wav(to_float_cpu(x).numpy(), self.check_path(path), self.sample_rate)

    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None) -> Tensor:
        self.check_shape(shape)
        check_scale(scale, self.display_scale)
        c, length = (int(v) for v in shape)
        x, rate = read_audio(path)  # (C', L') float64; DataError naming the file
        if c == 1:
            x = to_mono(x)
        elif x.shape[0] == 1:
            x = np.repeat(x, 2, axis=0)
        elif x.shape[0] != 2:
            raise DataError(f"audio file {str(path)!r} has {x.shape[0]} channels; a stereo model reads 1 or 2")
        x = fit_length(resample(x, rate, self.sample_rate), length)
        return torch.from_numpy(np.clip(x, -1.0, 1.0).astype(np.float32))

    def span_mask(self, span: str, length: int) -> Tensor:
        """The known-sample mask (1, length) of inpainting the time span "START:END" (seconds) of a
        clip of `length` samples: 0 (regenerate) for samples round(START·rate) .. round(END·rate) - 1,
        1 (keep) elsewhere. ValueError when the span is malformed or leaves the clip."""
        start, end = parse_span(span)
        seconds = length / self.sample_rate
        if end > seconds + 0.5 / self.sample_rate:
            raise ValueError(f"span {span!r} ends after the clip, which is {seconds:g} s long ({length} samples at "
                             f"{self.sample_rate} Hz); valid: 0 <= START < END <= {seconds:g}")
        lo, hi = round(start * self.sample_rate), min(length, round(end * self.sample_rate))
        if hi <= lo:
            raise ValueError(f"span {span!r} is shorter than one sample at {self.sample_rate} Hz; give a longer span")
        known = torch.ones(1, length)
        known[:, lo:hi] = 0.0
        return known

    # --- previews -----------------------------------------------------------------------------------
    def preview_image(self, x: Tensor, *, nrow: int, scale: int | None = None) -> Tensor:
        return panel_grid(self, x, nrow=nrow, scale=scale)

    def panel(self, x: np.ndarray, s: int) -> np.ndarray:
        """(C, L) -> the spectrograms of its channels, stacked, as RGB (h, w, 3) in [0, 1]."""
        rows = []
        for ch in x:
            db = spectrogram_db(ch, self.sample_rate)[::-1]  # (F, T), high frequencies on top
            rows.append(_magma((db + DB_RANGE) / DB_RANGE))
        img = tile(rows, 1, gap=s)[s:-s, s:-s] if len(rows) > 1 else rows[0]
        return upscale(img, s)

    def __repr__(self) -> str:
        return f"AudioModality(sample_rate={self.sample_rate}, file_ext='.wav', display_scale={self.display_scale})"
