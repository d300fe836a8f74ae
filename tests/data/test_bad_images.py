"""Bad image files one kind at a time: strict mode names exactly that file, skip mode drops exactly it
(and then equals the folder without it, so the training epoch is the same); all-gray folders of
mixed storage modes stay 1-channel; `noisecraft train` on a folder with a bad file fails in one line."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.data import DataError, load_image_folder
from noisecraft.train import DataOrder


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _bomb_png(side: int = 30000) -> bytes:
    """A valid 1-bit PNG header claiming side x side pixels (9e8 > 2 x Pillow's default limit)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


BAD = {
    "zero-byte.png": lambda: b"",
    "text.png": lambda: b"just some text, not a PNG\n",
    "truncated.jpg": lambda: _jpeg_bytes()[:900],
    "truncated.png": lambda: _png_bytes(Image.fromarray(np.arange(1024, dtype=np.uint8).reshape(32, 32)))[:-40],
    "html.jpg": lambda: b"<html><body>404 not found</body></html>",
    "bomb.png": _bomb_png,
}


def _folder(root, bad_name=None):
    root.mkdir()
    for i, color in enumerate([(10, 20, 30), (200, 100, 0), (0, 255, 128)]):
        Image.new("RGB", (12, 12), color).save(root / f"good{i}.png")
    if bad_name is not None:
        (root / bad_name).write_bytes(BAD[bad_name]())
    return root


@pytest.mark.parametrize("bad", sorted(BAD))
def test_each_bad_kind_is_named_in_strict_and_dropped_in_skip(tmp_path, bad):
    root = _folder(tmp_path / "imgs", bad)
    with pytest.raises(DataError) as e:
        load_image_folder(root, resolution=8)
    msg = str(e.value)
    assert str(root / bad) in msg and "\n" not in msg and "on_error='skip'" in msg
    with pytest.warns(UserWarning, match=f"skipped 1 unreadable image.*{bad}"):
        ds = load_image_folder(root, resolution=8, on_error="skip")
    assert ds.skipped_files == [str(root / bad)] and len(ds) == 3
    # skipping a file is the same as not having it: same tensors, so the same epochs
    clean = _folder(tmp_path / "clean")
    ref = load_image_folder(clean, resolution=8)
    assert torch.equal(ds.images, ref.images) and torch.equal(ds.labels, ref.labels)
    a, b = DataOrder(len(ds), seed=3), DataOrder(len(ref), seed=3)
    assert torch.equal(ds.images[a.take(9)], ref.images[b.take(9)])  # three epochs of batches


def test_skip_mode_is_deterministic_with_many_bad_files(tmp_path):
    root = _folder(tmp_path / "imgs")
    for name in BAD:
        (root / f"x-{name}").write_bytes(BAD[name]())
    runs = []
    for _ in range(2):
        with pytest.warns(UserWarning, match=f"skipped {len(BAD)} unreadable"):
            runs.append(load_image_folder(root, resolution=8, on_error="skip"))
    a, b = runs
    assert a.skipped_files == b.skipped_files == sorted(str(root / f"x-{n}") for n in BAD)
    assert torch.equal(a.images, b.images) and len(a) == 3


def test_all_gray_modes_stay_one_channel(tmp_path):
    Image.new("L", (6, 6), 60).save(tmp_path / "a_l.png")
    Image.new("LA", (6, 6), (200, 255)).save(tmp_path / "b_la.png")  # opaque alpha: unchanged
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(tmp_path / "c_16bit.png")
    Image.new("1", (6, 6), 1).save(tmp_path / "d_1bit.png")
    Image.new("L", (6, 6), 90).save(tmp_path / "e_gray.jpg", quality=100)
    ds = load_image_folder(tmp_path, resolution=6)
    assert ds.channels == 1 and ds.images.shape == (5, 1, 6, 6)
    values = ((ds.images[:, 0] + 1) * 127.5).round().to(torch.int64)
    assert [int(v.float().mean().round()) for v in values] == [60, 200, 255, 255, 90]
    Image.new("RGBA", (6, 6), (0, 0, 255, 255)).save(tmp_path / "f_rgba.png")  # one colour file -> 3 channels
    ds = load_image_folder(tmp_path, resolution=6)
    assert ds.channels == 3 and torch.equal(ds.images[0, 0], ds.images[0, 2])  # gray repeated
    assert ((ds.images[5] + 1) * 127.5).round()[:, 0, 0].tolist() == [0, 0, 255]


def test_train_on_a_folder_with_a_bad_file_fails_in_one_line(tmp_path):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    root = _folder(tmp_path / "imgs", "truncated.jpg")
    result = CliRunner().invoke(cli, ["train", "tiny", "--out", str(tmp_path / "run"), "--set", f"data.source={root}",
                                      "--set", "data.conditional=false", "--quiet"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and str(root / "truncated.jpg") in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_train_with_on_error_skip_trains_on_the_rest_and_records_the_skipped(tmp_path):
    import json

    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    root = _folder(tmp_path / "imgs", "truncated.jpg")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "tiny", "--out", str(out), "--set", f"data.source={root}",
                                      "--set", "data.conditional=false", "--set", "data.on_error=skip",
                                      "--set", "data.resolution=8", "--steps", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image" in result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["skipped_files"] == [str(root / "truncated.jpg")] and meta["dataset_size"] == 3


def test_on_error_must_be_strict_or_skip(tmp_path):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    result = CliRunner().invoke(cli, ["train", "tiny", "--out", str(tmp_path / "r"), "--set", "data.on_error=ignore"])
    assert result.exit_code == 2 and "data.on_error = 'ignore'" in result.output and "strict, skip" in result.output
