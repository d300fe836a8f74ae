"""The audio modality: 16-bit WAV round trips, reading any rate / channel count / format into the
model's (C, L), spectrogram previews, its sample-rate option, and the inpainting span mask."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from noisecraft.data import DataError
from noisecraft.io.audio import MAX_FRAMES, read_audio, write_wav
from noisecraft.modalities import DEFAULT_SAMPLE_RATE, AudioModality, get_modality
from noisecraft.modalities.audio import DB_RANGE, parse_span, spectrogram_db


def _sine(freq: float, rate: int, length: int, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(length) / rate)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    """Frequency of the largest spectral peak (Hann window, parabolic interpolation of the log magnitude)."""
    spec = np.log(np.abs(np.fft.rfft(x * np.hanning(len(x)))) + 1e-12)
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = spec[k - 1], spec[k], spec[k + 1]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(x)


def test_options_configure_and_registry():
    m = get_modality("audio")
    assert isinstance(m, AudioModality) and m.sample_rate == DEFAULT_SAMPLE_RATE == 8000
    assert m.options() == {"sample_rate": 8000} and m.ranks == (1,) and m.file_ext == ".wav"
    m16 = get_modality("audio", {"sample_rate": 16000})
    assert m16.sample_rate == 16000 and get_modality("audio").sample_rate == 8000  # the registry entry is unchanged
    with pytest.raises(ValueError, match=r"unknown audio modality option\(s\) \['rate'\]; valid: sample_rate"):
        get_modality("audio", {"rate": 8000})
    with pytest.raises(ValueError, match="sample_rate must be an integer number of Hz in 1000..384000, got 8000.5"):
        get_modality("audio", {"sample_rate": 8000.5})
    for shape in [(3, 64), (1, 8, 8), (0, 8)]:
        with pytest.raises(ValueError, match="audio sample shape"):
            m.check_shape(shape)


def test_wav_round_trip_is_within_half_a_16_bit_step(tmp_path):
    m = get_modality("audio")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1000, generator=g) * 2 - 1
    p = m.write(x, tmp_path / "a.wav")
    info = sf.info(str(p))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 1000, "PCM_16")
    y = m.read(p, (1, 1000))
    assert y.dtype == torch.float32 and y.shape == (1, 1000)
    assert (y - x).abs().max() <= 0.5 / 32768 + 1e-7
    # values on the 16-bit grid come back exactly; +1 is stored as 32767 and out-of-range values clip
    grid = torch.randint(-32768, 32768, (2, 300), generator=g).float() / 32768
    torch.testing.assert_close(m.read(m.write(grid, tmp_path / "s.wav"), (2, 300)), grid, atol=0, rtol=0)
    edge = torch.tensor([[1.0, -1.0, 3.0, -7.0, 0.0]])
    pcm, _ = sf.read(str(m.write(edge, tmp_path / "e.wav")), dtype="int16")
    assert pcm.tolist() == [32767, -32768, 32767, -32768, 0]


def test_write_refuses_non_finite_and_wrong_paths(tmp_path):
    m = get_modality("audio")
    with pytest.raises(ValueError, match="1 non-finite sample"):
        m.write(torch.tensor([[0.0, float("nan")]]), tmp_path / "a.wav")
    with pytest.raises(ValueError, match="audio files are .wav"):
        m.write(torch.zeros(1, 8), tmp_path / "a.flac")
    assert not list(tmp_path.iterdir())


def test_read_mixes_resamples_and_fits_the_length(tmp_path):
    m = get_modality("audio")  # 8 kHz
    rate, n = 16000, 16000
    left, right = _sine(440, rate, n, 0.4), _sine(1000, rate, n, 0.2)
    sf.write(str(tmp_path / "st.wav"), np.stack([left, right], 1), rate, subtype="FLOAT")
    mono = m.read(tmp_path / "st.wav", (1, 8000))[0].numpy()  # 1 s at 8 kHz
    ref = (_sine(440, 8000, 8000, 0.4) + _sine(1000, 8000, 8000, 0.2)) / 2
    assert np.abs(mono[200:-200] - ref[200:-200]).max() < 1e-3  # mixed to mono and resampled (FIR edges aside)
    stereo = m.read(tmp_path / "st.wav", (2, 8000)).numpy()
    assert abs(_peak_hz(stereo[0], 8000) - 440) < 0.5 and abs(_peak_hz(stereo[1], 8000) - 1000) < 0.5
    # crop to the first samples, or pad the end with silence
    short = m.read(tmp_path / "st.wav", (1, 100))
    torch.testing.assert_close(short, torch.from_numpy(mono[None, :100]))
    long = m.read(tmp_path / "st.wav", (1, 9000))
    assert torch.equal(long[:, 8000:], torch.zeros(1, 1000)) and torch.equal(long[:, :8000], torch.from_numpy(mono[None]))
    # a mono file read by a stereo model is repeated; more than 2 channels are refused
    sf.write(str(tmp_path / "m.wav"), left[:800], rate)
    two = m.read(tmp_path / "m.wav", (2, 400))
    assert torch.equal(two[0], two[1])
    sf.write(str(tmp_path / "q.wav"), np.zeros((100, 4)), rate)
    with pytest.raises(DataError, match="has 4 channels; a stereo model reads 1 or 2"):
        m.read(tmp_path / "q.wav", (2, 50))


@pytest.mark.parametrize("rate", [11025, 22050, 44100, 48000])
def test_resampling_keeps_a_sine_at_its_frequency(tmp_path, rate):
    sf.write(str(tmp_path / "a.wav"), _sine(523.25, rate, rate // 2), rate, subtype="PCM_16")
    x = get_modality("audio").read(tmp_path / "a.wav", (1, 4000))[0].numpy()
    assert abs(_peak_hz(x, 8000) - 523.25) < 1.0
    assert abs(np.abs(x[500:3500]).max() - 0.5) < 0.01  # the level survives too


@pytest.mark.parametrize("fmt,ext", [("FLAC", ".flac"), ("OGG", ".ogg")])
def test_flac_and_ogg_are_read(tmp_path, fmt, ext):
    path = tmp_path / f"a{ext}"
    sf.write(str(path), _sine(440, 8000, 4000), 8000, format=fmt)
    x = get_modality("audio").read(path, (1, 4000))[0].numpy()
    assert abs(_peak_hz(x, 8000) - 440) < 1.0


def test_bad_audio_files_are_one_line_data_errors(tmp_path):
    m = get_modality("audio")
    (tmp_path / "text.wav").write_text("not audio at all\n")
    (tmp_path / "empty.wav").write_bytes(b"")
    buf = tmp_path / "ok.wav"
    write_wav(np.zeros((1, 100)), buf, 8000)
    (tmp_path / "trunc.wav").write_bytes(buf.read_bytes()[:30])
    sf.write(str(tmp_path / "nan.wav"), np.array([0.0, np.nan, 0.1]), 8000, subtype="FLOAT")
    cases = {"text.wav": "", "empty.wav": "", "trunc.wav": "", "nan.wav": "non-finite", "missing.wav": "does not exist"}
    for name, fragment in cases.items():
        with pytest.raises(DataError) as e:
            m.read(tmp_path / name, (1, 8))
        msg = str(e.value)
        assert f"cannot read audio file {str(tmp_path / name)!r}" in msg and fragment in msg and "\n" not in msg
    with pytest.raises(DataError, match=r"extension '.mp4' is not an audio format; valid: .wav, .flac, .ogg"):
        read_audio(tmp_path / "x.mp4")
    assert MAX_FRAMES >= 44100 * 60 * 10  # ten minutes of CD audio pass the header check


def test_spectrogram_preview_shows_the_tone_at_its_row():
    m = get_modality("audio")
    tones = torch.from_numpy(np.stack([_sine(500, 8000, 4096, 1.0), _sine(2000, 8000, 4096, 1.0)])[:, None]).float()
    db = spectrogram_db(tones[0, 0].numpy(), 8000)  # (F, T), row 0 = 0 Hz
    assert db.shape == (129, 65)
    mid = db[:, 32]
    assert int(np.argmax(mid)) == 16 and abs(mid.max()) < 1.0  # 500 Hz = bin 16 of 256 at 8 kHz; full scale ~ 0 dB
    assert np.median(mid) < -DB_RANGE / 2
    img = m.preview_image(tones, nrow=2, scale=1)
    assert img.shape == (3, 129 + 4, 2 * 65 + 6) and 0 <= img.min() and img.max() <= 1
    # the bright row of each panel sits where its frequency is (high frequencies on top)
    col = img[:, 2:-2, 2 + 32].sum(0)  # first panel's middle column
    assert int(torch.argmax(col)) == 128 - 16
    col = img[:, 2:-2, 2 + 65 + 2 + 32].sum(0)
    assert int(torch.argmax(col)) == 128 - 64
    assert m.preview_image(tones, nrow=1).shape == (3, 2 * (2 * 129 + 4) + 4, 2 * 65 + 8)  # display scale 2
    stereo = m.preview_image(torch.zeros(1, 2, 512), nrow=1, scale=1)
    assert stereo.shape[1] > 2 * stereo.shape[2] - 10  # two channel panels stacked


def test_span_mask_and_its_errors():
    m = get_modality("audio")
    known = m.span_mask("0.1:0.2", 4096)
    assert known.shape == (1, 4096) and known.dtype == torch.float32
    assert torch.equal(known[0, 800:1600], torch.zeros(800)) and known[0, :800].all() and known[0, 1600:].all()
    assert m.span_mask("0:0.512", 4096).sum() == 0 and m.span_mask(" 0.5 : 0.512 ", 4096).sum() == 4000
    assert parse_span("1e-1:2e-1") == (0.1, 0.2)
    for span, fragment in [("0.2", "expected START:END in seconds"), ("a:b", "expected START:END"),
                           ("-0.1:0.2", "0 <= START < END"), ("0.3:0.2", "empty or reversed"),
                           ("0.2:0.2", "empty or reversed"), ("0.4:0.6", "ends after the clip, which is 0.512 s long"),
                           ("0.1:0.10001", "shorter than one sample")]:
        with pytest.raises(ValueError, match=fragment) as e:
            m.span_mask(span, 4096)
        assert repr(span) in str(e.value) and "\n" not in str(e.value)
