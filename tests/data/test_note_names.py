"""Note names <-> MIDI <-> Hz, and TIMBRE:NOTE class names."""

from __future__ import annotations

import numpy as np
import pytest

from noisecraft.data.note_names import (
    NoteNameError,
    class_midis,
    class_timbres,
    hz_to_cents_error,
    hz_to_midi,
    midi_to_hz,
    midi_to_note,
    note_class,
    note_to_midi,
    parse_note_class,
)


def test_reference_pitches():
    assert note_to_midi("A4") == 69 and midi_to_hz(69) == 440.0
    assert note_to_midi("C4") == 60 and note_to_midi("C-1") == 0 and note_to_midi("G9") == 127
    assert note_to_midi("C#5") == 73 and note_to_midi("B3") == 59
    assert midi_to_hz(81) == pytest.approx(880.0) and midi_to_hz(57) == pytest.approx(220.0)
    assert midi_to_hz(60) == pytest.approx(261.6255653, rel=1e-9)  # middle C


def test_round_trips():
    for m in range(0, 132):
        assert note_to_midi(midi_to_note(m)) == m
    m = np.linspace(20.0, 110.0, 37)
    np.testing.assert_allclose(hz_to_midi(midi_to_hz(m)), m, rtol=0, atol=1e-12)


def test_cents():
    assert hz_to_cents_error(440.0, 69) == pytest.approx(0.0, abs=1e-12)
    assert hz_to_cents_error(880.0, 69) == pytest.approx(1200.0)  # octave error
    assert hz_to_cents_error(midi_to_hz(69.5), 69) == pytest.approx(50.0)  # a quarter tone sharp
    assert hz_to_cents_error(440.0 * 2 ** (-10 / 1200), 69) == pytest.approx(-10.0)
    out = hz_to_cents_error(np.array([440.0, np.nan]), np.array([69, 69]))
    assert out[0] == 0.0 and np.isnan(out[1])


def test_class_names():
    assert parse_note_class("pluck:A4") == ("pluck", 69)
    assert parse_note_class("bell:C#5") == ("bell", 73)
    assert note_class("bell", 73) == "bell:C#5"
    names = ["pluck:A3", "bell:A3", "pluck:C#4"]
    np.testing.assert_array_equal(class_midis(names), [57, 57, 61])
    timbres, idx = class_timbres(names)
    assert timbres == ["pluck", "bell"] and idx.tolist() == [0, 1, 0]


@pytest.mark.parametrize("bad, match", [
    ("A", "not valid"), ("H4", "not valid"), ("a4", "not valid"), ("A10", "not valid"), ("Db4", "sharps only: write C#4"),
    ("E#4", "there is no E#"), ("B#3", "write C4"), ("A4 ", None),
])
def test_bad_note_names(bad, match):
    if match is None:  # surrounding spaces are tolerated
        assert note_to_midi(bad) == 69
        return
    with pytest.raises(NoteNameError, match=match):
        note_to_midi(bad)


@pytest.mark.parametrize("bad", ["pluckA4", "pluck:A4:x", ":A4", "pl uck:A4", "pluck:", "pluck:Bb4", 7])
def test_bad_class_names(bad):
    with pytest.raises(NoteNameError, match="class name"):
        parse_note_class(bad)
