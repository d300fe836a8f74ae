"""`noisecraft inpaint | img2img | upscale`: N PNGs + grid, known pixels kept, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


from noisecraft.cli.main import cli
from cli_helpers import assert_user_error, run
from noisecraft.runs import Run

# The fixture approach of test_cli_commands.py: one tiny run per module, a few steps.
TINY = ["--set", "train.batch_size=8", "--set", "sample.nfe=2", "--set", "sample.per_class=1"]






@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run("train", "tiny", "--out", out, "--steps", 2, *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def files(tiny_run, tmp_path_factory):
    """An input image, a mask and a low-res image matching the tiny model."""
    info = Run.open(tiny_run)
    r, c = info.shape[-1], info.shape[0]
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    shape = (r, r) if c == 1 else (r, r, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / "image.png")
    mask = np.zeros((r, r), np.uint8)
    mask[r // 4: 3 * r // 4, r // 4: 3 * r // 4] = 255  # white = regenerate
    Image.fromarray(mask).save(folder / "mask.png")
    Image.fromarray(np.zeros((r // 2, r // 2), np.uint8)).save(folder / "mask-small.png")
    Image.fromarray(rng.integers(0, 256, (r + 4, r + 4, 3), dtype=np.uint8)).save(folder / "big.png")
    Image.fromarray(rng.integers(0, 256, (r // 2, r // 2, 3), dtype=np.uint8)).save(folder / "low.png")
    Image.fromarray(rng.integers(0, 256, (r // 2 + 1, r // 2 + 1), dtype=np.uint8)).save(folder / "odd.png")
    return {"dir": folder, "r": r, "c": c, "mask": mask}


SCALE = 2  # the tiny preset's display scale (sample.scale): every command writes files this much larger


def _pngs(out, n, r):
    """The results at the display scale, returned at the native size (every SCALE-th pixel)."""
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(n)] + ["grid.png"]
    for i in range(n):
        assert Image.open(out / f"{i:06d}.png").size == (r * SCALE, r * SCALE)
    return [np.asarray(Image.open(out / f"{i:06d}.png"))[::SCALE, ::SCALE] for i in range(n)]


def test_inpaint_keeps_known_pixels(tiny_run, files, tmp_path):
    d = files["dir"]
    out = tmp_path / "inp"
    result = run("inpaint", tiny_run, "--image", d / "image.png", "--mask", d / "mask.png", "--n", 3, "--nfe", 2,
                 "--resample", 2, "--seed", 5, "--out", out)
    assert result.exit_code == 0, result.output
    images = _pngs(out, 3, files["r"])
    src = np.asarray(Image.open(d / "image.png")).astype(int)
    known = files["mask"] < 128
    for img in images:
        img = img.astype(int).reshape(src.shape)
        assert np.abs(img[known] - src[known]).max() <= 1
    # the grid's first tile is the input image
    grid = np.asarray(Image.open(out / "grid.png")).astype(int)[::SCALE, ::SCALE]
    r = files["r"]
    tile = grid[1:1 + r, 1:1 + r].reshape(src.shape) if grid.ndim == src.ndim else grid[1:1 + r, 1:1 + r, 0]
    assert np.abs(tile - src).max() <= 1
    # what inpaint wrote (at the display scale) is read back by the next command as it is
    again = run("inpaint", tiny_run, "--image", out / "000000.png", "--mask", d / "mask.png", "--n", 1, "--nfe", 2,
                "--resample", 1, "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    first = _pngs(tmp_path / "again", 1, r)[0].astype(int).reshape(src.shape)
    assert np.abs(first[known] - images[0].astype(int).reshape(src.shape)[known]).max() <= 1


def test_sample_output_is_a_valid_task_input(tiny_run, files, tmp_path):
    """`sample` writes display-scale PNGs; img2img and inpaint take them without resizing."""
    assert run("sample", tiny_run, "--n", 1, "--nfe", 2, "--out", tmp_path / "s").exit_code == 0
    drawn = tmp_path / "s" / "000000.png"
    assert Image.open(drawn).size == (files["r"] * SCALE,) * 2
    for cmd in (["img2img", "--strength", 0.5], ["inpaint", "--mask", files["dir"] / "mask.png", "--resample", 1]):
        result = run(cmd[0], tiny_run, "--image", drawn, *cmd[1:], "--nfe", 2, "--out", tmp_path / cmd[0])
        assert result.exit_code == 0, result.output


def test_img2img_and_upscale_write_pngs(tiny_run, files, tmp_path):
    d = files["dir"]
    result = run("img2img", tiny_run, "--image", d / "image.png", "--strength", 0.6, "--n", 2, "--nfe", 2,
                 "--out", tmp_path / "i2i")
    assert result.exit_code == 0, result.output
    _pngs(tmp_path / "i2i", 2, files["r"])
    for method in ("projection", "dps"):
        out = tmp_path / f"up-{method}"
        result = run("upscale", tiny_run, "--image", d / "low.png", "--method", method, "--n", 2, "--nfe", 2,
                     "--out", out)
        assert result.exit_code == 0, result.output
        _pngs(out, 2, files["r"])


def test_same_seed_same_result(tiny_run, files, tmp_path):
    d = files["dir"]
    for name, seed in (("a", 3), ("b", 3)):
        assert run("img2img", tiny_run, "--image", d / "image.png", "--strength", 0.5, "--n", 2, "--nfe", 2,
                   "--seed", seed, "--out", tmp_path / name).exit_code == 0
    assert (tmp_path / "a" / "000001.png").read_bytes() == (tmp_path / "b" / "000001.png").read_bytes()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["inpaint", "{run}", "--image", "{in}/image.png", "--mask", "{in}/mask-small.png"], ["mask-small.png' is 4x4", "valid sizes: 8x8 (native) or 16x16 (display scale 2)"]),
        (["inpaint", "{run}", "--image", "{in}/big.png", "--mask", "{in}/mask.png"], ["big.png' is 12x12", "valid sizes: 8x8"]),
        (["img2img", "{run}", "--image", "{in}/image.png", "--strength", "1.5"], ["--strength 1.5"]),
        (["img2img", "{run}", "--image", "{in}/image.png", "--strength", "0"], ["--strength 0"]),
        (["img2img", "{run}", "--image", "{in}/big.png", "--strength", "0.5"], ["is 12x12", "valid sizes: 8x8 (native) or 16x16"]),
        (["img2img", "{run}", "--image", "{in}/image.png", "--strength", "0.5", "--guidance", "-1"], ["--guidance -1"]),
        (["img2img", "{run}", "--image", "{in}/image.png", "--strength", "0.5", "--class", "99"], ["--class 99"]),
        (["img2img", "{run}", "--image", "{in}/missing.png", "--strength", "0.5"], ["missing.png", "does not exist"]),
        (["inpaint", "{run}", "--image", "{in}/image.png", "--mask", "{in}/mask.png", "--solver", "heun"], ["--solver 'heun'"]),
        (["upscale", "{run}", "--image", "{in}/image.png"], ["image is", "divides"]),
        (["upscale", "{run}", "--image", "{in}/odd.png"], ["image is", "divides"]),
        (["upscale", "{run}", "--image", "{in}/low.png", "--method", "nope"], ["--method 'nope'"]),
    ],
)
def test_bad_inputs_are_one_line_errors(tiny_run, files, tmp_path, args, fragments):
    args = [a.replace("{run}", str(tiny_run)).replace("{in}", str(files["dir"])) for a in args]
    assert_user_error(run(*args, "--out", tmp_path / "o"), *fragments)
    assert not (tmp_path / "o").exists()
