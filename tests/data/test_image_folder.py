import io

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.data import DataError, list_image_files, load_dataset, load_image_folder

S = 12  # side of the generated solid-colour images


def _solid(mode, color, size=(S, S)):
    return Image.new(mode, size, color)


def _write_good(root):
    """Good files and the RGB value each must decode to (solid colours, so resizing cannot change them)."""
    (root / "a").mkdir(parents=True)
    (root / "b" / "sub").mkdir(parents=True)
    expected = {}

    _solid("RGB", (200, 10, 30)).save(root / "a" / "rgb.png")
    expected["a/rgb.png"] = (200, 10, 30)

    _solid("RGBA", (255, 0, 0, 128)).save(root / "a" / "rgba.png")
    expected["a/rgba.png"] = (128, 0, 0)  # composited on black

    _solid("LA", (200, 64)).save(root / "a" / "la.png")
    expected["a/la.png"] = (50,) * 3

    p = _solid("P", 1)
    p.putpalette([10, 20, 30, 200, 100, 50])
    p.save(root / "a" / "palette.png")
    expected["a/palette.png"] = (200, 100, 50)

    p.save(root / "a" / "palette_transparent.png", transparency=1)
    expected["a/palette_transparent.png"] = (0, 0, 0)

    Image.fromarray(np.full((S, S), 32768, dtype=np.uint16)).save(root / "a" / "gray16.png")  # mode I;16
    expected["a/gray16.png"] = (128,) * 3  # scaled 0..65535 -> 0..255, not clipped to 255

    _solid("CMYK", (255, 0, 0, 0)).save(root / "b" / "cmyk.jpg", quality=95)
    expected["b/cmyk.jpg"] = (0, 255, 255)

    _solid("RGB", (1, 2, 3)).save(root / "b" / "lossless.webp", lossless=True)
    expected["b/lossless.webp"] = (1, 2, 3)

    _solid("L", 77).save(root / "b" / "gray.png")
    expected["b/gray.png"] = (77,) * 3

    _solid("RGB", (9, 99, 199)).save(root / "b" / "sub" / "deep.bmp")
    expected["b/sub/deep.bmp"] = (9, 99, 199)

    frames = [_solid("RGB", (0, 0, 255)), _solid("RGB", (0, 255, 0))]
    frames[0].save(root / "b" / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    expected["b/anim.gif"] = (0, 0, 255)  # first frame

    # hidden files are ignored entirely (not even counted as skipped)
    (root / "a" / "._rgb.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    (root / "b" / "notes.txt").write_text("not an image")
    return expected


def _write_bad(root):
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "b" / "text.png").write_text("this is not a PNG")
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    (root / "b" / "truncated.jpg").write_bytes(buf.getvalue()[: int(len(buf.getvalue()) * 0.6)])
    return ["a/empty.png", "b/text.png", "b/truncated.jpg"]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "imgs"
    expected = _write_good(root)
    bad = _write_bad(root)
    return root, expected, bad


def _u8(x):
    return ((x + 1) * 127.5).round().to(torch.int64)


def test_strict_names_first_unreadable_file(tree):
    root, _, bad = tree
    with pytest.raises(DataError) as e:
        load_dataset(str(root), resolution=8)
    assert str(root / bad[0]) in str(e.value)  # first in sorted order
    assert "on_error='skip'" in str(e.value)


def test_skip_mode_skips_exactly_the_bad_files_and_decodes_the_rest(tree):
    root, expected, bad = tree
    with pytest.warns(UserWarning, match="skipped 3"):
        ds = load_dataset(str(root), resolution=S, on_error="skip")
    assert ds.skipped == 3 and ds.skipped_files == [str(root / b) for b in bad]
    order = [p.relative_to(root).as_posix() for p in list_image_files(root) if str(p) not in ds.skipped_files]
    assert sorted(order) == sorted(expected) and len(ds) == len(expected)
    assert ds.images.shape == (len(expected), 3, S, S) and ds.images.dtype == torch.float32  # RGB present -> 3
    assert ds.images.min() >= -1 and ds.images.max() <= 1
    assert ds.class_names == ["a", "b"] and ds.num_classes == 2
    for i, rel in enumerate(order):
        tol = 3 if rel.endswith(".jpg") else 0
        got = _u8(ds.images[i]).flatten(1)  # (3, S*S)
        want = torch.tensor(expected[rel])[:, None]
        assert (got - want).abs().max() <= tol, (rel, got[:, 0].tolist(), expected[rel])
        assert ds.labels[i].item() == ("ab".index(rel[0])), rel  # b/sub/deep.bmp belongs to "b"
        img, label = ds[i]
        assert img.shape == (3, S, S) and label.dtype == torch.long


def test_loading_is_deterministic(tree):
    root, _, _ = tree
    with pytest.warns(UserWarning):
        a = load_dataset(str(root), resolution=8, on_error="skip")
    with pytest.warns(UserWarning):
        b = load_dataset(str(root), resolution=8, on_error="skip")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.skipped_files == b.skipped_files


def test_channels_one_and_inference(tmp_path):
    _solid("RGB", (255, 0, 0)).save(tmp_path / "red.png")
    _solid("L", 10).save(tmp_path / "gray.png")
    ds = load_image_folder(tmp_path, resolution=4, channels=1)
    assert ds.images.shape == (2, 1, 4, 4)
    assert _u8(ds.images[1]).unique().tolist() == [76]  # ITU-R 601 luma of pure red: 0.299 * 255
    (tmp_path / "red.png").unlink()
    ds = load_image_folder(tmp_path, resolution=4)  # grayscale-only folder -> 1 channel
    assert ds.channels == 1 and ds.num_classes == 0 and ds.labels.tolist() == [0]
    ds = load_image_folder(tmp_path, resolution=4, channels=3)
    assert ds.images.shape == (1, 3, 4, 4)


def test_resize_shorter_side_and_center_crop(tmp_path):
    img = np.zeros((20, 40, 3), dtype=np.uint8)  # H=20, W=40
    img[:, :, 2] = 255  # blue ...
    img[:, :5] = img[:, 35:] = (255, 0, 0)  # ... with red side bands that the center crop removes
    Image.fromarray(img).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((30, 20), dtype=np.uint8)).save(tmp_path / "tall.png")
    ds = load_image_folder(tmp_path, resolution=10)
    assert ds.images.shape == (2, 3, 10, 10) and ds.resolution == 10
    wide = _u8(ds.images[1])  # sorted: tall.png, wide.png
    assert (wide[0] <= 1).all() and (wide[2] >= 254).all()
    # resolution=None -> smallest shorter side (20), never upsampling
    assert load_image_folder(tmp_path).resolution == 20


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    _solid("L", 5, size=(16, 16)).save(tmp_path / "ok.png")  # 256 pixels
    _solid("L", 5, size=(40, 40)).save(tmp_path / "warn.png")  # 1600 > limit: Pillow warns
    _solid("L", 5, size=(64, 64)).save(tmp_path / "zbomb.png")  # 4096 > 2 * limit: Pillow raises
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="decompression bomb") as e:
        load_image_folder(tmp_path, resolution=8)
    assert "warn.png" in str(e.value)
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = load_image_folder(tmp_path, resolution=8, on_error="skip")
    assert len(ds) == 1 and [p.rsplit("/", 1)[-1] for p in ds.skipped_files] == ["warn.png", "zbomb.png"]
    with pytest.warns(UserWarning):  # the header-only pass for resolution=None refuses bombs too
        assert load_image_folder(tmp_path, on_error="skip").resolution == 16


def test_all_unreadable_is_an_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="no readable images"):
        load_image_folder(tmp_path, on_error="skip")


def test_missing_and_empty_folders(tmp_path):
    missing = tmp_path / "nope"
    for call in (lambda: load_image_folder(missing), lambda: load_dataset(str(missing))):
        with pytest.raises(DataError) as e:
            call()
        assert str(missing) in str(e.value) and ".png" in str(e.value) and ".jpg" in str(e.value)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(DataError) as e:
        load_dataset(str(empty))
    assert str(empty) in str(e.value) and ".webp" in str(e.value)


def test_label_layouts(tmp_path):
    _solid("L", 1).save(tmp_path / "root.png")
    (tmp_path / "cls").mkdir()
    _solid("L", 2).save(tmp_path / "cls" / "x.png")
    with pytest.raises(DataError, match="labels=False"):
        load_image_folder(tmp_path)
    ds = load_image_folder(tmp_path, labels=False)
    assert len(ds) == 2 and ds.num_classes == 0 and ds.class_names == [] and not ds.labels.any()


def test_folder_has_no_test_split_and_hflip_is_recorded(tmp_path):
    _solid("L", 1).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="split='test'"):
        load_dataset(str(tmp_path), split="test")
    ds = load_dataset(str(tmp_path), split="all", hflip=True)
    assert ds.hflip is True and ds.name == str(tmp_path)
