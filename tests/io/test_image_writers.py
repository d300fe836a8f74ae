import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from noisecraft.io import make_grid, save_gif, save_grid, save_image, to_uint8
from noisecraft.io.images import _UMASK


def test_to_uint8_maps_range_and_layout():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, -3.0, 7.0, float("nan")]).view(1, 1, 8)  # (C, H, W)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 8, 1)  # channels last
    assert out[0, :, 0].tolist() == [0, 64, 128, 191, 255, 0, 255, 128]
    assert to_uint8(torch.zeros(2, 3, 4, 5)).shape == (2, 4, 5, 3)


def test_make_grid_shape_and_placement():
    imgs = torch.stack([torch.full((3, 4, 5), v) for v in (0.1, 0.2, 0.3, 0.4, 0.5)])  # (5, 3, 4, 5)
    g = make_grid(imgs, nrow=2, padding=1, pad_value=-1)
    assert g.shape == (3, 3 * (4 + 1) + 1, 2 * (5 + 1) + 1)  # 3 rows of 2
    assert (g[:, 1:5, 1:6] == 0.1).all() and (g[:, 1:5, 7:12] == 0.2).all()
    assert (g[:, 11:15, 1:6] == 0.5).all()
    assert (g[:, 11:15, 7:12] == -1).all()  # unused cell is padding
    assert (g[:, 0] == -1).all() and (g[:, :, 6] == -1).all()  # borders and gutters
    assert make_grid(imgs, nrow=8, padding=0).shape == (3, 4, 25)  # fewer images than nrow: one row
    with pytest.raises(ValueError, match="nrow"):
        make_grid(imgs, nrow=0)


def test_png_round_trip_and_scale(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 5, 7, generator=gen) * 2 - 1
    p = save_image(x, tmp_path / "deep" / "er" / "x.png", scale=3)  # parent folders created
    with Image.open(p) as im:
        assert im.mode == "RGB" and im.size == (21, 15)
        arr = np.asarray(im)
    assert np.array_equal(arr[::3, ::3], to_uint8(x))
    assert np.array_equal(arr[2::3, 2::3], to_uint8(x))  # nearest neighbour: blocks of equal pixels
    g = torch.rand(1, 4, 4, generator=gen) * 2 - 1
    with Image.open(save_image(g, tmp_path / "g.png")) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), to_uint8(g)[..., 0])
    with pytest.raises(ValueError, match="suffix"):
        save_image(g, tmp_path / "noext")


def test_save_grid_file(tmp_path):
    imgs = torch.linspace(-1, 1, 6).view(6, 1, 1, 1).expand(6, 1, 8, 8)
    with Image.open(save_grid(imgs, tmp_path / "grid.png", nrow=3, scale=2)) as im:
        assert im.size == (2 * (3 * 9 + 1), 2 * (2 * 9 + 1))
        arr = np.asarray(im)
    assert arr[2, 2] == 0 and arr[2 + 2 * 9 * 1 + 0, 2 + 2 * 9 * 2] == 255  # first and last images


def test_gif_frame_count_and_values(tmp_path):
    frames = [torch.full((1, 6, 6), v) for v in (-1.0, -0.2, 0.4, 1.0)]
    p = save_gif(frames, tmp_path / "anim.gif", duration_ms=40, scale=2)
    with Image.open(p) as im:
        assert im.n_frames == 4 and im.size == (12, 12)
        firsts = [np.asarray(f.convert("L"))[0, 0] for f in ImageSequence.Iterator(im)]
    assert firsts == [to_uint8(f)[0, 0, 0] for f in frames]
    rgb = [torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(i)) * 2 - 1 for i in range(3)]
    with Image.open(save_gif(rgb, tmp_path / "rgb.gif")) as im:
        assert im.n_frames == 3
    with pytest.raises(ValueError, match=".gif"):
        save_gif(frames, tmp_path / "anim.png")


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, monkeypatch):
    x = torch.zeros(3, 4, 4)
    save_image(x, tmp_path / "a.png")
    save_image(x + 0.5, tmp_path / "a.png")  # overwrite in place
    save_gif([x, -x - 1], tmp_path / "b.gif")
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.gif"]
    with Image.open(tmp_path / "a.png") as im:
        assert np.asarray(im)[0, 0].tolist() == [191] * 3
    assert os.stat(tmp_path / "a.png").st_mode & 0o777 == 0o666 & ~_UMASK  # as open() would, not mkstemp's 0600

    # a failure while encoding keeps the old file intact and removes the temp file
    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_image(x - 1, tmp_path / "a.png")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.gif"]
    with Image.open(tmp_path / "a.png") as im:
        assert np.asarray(im)[0, 0].tolist() == [191] * 3


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1), ("RGB", 1), ("L", 3)])
def test_read_image_is_exact_and_warns_about_nothing(tmp_path, mode, channels):
    """Pillow hands out read-only buffers; read_image copies one before torch.from_numpy (which warns on it)."""
    import warnings

    from noisecraft.io.readers import read_image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (6, 5, 3) if mode == "RGB" else (6, 5), dtype=np.uint8)
    Image.fromarray(arr, mode).save(tmp_path / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = read_image(tmp_path / "x.png", channels)
    assert x.shape == (channels, 6, 5) and x.dtype == torch.float32
    if (mode == "RGB") == (channels == 3):  # no channel conversion: the pixels come back exactly
        want = torch.from_numpy(arr.reshape(6, 5, -1).copy()).permute(2, 0, 1).float() / 127.5 - 1
        torch.testing.assert_close(x, want, atol=1e-6, rtol=0)
