"""The moving-shapes video judge: right on real clips (every held-out triple, bouncing and linear),
each corruption caught by the attribute made for it and only by it (another colour or shape drawn on
the same path, reversed, frozen and shuffled frames), robust to mild pixel noise, one-line errors for
bad input; and `noisecraft eval` on tiny text- and class-conditional moving-shapes runs writes the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from noisecraft.cli.main import cli as main_cli
from noisecraft.data.dataset import to_unit_range
from noisecraft.data.moving_shapes import MOTIONS, load_moving_shapes, moving_shapes_scenes, render_moving_shapes
from noisecraft.data.shapes import PALETTE
from noisecraft.data.video import bounce
from noisecraft.eval.moving_shapes_judge import (
    SQUARE_TAU4,
    TRIANGLE_TAU3,
    follow_rates,
    judge_moving_shapes,
    motion_of_path,
    read_moving_shapes,
)
from noisecraft.eval.video_features import shuffle_frames

N = 36  # two clips of each of the 18 held-out triples


@pytest.fixture(scope="module")
def scenes():
    sc = moving_shapes_scenes("heldout", num_clips=N)
    real = to_unit_range(torch.from_numpy(render_moving_shapes(**sc)))
    return sc, real


def _draw(sc):
    return to_unit_range(torch.from_numpy(render_moving_shapes(**sc)))


def test_scenes_are_the_split_clips(scenes):
    sc, real = scenes
    ds = load_moving_shapes(split="heldout", num_clips=N)
    assert torch.equal(real, ds.data) and np.array_equal(sc["positions"], ds.positions[:, 0])
    assert sc["attributes"].tolist() == [[a["color"], a["shape"], a["motion"]] for a in ds.attributes]
    with pytest.raises(ValueError, match="split must be one of train, test_seen, heldout, test; got 'all'"):
        moving_shapes_scenes("all")


def test_ideal_shape_moments():
    n = 1000
    g = (np.arange(n) + 0.5) / n * 2 - 1
    x, y = np.meshgrid(g, g)
    k = np.sqrt(3) / 2
    tri = (np.maximum(np.maximum(y, k * x - 0.5 * y), -k * x - 0.5 * y) <= 0.45).astype(float)
    square = ((np.abs(x) <= 0.6) & (np.abs(y) <= 0.6)).astype(float)

    def tau(m, p):  # |C_p0| / A^(1 + p/2) with pixel areas (2/n)^2
        a = m.sum()
        z = (x - (m * x).sum() / a) + 1j * (y - (m * y).sum() / a)
        da = (2 / n) ** 2
        return abs((m * z ** p).sum() * da) / (a * da) ** (1 + p / 2)

    assert abs(tau(tri, 3) - TRIANGLE_TAU3) < 2e-4 and tau(tri, 4) < 1e-4
    assert abs(tau(square, 4) - SQUARE_TAU4) < 1e-5 and tau(square, 3) < 1e-6


def test_real_clips_follow_their_attributes(scenes):
    sc, real = scenes
    reading = read_moving_shapes(real)
    assert reading.color.tolist() == sc["attributes"][:, 0].tolist()
    assert reading.shape.tolist() == sc["attributes"][:, 1].tolist()
    assert reading.motion.tolist() == sc["attributes"][:, 2].tolist()
    assert {"linear", "bounce"} == set(reading.motion_reason) and np.nanmax(reading.motion_residual) < 0.2
    assert follow_rates(real, sc["attributes"], reading) == {"color": 1.0, "shape": 1.0, "motion": 1.0, "all": 1.0}
    noisy = (real + 0.05 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert follow_rates(noisy, sc["attributes"])["all"] >= 0.9  # 2.5 % pixel noise: still read


def test_each_corruption_is_caught_by_its_attribute(scenes):
    sc, real = scenes
    attrs = sc["attributes"]
    c, s = attrs[:, 0], attrs[:, 1]
    recoloured = _draw({**sc, "rgb": np.clip(sc["rgb"] - PALETTE[c] + PALETTE[(c + 3) % 6], 0, 255)})
    reshaped = _draw({**sc, "attributes": np.stack([c, (s + 1) % 3, attrs[:, 2]], 1)})
    rates = {name: follow_rates(x, attrs) for name, x in (("colour", recoloured), ("shape", reshaped))}
    assert rates["colour"] == {"color": 0.0, "shape": 1.0, "motion": 1.0, "all": 0.0}
    assert rates["shape"] == {"color": 1.0, "shape": 0.0, "motion": 1.0, "all": 0.0}
    linear = attrs[:, 2] < MOTIONS.index("bounce-vertical")
    hits = judge_moving_shapes(real.flip(2), attrs)  # reversed: the opposite direction; a bounce stays a bounce
    assert not hits[linear, 2].any() and hits[~linear, 2].all() and hits[:, :2].all()
    frozen = read_moving_shapes(real[:, :, :1].expand_as(real).contiguous())
    assert (frozen.motion == -1).all() and set(frozen.motion_reason) == {"static"}
    shuffled = read_moving_shapes(shuffle_frames(real[:18], torch.Generator().manual_seed(1)))  # each triple once
    assert (shuffled.motion == -1).all() and set(shuffled.motion_reason) == {"irregular"}
    assert (shuffled.color == c[:18]).all() and (shuffled.shape == s[:18]).all()  # frame order does not matter to them


def test_motion_of_path_reads_the_data_motions():
    t = np.arange(16.0)
    still = np.full(16, 16.0)
    assert motion_of_path(np.stack([still, 10 + 0.8 * t], 1), 32)[:2] == (MOTIONS.index("right"), "linear")
    assert motion_of_path(np.stack([20 - 0.5 * t, 20 - 0.5 * t], 1), 32)[0] == MOTIONS.index("up-left")
    along, _ = bounce(np.array([18.0]), np.array([2.0]), 16, np.array([7.0]), np.array([25.0]))
    assert motion_of_path(np.stack([along[0], still], 1), 32)[:2] == (MOTIONS.index("bounce-vertical"), "bounce")
    assert motion_of_path(np.stack([still, along[0]], 1), 32)[0] == MOTIONS.index("bounce-horizontal")
    assert motion_of_path(np.stack([still, still + 0.1 * t], 1), 32)[:2] == (-1, "static")
    assert motion_of_path(np.stack([still, 16 + 3 * (t % 2)], 1), 32)[:2] == (-1, "static")  # jitters, goes nowhere
    assert motion_of_path(np.stack([still, 12 + 8 * (t % 2)], 1), 32)[:2] == (-1, "irregular")
    gap = np.stack([still, 10 + t], 1)
    gap[3] = np.nan
    assert motion_of_path(gap, 32)[:2] == (-1, "no object")
    assert motion_of_path(np.stack([still, 5 + 0.4 * t], 1) / 2, 16)[0] == MOTIONS.index("right")  # lengths scale


def test_bad_input_is_one_clear_error(scenes):
    sc, real = scenes
    x = real[:2]
    with pytest.raises(ValueError, match=r"reads RGB clips \(N, 3, T, H, W\) in \[-1, 1\], got \(2, 1, 16, 32, 32\)"):
        read_moving_shapes(x[:, :1])
    with pytest.raises(ValueError, match="square frames of side >= 8, got 32x16"):
        read_moving_shapes(x[..., :16])
    bad = x.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        read_moving_shapes(bad)
    with pytest.raises(ValueError, match="motion id 10 is out of range; valid: 0..9"):
        follow_rates(x, [{"color": 0, "shape": 0, "motion": 10}] * 2)
    with pytest.raises(ValueError, match="unknown color 'pink'; valid: red, green"):
        follow_rates(x, [{"color": "pink", "shape": 0, "motion": 0}] * 2)
    with pytest.raises(ValueError, match="got 1 attribute rows for 2 clips"):
        follow_rates(x, [{"color": 0, "shape": 0, "motion": 0}])
    assert follow_rates(x, [{"color": "red", "shape": "circle", "motion": "up-right"}] * 2)["all"] == 0.5  # clip 0: 0,0,5


def cli(*args):
    return CliRunner().invoke(main_cli, [str(a) for a in args])


TINY = ["--set", "data.source=moving-shapes", "--set", "data.resolution=16", "--set", "data.options.frames=4",
        "--set", "data.options.num_clips=12", "--set", "train.batch_size=4", "--set", "sample.nfe=2", "--quiet"]


def test_eval_on_tiny_moving_shapes_runs(tmp_path):
    text_run = tmp_path / "t2v"
    res = cli("train", "tiny", "--out", text_run, "--steps", 2, *TINY, "--set", "data.conditional=false",
              "--set", "text.encoder=small")
    assert res.exit_code == 0, res.output
    out = tmp_path / "rep"
    res = cli("eval", text_run, "--out", out, "--n", 4, "--nfe", 2, "--quiet")
    assert res.exit_code == 0, res.output
    assert "heldout_all" in res.output and "(floor" in res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["format"] == "noisecraft-moving-shapes-report/1" and rep["conditioning"] == "text"
    assert rep["n_per_group"] == 4 and len(rep["prompts"]["heldout"]) == len(rep["prompts"]["seen"]) == 4
    for g in ("heldout", "seen"):
        for k in ("all", "color", "shape", "motion"):
            assert 0.0 <= rep["generated"][f"{g}_{k}"] <= 1.0 and 0.0 <= rep["noise_floor"][f"{g}_{k}"] <= 1.0
        assert rep["noise_floor"][f"{g}_color"] == 1.0  # real clips at 16x16, 4 frames: colour always read
    assert rep["prompts"]["heldout"][0] in load_moving_shapes(split="heldout", resolution=16, frames=4).captions[0]
    lines = (out / "prompts.txt").read_text().splitlines()
    assert len(lines) == 8 and lines[0].startswith("000000.gif\theldout\t") and lines[4].startswith("000004.gif\tseen\t")
    assert (out / "report.md").read_text().count("| heldout |") == 4 and (out / "samples.png").is_file()
    bad = cli("eval", text_run, "--out", tmp_path / "r2", "--metrics", "fvd")
    assert bad.exit_code == 2 and "not a moving-shapes metric; valid for moving-shapes runs: follow" in bad.output
    bad = cli("eval", text_run, "--out", tmp_path / "r3", "--n", 400)
    assert bad.exit_code == 2 and "valid: 2..324 clips per group" in bad.output

    class_run = tmp_path / "c2v"
    assert cli("train", "tiny", "--out", class_run, "--steps", 1, *TINY, "--set", "sample.per_class=1").exit_code == 0
    res = cli("eval", class_run, "--out", tmp_path / "rc", "--n", 2, "--nfe", 2, "--quiet")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rc" / "report.json").read_text())
    assert rep["conditioning"] == "class" and rep["prompts"]["heldout"] == ["red circle moving toward the top right",
                                                                           "red square moving right"]
    plain = tmp_path / "u2v"
    assert cli("train", "tiny", "--out", plain, "--steps", 1, *TINY, "--set", "data.conditional=false").exit_code == 0
    bad = cli("eval", plain, "--out", tmp_path / "ru", "--nfe", 2)
    assert bad.exit_code == 2 and "is unconditional" in bad.output and "text-conditional" in bad.output
