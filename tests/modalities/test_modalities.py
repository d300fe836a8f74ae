import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.data import DataError
from noisecraft.io.images import save_image
from noisecraft.modalities import (
    MODALITIES, ArrayModality, ImageModality, Modality, default_modality, get_modality,
)


def on_8bit_grid(shape, seed=0):
    """Values k/127.5 - 1 (k = 0..255): exactly representable in an 8-bit PNG."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 127.5 - 1.0


# --- registry -------------------------------------------------------------------------------------
def test_registry_and_default_modality():
    assert set(MODALITIES) == {"image", "array", "audio", "video", "field"}
    assert isinstance(get_modality("image"), ImageModality) and isinstance(get_modality("array"), ArrayModality)
    assert all(isinstance(m, Modality) and m.name == k for k, m in MODALITIES.items())
    with pytest.raises(ValueError, match="unknown modality 'point-cloud'; valid: array, audio, field, image, video"):
        get_modality("point-cloud")
    # modalities without settings have no options, and refuse any
    assert get_modality("image", {}) is MODALITIES["image"] and MODALITIES["array"].options() == {}
    with pytest.raises(ValueError, match=r"the image modality takes no options, got \['sample_rate'\]"):
        get_modality("image", {"sample_rate": 8000})
    assert default_modality((1, 16, 16)) == "image" and default_modality((3, 8, 8)) == "image"
    assert default_modality((2, 16, 16)) == "array" and default_modality((1, 64)) == "array"
    assert default_modality((1, 8, 16, 16)) == "array"


@pytest.mark.parametrize("name,shape", [("image", (1, 8)), ("image", (2, 8, 8)), ("image", (1, 0, 4)),
                                        ("array", (4,)), ("array", (1, 2, 3, 4, 5))])
def test_check_shape_names_the_shape_and_what_is_valid(name, shape):
    with pytest.raises(ValueError) as e:
        get_modality(name).check_shape(shape)
    msg = str(e.value)
    assert str(shape) in msg and "expected" in msg and "\n" not in msg


# --- image: PNG round trips, display scale -----------------------------------------------------------
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("scale", [None, 1, 3])
def test_image_round_trip_is_exact_at_native_and_display_scale(tmp_path, c, scale):
    m = get_modality("image")
    x = on_8bit_grid((c, 5, 7), seed=c)
    p = m.write(x, tmp_path / "a.png", scale=scale)
    s = m.display_scale if scale is None else scale
    with Image.open(p) as im:
        assert im.size == (7 * s, 5 * s)
    y = m.read(p, (c, 5, 7), scale=scale)
    assert y.dtype == torch.float32 and torch.equal(y, x)


def test_image_display_scale_is_four_and_read_accepts_both_sizes(tmp_path):
    m = get_modality("image")
    assert m.display_scale == 4
    x = on_8bit_grid((1, 6, 6))
    save_image(x, tmp_path / "native.png")  # a 6x6 file someone made by hand
    m.write(x, tmp_path / "big.png")  # 24x24
    assert torch.equal(m.read(tmp_path / "native.png", (1, 6, 6)), x)
    assert torch.equal(m.read(tmp_path / "big.png", (1, 6, 6)), x)


def test_image_read_of_an_enlarged_file_is_the_block_mean(tmp_path):
    m = get_modality("image")
    big = on_8bit_grid((1, 8, 8), seed=3)  # not constant per 4x4 block: someone else's 8x8 picture
    save_image(big, tmp_path / "b.png")
    got = m.read(tmp_path / "b.png", (1, 2, 2))
    want = torch.nn.functional.avg_pool2d(big.double()[None], 4)[0].float()
    assert torch.allclose(got, want, atol=1e-6)


def test_image_wrong_size_is_one_line_naming_both_sizes(tmp_path):
    m = get_modality("image")
    save_image(on_8bit_grid((3, 10, 12)), tmp_path / "x.png")
    with pytest.raises(ValueError) as e:
        m.read(tmp_path / "x.png", (3, 16, 16))
    msg = str(e.value)
    assert "\n" not in msg and "12x10" in msg and "16x16 (native)" in msg and "64x64 (display scale 4)" in msg


def test_image_values_off_the_grid_round_to_8_bits(tmp_path):
    m = get_modality("image")
    x = torch.rand(3, 4, 4) * 2 - 1
    y = m.read(m.write(x, tmp_path / "a.png"), (3, 4, 4))
    assert (y - x).abs().max() <= 1 / 255 + 1e-6


def test_mask_reads_at_both_sizes(tmp_path):
    m = get_modality("image")
    mask = (torch.arange(16).view(1, 4, 4) % 3 == 0).float() * 2 - 1  # white/black
    m.write(mask, tmp_path / "m.png")
    assert torch.equal(m.read_mask(tmp_path / "m.png", (4, 4)), mask)
    save_image(mask, tmp_path / "m1.png")
    assert torch.equal(m.read_mask(tmp_path / "m1.png", (4, 4)), mask)
    rgb = mask.expand(3, -1, -1)
    m.write(rgb, tmp_path / "rgb.png")  # an RGB mask file reads as its luma
    assert torch.equal(m.read_mask(tmp_path / "rgb.png", (4, 4)), mask)


def test_image_write_refuses_other_suffixes_and_bad_scale(tmp_path):
    m = get_modality("image")
    with pytest.raises(ValueError, match=r"should end in \.png"):
        m.write(torch.zeros(1, 4, 4), tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="scale must be an integer in 1..64"):
        m.write(torch.zeros(1, 4, 4), tmp_path / "a.png", scale=0)
    with pytest.raises(DataError, match="does not exist"):
        m.read(tmp_path / "missing.png", (1, 4, 4))


# --- array: NPZ bitwise, refusals ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 9), (2, 5, 6), (3, 4, 5, 6)])
def test_array_round_trip_is_bitwise(tmp_path, shape):
    m = get_modality("array")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3  # outside [-1, 1] too: stored as is
    p = m.write(x, tmp_path / "x.npz")
    y = m.read(p, shape)
    assert y.dtype == torch.float32 and torch.equal(y, x)
    with np.load(p, allow_pickle=False) as z:  # a plain numpy archive
        assert list(z.keys()) == ["x"] and z["x"].dtype == np.float32


def test_array_read_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="dtype object.*never loaded"):
        get_modality("array").read(tmp_path / "o.npz", (1, 2))


def test_array_read_refuses_wrong_shape_key_dtype_nan_and_garbage(tmp_path):
    m = get_modality("array")
    np.savez(tmp_path / "s.npz", x=np.zeros((1, 3), np.float32))
    with pytest.raises(DataError, match=r"shape \(1, 3\); expected \(1, 4\)"):
        m.read(tmp_path / "s.npz", (1, 4))
    np.savez(tmp_path / "k.npz", y=np.zeros((1, 3), np.float32))
    with pytest.raises(DataError, match="no array 'x' \\(keys: y\\)"):
        m.read(tmp_path / "k.npz", (1, 3))
    np.savez(tmp_path / "i.npz", x=np.zeros((1, 3), np.int64))
    with pytest.raises(DataError, match="dtype int64; valid: float16, float32, float64"):
        m.read(tmp_path / "i.npz", (1, 3))
    np.savez(tmp_path / "n.npz", x=np.array([[0.0, np.nan, np.inf]], np.float32))
    with pytest.raises(DataError, match="2 non-finite"):
        m.read(tmp_path / "n.npz", (1, 3))
    (tmp_path / "g.npz").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(DataError, match="cannot read NPZ file"):
        m.read(tmp_path / "g.npz", (1, 3))
    np.savez(tmp_path / "d.npz", x=np.ones((1, 3), np.float64))  # other float widths are cast
    assert m.read(tmp_path / "d.npz", (1, 3)).dtype == torch.float32


def test_array_write_refuses_non_finite(tmp_path):
    with pytest.raises(ValueError, match="1 non-finite"):
        get_modality("array").write(torch.tensor([[0.0, float("nan")]]), tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())  # nothing half-written


# --- previews --------------------------------------------------------------------------------------
def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im)


def test_image_preview_size_and_content(tmp_path):
    m = get_modality("image")
    x = on_8bit_grid((5, 1, 4, 4))
    img = m.preview_image(x, nrow=2)
    assert img.shape == (3, 4 * (3 * 5 + 1), 4 * (2 * 5 + 1)) and 0 <= img.min() and img.max() <= 1
    arr = _png(m.write_preview(x, tmp_path / "p.png", nrow=2))
    assert arr.shape == (4 * 16, 4 * 11, 3) and arr.std() > 10
    # the first cell is the first image, enlarged (gutter of 1 source px = 4 output px)
    first = torch.from_numpy(arr[4:20, 4:20, 0].astype(np.float32)) / 127.5 - 1
    assert torch.allclose(first[::4, ::4], x[0, 0], atol=1 / 127.5)


@pytest.mark.parametrize("shape,panel", [
    ((1, 20), (32 * 4, 20 * 4)),  # line plot: LINE_HEIGHT * s by L * s
    ((2, 5, 6), (2 * 5 * 4 + 4, 6 * 4)),  # one heat map per channel, stacked, s px gutter
    ((1, 3, 5, 6), (5 * 4, 3 * 6 * 4 + 2 * 4)),  # a strip of 3 frames
])
def test_array_preview_size_and_not_blank(tmp_path, shape, panel):
    m = get_modality("array")
    x = torch.randn((5, *shape), generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    arr = _png(m.write_preview(x, tmp_path / "p.png", nrow=3))
    h, w = panel
    gap = 2 * 4
    assert arr.shape == (2 * (h + gap) + gap, 3 * (w + gap) + gap, 3)
    first = arr[gap : gap + h, gap : gap + w]  # the first sample's panel
    if len(shape) == 2:  # a connected line crosses every column in the channel's colour (tab10 blue)
        assert ((first == (31, 119, 180)).all(-1)).any(0).all()
    else:  # heat maps: many distinct colours
        assert len(np.unique(first.reshape(-1, 3), axis=0)) > 20
    img = m.preview_image(x, nrow=3)  # what TensorBoard gets is what the PNG holds
    assert img.shape == (3, *arr.shape[:2]) and img.dtype == torch.float32
    assert (img - torch.from_numpy(arr).permute(2, 0, 1).float() / 255).abs().max() <= 0.5 / 255 + 1e-6


def test_heat_map_preview_follows_values():
    m = get_modality("array")
    lo, hi = torch.full((1, 1, 2, 2), -1.0), torch.full((1, 1, 2, 2), 1.0)
    a, b = m.preview_image(lo, nrow=1, scale=1), m.preview_image(hi, nrow=1, scale=1)
    # viridis: dark purple at -1, bright yellow at +1
    assert a[:, 2, 2].sum() < 1.0 < b[:, 2, 2].sum()
    assert b[0, 2, 2] > 0.9 and b[1, 2, 2] > 0.8


def test_preview_refuses_bad_batches(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        get_modality("array").preview_image(torch.zeros(0, 1, 4), nrow=2)
    with pytest.raises(ValueError, match="nrow"):
        get_modality("image").preview_image(torch.zeros(2, 1, 4, 4), nrow=0)
    with pytest.raises(ValueError, match=r"should end in \.png"):
        get_modality("array").write_preview(torch.zeros(2, 1, 4), tmp_path / "p.jpg", nrow=2)
