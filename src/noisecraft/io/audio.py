"""Audio files: WAV / FLAC / OGG through `soundfile` (libsndfile), and the sample-level helpers
every reader shares (mix to mono, resample, crop or pad).

* `write_wav(x, path, rate)`: (C, L) float in [-1, 1] -> 16-bit PCM WAV, written atomically.
  Values are clipped to [-1, 1] and quantized as round(x * 32768), capped at 32767: a value
  k / 32768 (k = -32768..32767) round-trips exactly, others within 0.5 / 32768 (+1 comes back as
  32767 / 32768).
* `read_audio(path)`: -> ((C, L) float64, rate). libsndfile scales integer PCM by 1 / 32768
  (16-bit), so what `write_wav` wrote reads back on the grid k / 32768. Every defect (missing,
  unreadable, empty, non-finite, longer than `MAX_FRAMES`, another extension) is an
  `AudioFileError` (a `DataError`) naming the file and the reason.
* `resample(x, rate_from, rate_to)`: polyphase resampling (`scipy.signal.resample_poly`, a
  Kaiser-windowed FIR) by the reduced ratio rate_to / rate_from.
* `fit_length(x, length)`: keep the first `length` samples, or pad the end with zeros (silence).

`soundfile` is the optional extra `noisecraft[audio]`; it is imported on first use, and its absence
is a one-line `DataError` saying how to install it.
"""

from __future__ import annotations

import io as _io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write
from .readers import DataError

__all__ = ["AUDIO_EXTENSIONS", "MAX_FRAMES", "AudioFileError", "write_wav", "read_audio", "audio_info", "to_mono",
           "resample", "fit_length", "check_rate"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MAX_FRAMES = 1 << 26  # ~25 minutes at 44.1 kHz: a longer (or a lying) header is refused before decoding
MIN_RATE, MAX_RATE = 1000, 384_000


class AudioFileError(DataError):
    """An audio file that cannot be read: `path` and the `reason` (one line)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read audio file {str(path)!r}: {reason}")
        self.path, self.reason = path, reason


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError:
        raise DataError("audio files need the soundfile package, which is not installed: "
                        "pip install 'noisecraft[audio]' (or pip install soundfile)") from None
    return soundfile


def check_rate(rate: Any, what: str = "sample_rate") -> int:
    """An integer sample rate in MIN_RATE..MAX_RATE Hz, else ValueError naming it."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"{what} must be an integer number of Hz in {MIN_RATE}..{MAX_RATE}, got {rate!r}")
    return int(rate)


def write_wav(x: np.ndarray, path: str | os.PathLike, rate: int) -> Path:
    """(C, L) samples in [-1, 1] -> a 16-bit PCM WAV at `rate` Hz (NaN/Inf refused, others clipped)."""
    sf = _soundfile()
    rate = check_rate(rate)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"audio to write must be (channels, samples), got shape {x.shape}")
    bad = int(x.size - np.isfinite(x).sum())
    if bad:
        raise ValueError(f"cannot write {str(path)!r}: the audio has {bad} non-finite sample(s) (NaN/Inf)")
    pcm = np.clip(np.rint(np.clip(x, -1.0, 1.0) * 32768.0), -32768, 32767).astype(np.int16)
    buf = _io.BytesIO()
    sf.write(buf, pcm.T, rate, format="WAV", subtype="PCM_16")  # soundfile wants (L, C)
    data = buf.getvalue()
    return atomic_write(path, lambda f: f.write(data))


def _check_file(path: Path) -> None:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioFileError(path, f"the extension {path.suffix!r} is not an audio format; valid: {', '.join(AUDIO_EXTENSIONS)}")
    if not path.is_file():
        raise AudioFileError(path, "it is not a file" if path.exists() else "it does not exist")


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(frames, channels, rate) from the file's header, without decoding; DataError if unreadable."""
    sf = _soundfile()
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 - libsndfile reports every defect as its own error type
        raise AudioFileError(path, _why(e)) from None
    if info.frames < 1 or info.channels < 1:
        raise AudioFileError(path, "it holds no samples")
    if info.frames > MAX_FRAMES:
        raise AudioFileError(path, f"it has {info.frames} frames; at most {MAX_FRAMES} are read")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioFileError(path, f"its sample rate {info.samplerate} Hz is outside {MIN_RATE}..{MAX_RATE}")
    return int(info.frames), int(info.channels), int(info.samplerate)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A WAV / FLAC / OGG file -> ((C, L) float64 in [-1, 1], sample rate in Hz)."""
    sf = _soundfile()
    path = Path(path)
    audio_info(path)  # the header checks, before any decoding
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)  # (L, C)
    except Exception as e:  # noqa: BLE001
        raise AudioFileError(path, _why(e)) from None
    if data.size == 0:
        raise AudioFileError(path, "it holds no samples")
    if not np.isfinite(data).all():
        raise AudioFileError(path, "it has non-finite samples (NaN/Inf)")
    return np.ascontiguousarray(data.T), int(rate)


def _why(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def to_mono(x: np.ndarray) -> np.ndarray:
    """(C, L) -> (1, L): the mean of the channels."""
    return x.mean(axis=0, keepdims=True)


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """(C, L) at rate_from -> (C, ceil(L * rate_to / rate_from)) at rate_to (polyphase FIR)."""
    if rate_from == rate_to:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(rate_from), int(rate_to))
    return resample_poly(x, int(rate_to) // g, int(rate_from) // g, axis=-1)


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """(C, L) -> (C, length): the first `length` samples, zero-padded at the end if shorter."""
    if x.shape[-1] >= length:
        return x[..., :length]
    pad = np.zeros((*x.shape[:-1], length - x.shape[-1]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=-1)
