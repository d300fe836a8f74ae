"""The built-in `spoken-digits` dataset: the words "zero" … "nine" spoken by the espeak-ng synthesizer.

Real speech, made on the spot by the `espeak-ng` program (Debian/Ubuntu: `apt-get install espeak-ng`;
formant synthesis, so every voice is small and deterministic). Each clip is one call

    espeak-ng -v ACCENT+VARIANT -p PITCH -s SPEED --stdout WORD

whose 16-bit WAV (22050 Hz) is resampled to `sample_rate` (default 8000 Hz, polyphase FIR), centred
on its energy (the clip's sample-index centroid weighted by x², so leading/trailing silence and
stop closures do not push the word off-centre), cut or zero-padded symmetrically to `resolution`
samples (default 8192 ≈ 1.02 s: a power of two for the 1-D U-Net) and scaled to a peak of 0.9
(voices differ in level by ~10 dB; the model should learn words, not levels). Clips are mono
(1, L), stored on the 16-bit grid.

* **Classes** (10): "zero" … "nine", label = the digit. Exactly balanced in every split.
* **Voices** (`VOICES`, 64): 8 English accents of espeak-ng (`ACCENTS`: American, British, RP,
  Scottish, Caribbean, Lancaster, West Midlands, New York) x 8 voice variants (`VARIANTS`: male and
  female variants and the Klatt synthesizer). A voice is an (accent, variant) pair.
* **Splits by voice**: "test" holds the 16 voices with (accent index + variant index) % 4 == 0 (a
  Latin square: every accent and every variant still occurs in training, but no test voice does),
  "train" the other 48; "all" = train then test. Each voice says each word `TAKES` = 4 times with a
  pitch (`-p`, 0-99 scale) and speed (`-s`, words per minute) drawn uniformly from `PITCH_RANGE` and
  `SPEED_RANGE` by a seeded generator (train seed 0, test seed 1): 1920 train and 640 test clips.
  The order is shuffled by the same generator.
* **Attributes**: `ds.voice` (index into `VOICES`), `ds.pitch`, `ds.speed` per clip.

The first load of a split runs espeak-ng once per clip (about 30 s for both splits on a 2-core
machine) and writes `<cache>/datasets/spoken-digits/<split>-<key>.safetensors` (cache:
$NOISECRAFT_CACHE, else ~/.cache/noisecraft; read through `io_safety`). The key is a SHA-256 of the format, the
espeak-ng version, the rate, the length and every (voice, word, pitch, speed) of the split, so
another espeak-ng, length or rate gives a new entry and a stale file is never read. A file that
cannot be read or does not match its key is regenerated with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import warnings
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from safetensors.numpy import save as st_save
from torch import Tensor

from ..io.audio import check_rate, resample
from ..io.files import atomic_write_bytes
from ..io_safety import read_safetensors
from ..runtime import cache_root
from .dataset import AudioDataset, DataError
from .synthetic import SPLIT_SEEDS, SYNTHETIC_SPLITS, check_size

__all__ = ["SPOKEN_DIGITS_VERSION", "DIGIT_WORDS", "ACCENTS", "VARIANTS", "VOICES", "SPLIT_VOICES", "TAKES",
           "PITCH_RANGE", "SPEED_RANGE", "SPOKEN_DIGITS_RATE", "SPOKEN_DIGITS_LENGTH", "ESPEAK_MISSING",
           "Utterance", "SpokenDigitsDataset", "espeak_version", "spoken_digits_plan", "synthesize",
           "load_spoken_digits"]

SPOKEN_DIGITS_VERSION = 1  # bump when anything below changes what a clip holds
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-us-nyc")
VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt")
VOICES = tuple(f"{a}+{v}" for a in ACCENTS for v in VARIANTS)
SPLIT_VOICES = {
    "train": tuple(f"{a}+{v}" for i, a in enumerate(ACCENTS) for j, v in enumerate(VARIANTS) if (i + j) % 4),
    "test": tuple(f"{a}+{v}" for i, a in enumerate(ACCENTS) for j, v in enumerate(VARIANTS) if not (i + j) % 4),
}
TAKES = 4  # clips per (voice, word)
PITCH_RANGE = (25, 75)  # espeak-ng -p, 0..99 (50 = the voice's own)
SPEED_RANGE = (125, 200)  # espeak-ng -s, words per minute (175 = its default)
SPOKEN_DIGITS_RATE = 8000
SPOKEN_DIGITS_LENGTH = 8192
MIN_RATE = 4000
PEAK = 0.9
PROGRAM = "espeak-ng"
ESPEAK_MISSING = "spoken-digits needs the espeak-ng program: apt-get install espeak-ng"
CACHE_FORMAT = "noisecraft-spoken-digits/1"


class Utterance(NamedTuple):
    """One clip to synthesize: the voice ("en-us+f1"), the word's label (0-9), pitch and speed."""

    voice: str
    label: int
    pitch: int
    speed: int

    def command(self, program: str) -> list[str]:
        return [program, "-v", self.voice, "-p", str(self.pitch), "-s", str(self.speed), "--stdout",
                DIGIT_WORDS[self.label]]


def _program() -> str:
    path = shutil.which(PROGRAM)
    if path is None:
        raise DataError(ESPEAK_MISSING)
    return path


def espeak_version(program: str | None = None) -> str:
    """"eSpeak NG text-to-speech: 1.51" (the first line of `espeak-ng --version`, without its data path)."""
    out = subprocess.run([program or _program(), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().splitlines()[0].split("Data at:")[0].strip() if out.stdout.strip() else ""


def spoken_digits_plan(split: str) -> list[Utterance]:
    """The utterances of "train" or "test" in dataset order: every voice of the split says every word
    `TAKES` times at seeded pitches and speeds, shuffled by the same generator."""
    if split not in SPLIT_VOICES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_VOICES)} here; got {split!r}")
    rng = np.random.Generator(np.random.PCG64(SPLIT_SEEDS[split]))
    items = [(v, w) for v in SPLIT_VOICES[split] for w in range(len(DIGIT_WORDS)) for _ in range(TAKES)]
    pitch = rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1, len(items))
    speed = rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1, len(items))
    order = rng.permutation(len(items))
    return [Utterance(items[i][0], items[i][1], int(pitch[i]), int(speed[i])) for i in order]


def _decode(data: bytes, u: Utterance) -> tuple[np.ndarray, int]:
    """espeak-ng's streamed 16-bit mono WAV -> (samples float64 in [-1, 1], rate)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError(f"{w.getnchannels()} channels of {8 * w.getsampwidth()} bits, not 16-bit mono")
            rate = w.getframerate()
            pcm = w.readframes(w.getnframes())  # the streamed header claims ~2^30 frames: read what is there
    except (wave.Error, EOFError, ValueError) as e:
        raise DataError(f"espeak-ng gave no usable WAV for {' '.join(u.command(PROGRAM))!r} ({e})") from None
    x = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    return x, rate


def _centre(x: np.ndarray, length: int) -> np.ndarray:
    """`length` samples centred on the energy centroid of x (zeros where x has none)."""
    e = x * x
    centre = float((np.arange(x.size) * e).sum() / e.sum())
    start = int(round(centre - length / 2))
    out = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, x.size)
    out[lo - start : hi - start] = x[lo:hi]
    return out


def _clip(u: Utterance, program: str, rate: int, length: int) -> np.ndarray:
    try:
        done = subprocess.run(u.command(program), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"espeak-ng failed for {' '.join(u.command(PROGRAM))!r}: {e}") from None
    if done.returncode != 0 or not done.stdout:
        why = done.stderr.decode(errors="replace").strip().splitlines()[:1] or [f"exit status {done.returncode}"]
        raise DataError(f"espeak-ng failed for {' '.join(u.command(PROGRAM))!r}: {why[0]} (is voice {u.voice!r} "
                        f"in this espeak-ng? `espeak-ng --voices=en`)")
    x, native = _decode(done.stdout, u)
    x = resample(x[None], native, rate)[0]
    if not np.any(x):
        raise DataError(f"espeak-ng produced silence for {' '.join(u.command(PROGRAM))!r}")
    x = _centre(x, length)
    return PEAK * x / np.abs(x).max()


def synthesize(plan: Sequence[Utterance], rate: int = SPOKEN_DIGITS_RATE, length: int = SPOKEN_DIGITS_LENGTH,
               *, workers: int = 4) -> np.ndarray:
    """The clips (N, L) int16 of `plan` at `rate` Hz: one espeak-ng call each (run `workers` at a time;
    the output order is the plan's, so the result does not depend on scheduling)."""
    program = _program()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        clips = list(pool.map(lambda u: _clip(u, program, rate, length), plan))
    return np.rint(np.stack(clips) * 32767.0).astype(np.int16) if clips else np.zeros((0, length), np.int16)


def _key(version: str, plan: Sequence[Utterance], rate: int, length: int) -> str:
    spec = {"format": CACHE_FORMAT, "version": SPOKEN_DIGITS_VERSION, "espeak": version, "rate": rate,
            "length": length, "peak": PEAK, "plan": [list(u) for u in plan]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path, key: str, n: int, length: int) -> np.ndarray:
    arrays, meta = read_safetensors(path, framework="np")  # validated header and offsets; no pickle
    if meta.get("key") != key or "x" not in arrays:
        raise ValueError("its key does not match")
    x = arrays["x"]
    if x.dtype != np.int16 or x.shape != (n, length):
        raise ValueError(f"it holds {x.dtype} {x.shape}, expected int16 {(n, length)}")
    return x


def _split_clips(split: str, rate: int, length: int, use_cache: bool) -> tuple[np.ndarray, list[Utterance]]:
    """(clips (N, L) int16, plan) of one split, from the cache when it holds them."""
    plan = spoken_digits_plan(split)
    program = _program()
    key = _key(espeak_version(program), plan, rate, length)
    path = cache_root() / "datasets" / "spoken-digits" / f"{split}-{key[:32]}.safetensors"
    if use_cache and path.is_file():
        try:
            return _read_cache(path, key, len(plan), length), plan
        except (OSError, ValueError) as e:  # WeightFileError is a ValueError
            warnings.warn(f"spoken-digits cache {str(path)!r} is unreadable ({e}); regenerating", RuntimeWarning,
                          stacklevel=3)
    x = synthesize(plan, rate, length)
    if use_cache:
        try:
            atomic_write_bytes(path, st_save({"x": x}, metadata={"format": CACHE_FORMAT, "key": key}))
        except OSError as e:
            warnings.warn(f"could not write the spoken-digits cache {str(path)!r} ({e}); continuing without it",
                          RuntimeWarning, stacklevel=3)
    return x, plan


class SpokenDigitsDataset(AudioDataset):
    """Spoken digits (N, 1, L), modality "audio", plus per clip `voice` (N,) int64 (index into
    `VOICES`), `pitch` and `speed` (N,) int64 (the espeak-ng settings). These stay with labels=False."""

    def __init__(self, data: Tensor, labels: Tensor | None, *, voice: Tensor, pitch: Tensor, speed: Tensor,
                 sample_rate: int, **kw) -> None:
        super().__init__(data, labels, sample_rate=sample_rate, **kw)
        self.voice, self.pitch, self.speed = voice, pitch, speed


def load_spoken_digits(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
    sample_rate: int | None = None,
    use_cache: bool = True,
) -> SpokenDigitsDataset:
    """`spoken-digits` as a `SpokenDigitsDataset` (N, 1, L), modality "audio" (see the module notes).

    resolution: the length L in samples (None: 8192). sample_rate: Hz (None: 8000). channels: None
    or 1. hflip: refused (a word played backwards is not a word). use_cache=False neither reads nor
    writes the cache. DataError (one line) when espeak-ng is not installed.
    """
    if channels not in (None, 1):
        raise ValueError(f"channels must be 1 or None for 'spoken-digits' (mono audio), got {channels!r}")
    if hflip:
        raise ValueError("hflip=True is not valid for 'spoken-digits': reversed in time a word is not a word; "
                         "pass hflip=False")
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SYNTHETIC_SPLITS)} for 'spoken-digits'; got {split!r}")
    rate = SPOKEN_DIGITS_RATE if sample_rate is None else check_rate(sample_rate)
    if rate < MIN_RATE:
        raise ValueError(f"sample_rate {rate} is too low for speech; valid: {MIN_RATE}..384000")
    length = check_size(resolution, SPOKEN_DIGITS_LENGTH)
    parts = [_split_clips(p, rate, length, use_cache) for p in (("train", "test") if split == "all" else (split,))]
    x = np.concatenate([p[0] for p in parts])
    plan = [u for p in parts for u in p[1]]

    def column(values: list[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.long)

    data = torch.from_numpy(x.astype(np.float32) / 32767.0)[:, None, :]  # (N, 1, L)
    return SpokenDigitsDataset(data, column([u.label for u in plan]) if labels else None,
                               voice=column([VOICES.index(u.voice) for u in plan]),
                               pitch=column([u.pitch for u in plan]), speed=column([u.speed for u in plan]),
                               sample_rate=rate, class_names=list(DIGIT_WORDS) if labels else None,
                               name="spoken-digits", hflip=False)
