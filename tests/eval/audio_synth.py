"""Test signals with a known pitch: band-limited additive tones and a tuned Karplus–Strong pluck."""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.signal import lfilter


def additive(f0: float, rate: int, length: int, amps, phases=None) -> np.ndarray:
    """Σ_k amps[k-1]·sin(2π k f0 t + phases[k-1]) over harmonics below Nyquist (band-limited)."""
    t = np.arange(length) / rate
    x = np.zeros(length)
    for k, a in enumerate(amps, 1):
        if k * f0 < rate / 2:
            x += a * np.sin(2 * np.pi * k * f0 * t + (0.0 if phases is None else phases[k - 1]))
    return x


def square(f0: float, rate: int, length: int, phase: float = 0.0) -> np.ndarray:
    """Band-limited square wave: odd harmonics with amplitude 4/(π k)."""
    k = np.arange(1, int(rate / 2 // f0) + 1)
    return additive(f0, rate, length, np.where(k % 2 == 1, 4 / (np.pi * k), 0.0), k * phase)


def sawtooth(f0: float, rate: int, length: int, phase: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth: every harmonic with amplitude 2/(π k)."""
    k = np.arange(1, int(rate / 2 // f0) + 1)
    return additive(f0, rate, length, 2 * (-1.0) ** (k + 1) / (np.pi * k), k * phase)


def pluck(f0: float, rate: int, length: int, rng: np.random.Generator, gain: float = 0.999) -> np.ndarray:
    """Karplus–Strong string (Karplus & Strong 1983) tuned with an allpass (Jaffe & Smith 1983).

    Loop: delay z^-N, the two-point average (delay 1/2), an allpass (C + z^-1)/(1 + C z^-1) and a
    gain. C is solved so that the loop's phase delay at f0 is exactly rate/f0 samples, so the
    lowest mode sits at f0. Excited by N samples of zero-mean noise; the loop is one IIR filter.
    """
    period = rate / f0
    n = int(np.floor(period - 0.6))
    frac = period - n - 0.5  # the allpass's share of the delay, in (0.1, 1.1)
    w = 2 * np.pi * f0 / rate

    def phase_delay_error(c: float) -> float:
        h = (c + np.exp(-1j * w)) / (1 + c * np.exp(-1j * w))
        return -np.angle(h) / w - frac

    c = brentq(phase_delay_error, -0.99, 0.99)
    # Y = X / (1 - gain·AP(z)·(1 + z^-1)/2·z^-N), multiplied through by the allpass denominator.
    a = np.zeros(n + 3)
    a[0], a[1] = 1.0, c
    a[n:] -= gain * 0.5 * np.array([c, c + 1.0, 1.0])
    x = np.zeros(length)
    burst = rng.uniform(-1, 1, n)
    x[:n] = burst - burst.mean()
    return lfilter([1.0, c], a, x)


def fm_bell(f0: float, rate: int, length: int, rng: np.random.Generator, ratio: float = 1.4) -> np.ndarray:
    """An FM bell (Chowning 1973): carrier f0, modulator ratio·f0, index decaying from 1.5-2.5 (time
    constant 0.15 s, as in the notes data) under an exponential envelope. With ratio 1.4 the partials
    f0·|1 ± 1.4k| share only the period 5/f0; the carrier (the note) dominates once the index decays."""
    t = np.arange(length) / rate
    index = rng.uniform(1.5, 2.5) * np.exp(-t / 0.15)
    modulator = np.sin(2 * np.pi * ratio * f0 * t + rng.uniform(0, 2 * np.pi))
    return np.exp(-t / 0.4) * np.sin(2 * np.pi * f0 * t + index * modulator)


TOY_TIMBRES = ("sine", "square", "sawtooth", "noise")
TOY_NOTES = ("A3", "C#4", "E4", "A4")


TONE_KINDS = ("sine", "square", "sawtooth", "pluck", "weak fundamental")  # tone() also makes "bell"


def tone(kind: str, f0: float, rate: int, length: int, phase: float, rng: np.random.Generator) -> np.ndarray:
    """One test tone of TONE_KINDS at f0 (unnormalized); "weak fundamental": 26 dB under the 2nd
    harmonic, odd harmonics present (the octave-error trap); "bell": `fm_bell`. pluck / weak fundamental /
    bell draw from rng."""
    if kind == "sine":
        return np.sin(2 * np.pi * f0 * np.arange(length) / rate + phase)
    if kind == "square":
        return square(f0, rate, length, phase)
    if kind == "sawtooth":
        return sawtooth(f0, rate, length, phase)
    if kind == "pluck":
        return pluck(f0, rate, length, rng)
    if kind == "bell":
        return fm_bell(f0, rate, length, rng)
    return additive(f0, rate, length, [0.05, 1.0, 0.6, 0.4, 0.3], rng.uniform(0, 2 * np.pi, 5))


def toy_notes(n: int, rate: int = 8000, length: int = 4096, seed: int = 0, timbre: str | None = None, labels=None):
    """A small labelled note set: 4 timbres × 4 notes = 16 classes "TIMBRE:NOTE", balanced.

    Each clip: random phase, amplitude 0.3-0.9, exponential decay (time constant 0.2-2 s) and a
    faint noise floor (-50 dB re full scale). "noise" is white noise through a two-pole resonator
    at the note (bandwidth 15 % of it): a pitch-coloured burst with no period. timbre forces one
    timbre for every clip (the labels still say which timbre was asked for). labels: the class of
    each clip (default: balanced, shuffled).
    Returns (waves (n, 1, L) float32 tensor, labels (n,) int64 tensor, class_names).
    """
    import torch
    from scipy.signal import lfilter

    from noisecraft.data.note_names import midi_to_hz, note_to_midi

    names = [f"{t}:{m}" for t in TOY_TIMBRES for m in TOY_NOTES]
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(names)) if labels is None else np.asarray(labels, dtype=np.int64)
    t = np.arange(length) / rate
    out = np.empty((n, length))
    for i, c in enumerate(labels):
        kind, note = names[c].split(":")
        kind = timbre or kind
        f0 = float(midi_to_hz(note_to_midi(note)))
        phase = rng.uniform(0, 2 * np.pi)
        if kind == "sine":
            x = np.sin(2 * np.pi * f0 * t + phase)
        elif kind == "square":
            x = square(f0, rate, length, phase)
        elif kind == "sawtooth":
            x = sawtooth(f0, rate, length, phase)
        else:
            r = np.exp(-np.pi * 0.15 * f0 / rate)
            x = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f0 / rate), r * r], rng.standard_normal(length))
        x = x / np.abs(x).max() * np.exp(-t / rng.uniform(0.2, 2.0)) * rng.uniform(0.3, 0.9)
        out[i] = x + rng.standard_normal(length) * 10 ** (-50 / 20)
    return torch.from_numpy(out[:, None, :]).float(), torch.from_numpy(labels).long(), names
