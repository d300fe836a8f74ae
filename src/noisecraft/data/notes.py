"""The built-in `notes` dataset: synthetic musical notes, 4 timbres x 8 pitches (32 classes), mono audio.

Each example is (1, L) in [-1, 1] at `sample_rate` Hz (defaults: L = `resolution` = 4096 samples at
8000 Hz = 0.512 s; a power of two, so the 1-D U-Net halves it cleanly). The class `TIMBRE:NOTE`
(e.g. "pluck:A4", "bell:D#5") is label = timbre_index * 8 + pitch_index; `note_attributes(name)`
-> (timbre, MIDI number) and `midi_to_hz(m)` = 440 * 2**((m - 69) / 12) are what an evaluation
needs to check pitch and timbre.

Pitches (`NOTE_NAMES`): C, D#, F# and A of octaves 4 and 5, i.e. MIDI 60, 63, ..., 81 in steps of
three semitones (261.6 to 880 Hz): two octaves, every neighbour 300 cents away.

Timbres (`TIMBRES`), each under its own ADSR envelope (`ADSR`: linear attack, exponential decay to
the sustain level, exponential release after a gate time drawn uniformly in [0.2, 0.35] s):

* sine:  sin(2πft + φ) + 0.15·sin(4πft + φ2), random phases.
* pluck: a Karplus–Strong plucked string (Karplus & Strong 1983): one period of white noise fed
  into a delay loop of rate/f samples with the two-point loop filter (1 - S) + S·z^-1. The
  "decay stretching" S and a loss ρ (Jaffe & Smith 1983) give the fundamental a T60 of 2 s at every
  pitch (higher harmonics die sooner); the noise is softened by a [1/4, 1/2, 1/4] filter, and the fractional part of the delay is a linear interpolation, so the loop is tuned to f
  to about a cent (the filter's exact phase delay at f is subtracted).
* bell:  FM synthesis (Chowning 1973): sin(2πft + I(t)·sin(2π·1.4·ft)), an inharmonic modulator
  ratio of 1.4, index I(t) = I0·exp(-t / 0.15 s) with I0 up to 2.5 (lower for high notes, so the
  strong sidebands stay below Nyquist) times a random factor in [0.8, 1.2].
* brass: a band-limited sawtooth (harmonics k·f < 0.45·rate with amplitude 1/k) whose upper
  harmonics follow the envelope, a_k(t) = env(t)**(0.3·(k-1)) / k, so the note brightens as it swells.

Every note also gets a detuning uniform in ±`DETUNE_CENTS` cents, a peak amplitude ("velocity")
uniform in [0.5, 0.9] and white noise of std `NOISE_STD`; the result is clipped to [-1, 1].
The per-example frequency actually played is `dataset.f0` (with `dataset.midi`, `dataset.timbre`).

Splits (pinned; `NOTES_VERSION` is bumped if anything changes): "train" 2048 examples (seed 0),
"test" 512 (seed 1), "all" = train then test. Classes are balanced (each exactly n/32) and
shuffled. Generation is vectorized numpy (the plucked string loops over time, vectorized over
notes) from `numpy.random.Generator(PCG64)`; another length or rate draws other notes.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import Tensor

from ..io.audio import check_rate
from .dataset import AudioDataset
from .note_names import NoteNameError, midi_to_hz, note_to_midi
from .synthetic import SPLIT_SEEDS, SYNTHETIC_SPLITS, check_size

__all__ = ["NOTES_VERSION", "TIMBRES", "NOTE_NAMES", "NOTE_MIDI", "NOTES_CLASSES", "NOTES_SPLIT_SIZES",
           "NOTES_SAMPLE_RATE", "NOTES_LENGTH", "DETUNE_CENTS", "NOISE_STD", "ADSR", "NotesDataset",
           "load_notes", "note_attributes", "midi_to_hz", "generate_notes"]

NOTES_VERSION = 1
TIMBRES = ("sine", "pluck", "bell", "brass")
NOTE_NAMES = ("C4", "D#4", "F#4", "A4", "C5", "D#5", "F#5", "A5")
NOTE_MIDI = tuple(note_to_midi(n) for n in NOTE_NAMES)  # 60, 63, 66, 69, 72, 75, 78, 81
NOTES_CLASSES = tuple(f"{t}:{n}" for t in TIMBRES for n in NOTE_NAMES)
NOTES_SPLIT_SIZES = {"train": 2048, "test": 512}
NOTES_SAMPLE_RATE = 8000
MIN_NOTES_RATE = 4000
NOTES_LENGTH = 4096
DETUNE_CENTS = 10.0
NOISE_STD = 0.003
VELOCITY = (0.5, 0.9)
GATE_SECONDS = (0.2, 0.35)
# (attack s, decay time constant s, sustain level, release time constant s) per timbre
ADSR = {"sine": (0.01, 0.10, 0.7, 0.05), "pluck": (0.002, 0.5, 1.0, 0.04),
        "bell": (0.002, 0.25, 0.0, 0.10), "brass": (0.04, 0.08, 0.75, 0.05)}
PLUCK_T60 = 2.0
BELL_RATIO = 1.4


def note_attributes(class_name: str) -> tuple[str, int]:
    """"pluck:A4" -> ("pluck", 69); ValueError naming the valid classes otherwise."""
    timbre, _, note = class_name.partition(":") if isinstance(class_name, str) else ("", "", "")
    if timbre not in TIMBRES or note not in NOTE_NAMES:
        raise NoteNameError(f"{class_name!r} is not a notes class; valid: TIMBRE:NOTE with TIMBRE one of "
                         f"{', '.join(TIMBRES)} and NOTE one of {', '.join(NOTE_NAMES)} (e.g. 'pluck:A4')")
    return timbre, NOTE_MIDI[NOTE_NAMES.index(note)]


def _envelope(t: np.ndarray, gate: np.ndarray, adsr: tuple[float, float, float, float]) -> np.ndarray:
    """ADSR (n, L) at times t (L,) for note-off times gate (n,)."""
    a, d, s, r = adsr

    def held(u: np.ndarray) -> np.ndarray:
        return np.where(u < a, u / a, s + (1.0 - s) * np.exp(-np.maximum(u - a, 0.0) / d))

    tt = t[None, :]
    g = gate[:, None]
    return np.where(tt < g, held(tt), held(g) * np.exp(-(tt - g) / r))


def _pluck(f: np.ndarray, excitation: np.ndarray, rate: int, length: int) -> np.ndarray:
    """Karplus–Strong strings (n, L) at frequencies f (n,), excited by one period of `excitation` (n, L)."""
    n = f.shape[0]
    delay = rate / f  # loop delay in samples, (n,)
    w = 2.0 * np.pi * f / rate
    per_period = 10.0 ** (-3.0 / (f * PLUCK_T60))  # gain per trip round the loop for a T60 of PLUCK_T60
    # Decay stretching (Jaffe & Smith 1983): |(1-S) + S e^{-jw}|^2 = 1 - 4S(1-S) sin^2(w/2) = per_period^2.
    c = (1.0 - per_period**2) / (4.0 * np.sin(w / 2.0) ** 2)
    stretch = np.clip((1.0 - np.sqrt(np.clip(1.0 - 4.0 * c, 0.0, None))) / 2.0, 0.05, 0.5)
    gain = np.abs((1.0 - stretch) + stretch * np.exp(-1j * w))
    rho = np.minimum(1.0, per_period / gain)
    filter_delay = np.angle((1.0 - stretch) + stretch * np.exp(-1j * w)) / -w  # exact phase delay at f
    p = delay - filter_delay
    k = np.floor(p).astype(np.int64)
    fr = p - k
    taps = rho[:, None] * np.stack([(1 - stretch) * (1 - fr), (1 - stretch) * fr + stretch * (1 - fr), stretch * fr], 1)
    period = np.rint(delay).astype(np.int64)
    burst = np.arange(length)[None, :] < period[:, None]
    soft = 0.5 * excitation + 0.25 * (np.roll(excitation, 1, axis=1) + np.roll(excitation, -1, axis=1))  # a softer pluck
    drive = np.where(burst, soft, 0.0)
    drive = np.where(burst, drive - drive.sum(1, keepdims=True) / period[:, None], 0.0)  # no DC in the burst
    pad = int(k.max()) + 3
    y = np.zeros((n, pad + length))
    rows = np.arange(n)
    for i in range(length):  # y[i] = drive[i] + taps . (y[i-k], y[i-k-1], y[i-k-2])
        j = pad + i - k
        y[:, pad + i] = drive[:, i] + taps[:, 0] * y[rows, j] + taps[:, 1] * y[rows, j - 1] + taps[:, 2] * y[rows, j - 2]
    return y[:, pad:]


def _brass(f: np.ndarray, phase: np.ndarray, env: np.ndarray, t: np.ndarray, rate: int) -> np.ndarray:
    out = np.zeros(env.shape)
    for k in range(1, int(0.45 * rate / f.min()) + 1):
        on = (k * f < 0.45 * rate)[:, None]  # band-limited: no harmonic above 0.45 x rate
        out += on * np.sin(2 * np.pi * k * (f[:, None] * t[None, :] + phase[:, None])) * env ** (0.3 * (k - 1)) / k
    return out


def generate_notes(n: int, seed: int, length: int = NOTES_LENGTH, rate: int = NOTES_SAMPLE_RATE) -> dict[str, np.ndarray]:
    """n notes from `seed`: {"x": (n, 1, L) float32, "labels", "midi", "timbre" (n,) int64, "f0" (n,) float64}."""
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.permutation(np.arange(n) % len(NOTES_CLASSES))
    timbre, pitch = labels // len(NOTE_NAMES), labels % len(NOTE_NAMES)
    midi = np.asarray(NOTE_MIDI)[pitch]
    f0 = 440.0 * 2.0 ** ((midi + rng.uniform(-DETUNE_CENTS, DETUNE_CENTS, n) / 100.0 - 69.0) / 12.0)
    velocity = rng.uniform(*VELOCITY, n)
    gate = rng.uniform(*GATE_SECONDS, n)
    phases = rng.uniform(0.0, 1.0, (n, 2))
    bell_index = rng.uniform(0.8, 1.2, n)
    excitation = rng.uniform(-1.0, 1.0, (n, length))
    noise = rng.standard_normal((n, length)) * NOISE_STD

    t = np.arange(length) / rate
    x = np.zeros((n, length))
    for ti, name in enumerate(TIMBRES):
        sel = np.flatnonzero(timbre == ti)
        if sel.size == 0:
            continue
        f, ph, env = f0[sel], phases[sel], _envelope(t, gate[sel], ADSR[name])
        u = f[:, None] * t[None, :]  # cycles
        if name == "sine":
            wave = np.sin(2 * np.pi * (u + ph[:, :1])) + 0.15 * np.sin(2 * np.pi * (2 * u + ph[:, 1:]))
        elif name == "pluck":
            wave = _pluck(f, excitation[sel], rate, length)
        elif name == "bell":
            i0 = np.clip((0.45 * rate / f - 1.0) / BELL_RATIO - 1.0, 0.5, 2.5) * bell_index[sel]
            index = i0[:, None] * np.exp(-t[None, :] / 0.15)
            wave = np.sin(2 * np.pi * (u + ph[:, :1]) + index * np.sin(2 * np.pi * (BELL_RATIO * u + ph[:, 1:])))
        else:
            wave = _brass(f, ph[:, 0], env, t, rate)
        x[sel] = wave * env
    x *= velocity[:, None] / np.maximum(np.abs(x).max(1, keepdims=True), 1e-12)  # peak = velocity
    x = np.clip(x + noise, -1.0, 1.0)
    return {"x": x[:, None, :].astype(np.float32), "labels": labels.astype(np.int64), "midi": midi.astype(np.int64),
            "timbre": timbre.astype(np.int64), "f0": f0}


class NotesDataset(AudioDataset):
    """The notes as an `AudioDataset` (N, 1, L), plus per-example `midi` (N,)
    int64 (the requested note), `timbre` (N,) int64 (index into `TIMBRES`) and `f0` (N,) float64
    (Hz actually played, detuning included). These stay available with labels=False."""

    def __init__(self, data: Tensor, labels: Tensor | None, *, midi: Tensor, timbre: Tensor, f0: Tensor,
                 sample_rate: int, **kw) -> None:
        super().__init__(data, labels, sample_rate=sample_rate, **kw)
        self.midi, self.timbre, self.f0 = midi, timbre, f0


def load_notes(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
    sample_rate: int | None = None,
) -> NotesDataset:
    """`notes` as a `NotesDataset` (N, 1, L), modality "audio".

    resolution: the length L in samples (None: 4096). sample_rate: Hz (None: 8000); the notes are
    synthesized at that rate directly. channels: None or 1. labels: False drops the classes.
    hflip: refused (a note played backwards is not a note).
    """
    if channels not in (None, 1):
        raise ValueError(f"channels must be 1 or None for 'notes' (mono audio), got {channels!r}")
    if hflip:
        raise ValueError("hflip=True is not valid for 'notes': reversed in time a note is not a note; pass hflip=False")
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SYNTHETIC_SPLITS)} for 'notes'; got {split!r}")
    rate = NOTES_SAMPLE_RATE if sample_rate is None else check_rate(sample_rate)
    if rate < MIN_NOTES_RATE:
        raise ValueError(f"sample_rate {rate} is too low for notes up to 880 Hz and their harmonics; valid: {MIN_NOTES_RATE}..384000")
    length = check_size(resolution, NOTES_LENGTH)
    parts = [generate_notes(NOTES_SPLIT_SIZES[p], SPLIT_SEEDS[p], length, rate)
             for p in (("train", "test") if split == "all" else (split,))]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return NotesDataset(torch.from_numpy(cat["x"]), torch.from_numpy(cat["labels"]) if labels else None,
                        midi=torch.from_numpy(cat["midi"]), timbre=torch.from_numpy(cat["timbre"]),
                        f0=torch.from_numpy(cat["f0"]), sample_rate=rate,
                        class_names=list(NOTES_CLASSES) if labels else None, name="notes", hflip=False)
