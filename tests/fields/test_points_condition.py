"""Observation-conditioned field models (`[cond] image = "points"`, issue 14 item 3): random scattered-pixel
masks, the condition a reconstruction feeds them, and the `noisecraft reconstruct` round trip with
method "model"."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noisecraft.conditioning import ImageCondition, random_point_masks
from noisecraft.config import ConfigError, load_config
from noisecraft.data import load_dataset
from noisecraft.fields import Observations, observation_condition, resolve_method

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from field_helpers import use_small_fields  # noqa: E402


def test_point_masks_keep_a_log_uniform_fraction_of_pixels():
    gens = [torch.Generator().manual_seed(i) for i in range(400)]
    keep = random_point_masks(400, 32, 32, fraction_min=0.01, fraction_max=0.1, generator=gens)
    assert keep.shape == (400, 1, 32, 32) and set(keep.unique().tolist()) <= {0.0, 1.0}
    frac = keep.mean((1, 2, 3))
    # f log-uniform on [0.01, 0.1]: mean (0.1 - 0.01)/ln 10 = 0.0391; each mask's fraction lies near its f
    assert abs(float(frac.mean()) - 0.09 / math.log(10)) < 0.004
    assert float(frac.min()) < 0.02 and float(frac.max()) > 0.08
    again = random_point_masks(3, 32, 32, fraction_min=0.01, fraction_max=0.1,
                               generator=[torch.Generator().manual_seed(i) for i in range(3)])
    assert torch.equal(again, keep[:3])  # a mask depends only on its generator
    half = random_point_masks(1, 64, 64, fraction_min=0.5, fraction_max=0.5, generator=torch.Generator().manual_seed(0))
    assert abs(float(half.mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="need 0 < fraction_min <= fraction_max <= 1"):
        random_point_masks(1, 4, 4, fraction_min=0.2, fraction_max=0.1, generator=None)


def test_points_condition_is_x0_on_the_kept_pixels_and_the_mask():
    cond = ImageCondition("points", 2, points_min=0.05, points_max=0.2)
    assert cond.cond_channels == 3 and cond.meta()["points_min"] == 0.05
    x0 = torch.randn(4, 2, 16, 16)
    c = cond.build(x0, [torch.Generator().manual_seed(i) for i in range(4)])
    keep = c[:, 2:]
    assert c.shape == (4, 3, 16, 16) and 0 < float(keep.mean()) < 0.3
    assert torch.equal(c[:, :2], x0 * keep)


def test_observation_condition_places_the_values_on_the_grid():
    obs = Observations(torch.tensor([[0, 1], [3, 2]]), torch.tensor([[1.5, -2.0], [0.25, 4.0]], dtype=torch.float64), 0.0)
    c = observation_condition(obs, (2, 4, 4))
    assert c.shape == (1, 3, 4, 4) and float(c[0, 2].sum()) == 2
    assert c[0, :, 0, 1].tolist() == [1.5, -2.0, 1.0] and c[0, :, 3, 2].tolist() == [0.25, 4.0, 1.0]
    assert float(c[0, :2].abs().sum()) == pytest.approx(1.5 + 2 + 0.25 + 4)


def test_resolve_method_fits_the_method_to_the_model():
    assert resolve_method(None, True) == "model" and resolve_method(None, False) == "dps"
    assert resolve_method("pigdm", False) == "pigdm"
    with pytest.raises(ValueError, match="this run is observation-conditioned .* use method 'model'"):
        resolve_method("dps", True)
    with pytest.raises(ValueError, match="needs an observation-conditioned run .* valid: projection, pigdm, dps, tmpd$"):
        resolve_method("model", False)


@pytest.mark.parametrize("overrides, fragment", [
    (["cond.points_min=0"], "cond.points_min = 0"),
    (["cond.points_min=0.2", "cond.points_max=0.1"], "cond.points_max = 0.1"),
])
def test_bad_points_options(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", "\\.")):
        load_config("tiny", overrides=["cond.image='points'", *overrides])


@pytest.fixture()
def small(monkeypatch, tmp_path):
    return use_small_fields(monkeypatch, tmp_path)


def _train(out, *extra):
    result = run("train", "tiny", "--out", out, "--steps", 2, "--set", "data.source='grf'", "--set", "data.resolution=8",
                 "--set", "data.conditional=false", "--set", "train.batch_size=4", "--set", "sample.nfe=2",
                 "--set", "ema.phema_every=0", "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return out


def test_reconstruct_cli_with_an_observation_conditioned_run(small):
    points = _train(small / "points", "--set", "cond.image='points'")
    truth = load_dataset("grf", split="test", resolution=8).data[0]
    np.savez(small / "truth.npz", field=truth.numpy())
    np.savez(small / "obs.npz", idx=np.array([[0, 0], [3, 4], [7, 7]]), values=truth[0, [0, 3, 7], [0, 4, 7]].numpy())
    out = small / "rec"
    result = run("reconstruct", points, "--observations", small / "obs.npz", "--n", 3, "--seed", 2,
                 "--truth", small / "truth.npz", "--out", out)
    assert result.exit_code == 0, result.output
    assert "(model, 3 points)" in result.output
    with np.load(out / "posterior.npz", allow_pickle=False) as z:
        assert z["samples"].shape == (3, 1, 8, 8) and np.isfinite(z["samples"]).all()
        assert z["std"].max() > 0  # three different draws
    from noisecraft.runs import Run
    from noisecraft.web.jobs import tasks_of

    assert tasks_of(Run.open(points)) == ["generate", "reconstruct"]  # the web app's Reconstruct tab (method model)
    assert_user_error(run("reconstruct", points, "--observations", small / "obs.npz", "--method", "dps",
                          "--out", small / "r"), "--method 'dps' wraps an unconditional model", "use method 'model'")
    plain = _train(small / "plain")
    assert_user_error(run("reconstruct", plain, "--observations", small / "obs.npz", "--method", "model",
                          "--out", small / "r"), "--method 'model' needs an observation-conditioned run")
