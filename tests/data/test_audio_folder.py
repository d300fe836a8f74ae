"""Audio folders: files found and labelled as image folders are, decoded to mono at the sample rate,
cut or padded to the length; bad files stop a strict load (named) and are listed by a skip load."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from noisecraft.config import ConfigError, load_config
from noisecraft.data import DataError, load_audio_folder, load_dataset
from noisecraft.train import build_dataset


def _tone(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, 1) if channels > 1 else x


def _folder(root, bad: dict[str, bytes] | None = None):
    """low/a.wav (16 kHz stereo, 0.5 s), low/b.flac (8 kHz, 0.25 s), high/c.ogg (22.05 kHz, 0.3 s)."""
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    sf.write(str(root / "low" / "a.wav"), _tone(220, 16000, 0.5, 2), 16000)
    sf.write(str(root / "low" / "b.flac"), _tone(220, 8000, 0.25), 8000)
    sf.write(str(root / "high" / "c.ogg"), _tone(880, 22050, 0.3), 22050)
    (root / "high" / "notes.txt").write_text("ignored")
    (root / "high" / ".hidden.wav").write_bytes(b"ignored")
    for name, data in (bad or {}).items():
        (root / name).write_bytes(data)
    return root


def test_labels_rate_and_length(tmp_path):
    ds = load_dataset(str(_folder(tmp_path / "clips")), resolution=1000)
    assert ds.modality == "audio" and ds.modality_options == {"sample_rate": 8000}
    assert ds.class_names == ["high", "low"] and ds.labels.tolist() == [0, 1, 1]  # sorted paths: high/c, low/a, low/b
    assert ds.sample_shape == (1, 1000) and ds.data.abs().max() <= 1
    spec = np.abs(np.fft.rfft(ds.data[:, 0, :].numpy() * np.hanning(1000), axis=-1))
    assert (np.argmax(spec, -1) * 8000 / 1000).tolist() == [880.0, 224.0, 224.0]  # 8 Hz bins
    # resolution None: the shortest clip at the rate (0.25 s), nothing padded
    assert load_dataset(str(tmp_path / "clips")).sample_shape == (1, 2000)
    # another rate, unlabeled, and padding with silence past a clip's end
    ds16 = load_audio_folder(tmp_path / "clips", resolution=6000, sample_rate=16000, labels=False)
    assert ds16.modality_options == {"sample_rate": 16000} and ds16.num_classes == 0
    assert torch.equal(ds16.data[2, 0, 4000:], torch.zeros(2000))  # b.flac: 0.25 s = 4000 samples at 16 kHz
    assert ds16.data[1, 0, :4000].abs().max() > 0.45


def test_folder_argument_errors(tmp_path):
    root = _folder(tmp_path / "clips")
    with pytest.raises(ValueError, match="channels must be 1 or None for an audio folder"):
        load_dataset(str(root), channels=3)
    with pytest.raises(ValueError, match="sample_rate must be an integer number of Hz in 1000..384000"):
        load_audio_folder(root, sample_rate=10)
    sf.write(str(root / "top.wav"), _tone(440, 8000, 0.1), 8000)
    with pytest.raises(DataError, match="has audio files both in class sub-folders and directly in the folder"):
        load_dataset(str(root))
    assert len(load_dataset(str(root), labels=False)) == 4
    Image.new("L", (8, 8)).save(root / "pic.png")
    with pytest.raises(DataError, match="holds both images .* and audio files"):
        load_dataset(str(root))
    (tmp_path / "imgs").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "imgs" / "a.png")
    with pytest.raises(ValueError, match="sample_rate applies to audio data; the folder .* holds no audio files"):
        load_dataset(str(tmp_path / "imgs"), sample_rate=8000)


BAD = {"low/empty.wav": b"", "low/text.flac": b"definitely not a FLAC stream\n", "high/html.ogg": b"<html></html>"}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_files_strict_names_them_and_skip_lists_them(tmp_path, bad):
    root = _folder(tmp_path / "clips", {bad: BAD[bad]})
    with pytest.raises(DataError) as e:
        load_dataset(str(root), resolution=500)
    msg = str(e.value)
    assert f"cannot read audio file {str(root / bad)!r}" in msg and "on_error='skip'" in msg and "\n" not in msg
    with pytest.warns(UserWarning, match=f"skipped 1 unreadable audio file.*{bad.split('/')[1]}"):
        ds = load_dataset(str(root), resolution=500, on_error="skip")
    assert ds.skipped_files == [str(root / bad)] and len(ds) == 3
    clean = load_dataset(str(_folder(tmp_path / "clean")), resolution=500)
    assert torch.equal(ds.data, clean.data) and torch.equal(ds.labels, clean.labels)
    with pytest.warns(UserWarning):  # resolution from the headers: the bad header is skipped the same way
        assert load_dataset(str(root), on_error="skip").sample_shape == (1, 2000)


def test_all_bad_or_no_files(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.wav").write_bytes(b"x")
    with pytest.raises(DataError, match="no readable audio files in .* all 1 files were skipped"):
        load_audio_folder(tmp_path / "bad", on_error="skip")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no audio files found in"):
        load_audio_folder(tmp_path / "none")


def test_config_sample_rate(tmp_path):
    root = _folder(tmp_path / "clips")
    cfg = load_config("tiny", [f"data.source={root}", "data.resolution=512", "data.sample_rate=16000"])
    ds = build_dataset(cfg)
    assert ds.modality_options == {"sample_rate": 16000} and ds.sample_shape == (1, 512)
    assert build_dataset(load_config("tiny", ["data.source=notes", "data.resolution=256",
                                              "data.sample_rate=11025"])).sample_rate == 11025
    with pytest.raises(ConfigError, match="data.sample_rate = 8000 applies to audio data; 'digits' is not audio"):
        load_config("tiny", ["data.sample_rate=8000"])
    with pytest.raises(ConfigError, match="data.sample_rate = 100 is out of range; valid: 0 .* or 1000..384000 Hz"):
        load_config("tiny", ["data.source=notes", "data.sample_rate=100"])
    with pytest.raises(ConfigError, match="unknown key data.options.sample_rate"):
        load_config("tiny", ["data.source=notes", "data.options.sample_rate=8000"])
