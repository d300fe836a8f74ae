"""Note names, MIDI numbers and frequencies, and the `TIMBRE:NOTE` class names of note datasets.

Equal temperament with A4 = 440 Hz = MIDI 69 (the MIDI tuning standard):

    f = 440 · 2^((m − 69) / 12),    m = 12 · (octave + 1) + pitch class (C = 0 … B = 11),

so C4 (middle C) is MIDI 60 and C-1 is MIDI 0. Names use sharps only ("C#5", never "Db5") and one
octave digit (-1 … 9). A class name is `TIMBRE:NOTE`, e.g. "pluck:A4" or "bell:C#5".
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = [
    "NOTE_NAMES",
    "A4_HZ",
    "A4_MIDI",
    "NoteNameError",
    "note_to_midi",
    "midi_to_note",
    "midi_to_hz",
    "hz_to_midi",
    "hz_to_cents_error",
    "parse_note_class",
    "note_class",
    "class_midis",
    "class_timbres",
]

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
A4_HZ = 440.0
A4_MIDI = 69

_NOTE = re.compile(r"([A-G])(#?)(-1|[0-9])")
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}


class NoteNameError(ValueError):
    """A malformed note or class name; the message names the value and the valid form."""


def note_to_midi(name: str) -> int:
    """"A4" -> 69, "C#5" -> 73, "C-1" -> 0: sharps only, octave -1 … 9."""
    if not isinstance(name, str):
        raise NoteNameError(f"note name must be a string like 'A4' or 'C#5', got {name!r}")
    m = _NOTE.fullmatch(name.strip())
    if m is None:
        hint = ""
        flat = re.fullmatch(r"([A-G]b)(-1|[0-9])", name.strip())
        if flat and flat.group(1) in _FLATS:
            hint = f" (sharps only: write {_FLATS[flat.group(1)]}{flat.group(2)})"
        raise NoteNameError(f"note name {name!r} is not valid{hint}; expected a letter A-G, an optional '#' and an "
                            "octave -1..9, e.g. 'A4' or 'C#5'")
    letter, sharp, octave = m.groups()
    if sharp and letter in ("E", "B"):
        raise NoteNameError(f"note name {name!r} is not valid: there is no {letter}#; write "
                            f"{'F' if letter == 'E' else 'C'}{int(octave) + (letter == 'B')}")
    return 12 * (int(octave) + 1) + NOTE_NAMES.index(letter + sharp)


def midi_to_note(midi: int) -> str:
    """69 -> "A4"; the inverse of `note_to_midi` for integers 0 … 131."""
    if isinstance(midi, bool) or not isinstance(midi, (int, np.integer)) or not 0 <= midi <= 131:
        raise NoteNameError(f"MIDI note must be an integer in 0..131, got {midi!r}")
    return f"{NOTE_NAMES[int(midi) % 12]}{int(midi) // 12 - 1}"


def midi_to_hz(midi):
    """Equal-tempered frequency (Hz) of MIDI note numbers (fractional allowed); float or ndarray."""
    return A4_HZ * np.exp2((np.asarray(midi, dtype=np.float64) - A4_MIDI) / 12.0)[()]


def hz_to_midi(hz):
    """Fractional MIDI number of frequencies in Hz (> 0); float or ndarray."""
    return (A4_MIDI + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / A4_HZ))[()]


def hz_to_cents_error(f, midi):
    """1200 · log2(f / f_midi): how far f (Hz) is from the note, in cents (100 per semitone).

    Positive is sharp. An octave error is ±1200; NaN in f (unvoiced) stays NaN.
    """
    return (1200.0 * np.log2(np.asarray(f, dtype=np.float64) / midi_to_hz(midi)))[()]


def parse_note_class(name: str) -> tuple[str, int]:
    """"pluck:A4" -> ("pluck", 69): a `TIMBRE:NOTE` class name split into its timbre and MIDI note."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise NoteNameError(f"class name {name!r} is not valid; expected TIMBRE:NOTE with one ':', e.g. 'pluck:A4' "
                            "or 'bell:C#5'")
    timbre, note = name.split(":")
    if not timbre or timbre != timbre.strip() or any(c.isspace() for c in timbre):
        raise NoteNameError(f"class name {name!r} has no valid timbre before ':'; expected a word without spaces, "
                            "e.g. 'pluck:A4'")
    try:
        midi = note_to_midi(note)
    except NoteNameError as e:
        raise NoteNameError(f"class name {name!r}: {e}") from None
    return timbre, midi


def note_class(timbre: str, midi: int) -> str:
    """("pluck", 69) -> "pluck:A4"; the inverse of `parse_note_class`."""
    name = f"{timbre}:{midi_to_note(midi)}"
    parse_note_class(name)  # validates the timbre
    return name


def class_midis(class_names: Sequence[str]) -> np.ndarray:
    """MIDI note (K,) of each `TIMBRE:NOTE` class name."""
    return np.array([parse_note_class(c)[1] for c in class_names], dtype=np.int64)


def class_timbres(class_names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct timbres in order of first appearance, and each class's timbre index (K,)."""
    timbres = [parse_note_class(c)[0] for c in class_names]
    names = list(dict.fromkeys(timbres))
    return names, np.array([names.index(t) for t in timbres], dtype=np.int64)
