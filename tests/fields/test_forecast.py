"""Forecasting (issue 14 item 5): the navier-stokes-forecast pairs follow the solver, the "previous" condition
feeds the state before each example, ensemble rollouts match an exact Gaussian AR(1) oracle, and the
`noisecraft data export` / `noisecraft forecast` round trip."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noisecraft.conditioning import ImageCondition, conditioners_for_training
from noisecraft.conditioning.base import Batch
from noisecraft.config import ConfigError, load_config
from noisecraft.data import fields as fdata
from noisecraft.data import load_dataset
from noisecraft.fields import Forecast, forecast_scores, relative_l2, rollout
from noisecraft.fields.navier_stokes import simulate
from noisecraft.sampling.spec import SamplingSpec

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from field_helpers import use_small_fields  # noqa: E402


@pytest.fixture()
def small(monkeypatch, tmp_path):
    return use_small_fields(monkeypatch, tmp_path)


def test_trajectories_follow_the_solver_and_pair_up(small):
    ds = fdata.load_navier_stokes_forecast(split="test", resolution=16, steps=3, interval=0.1)
    traj = ds.trajectories
    assert traj.shape == (4, 4, 1, 16, 16) and ds.data.shape == ds.previous.shape == (12, 1, 16, 16)
    assert ds.modality == "field" and ds.steps == 3 and ds.interval == 0.1
    start = load_dataset("navier-stokes", split="test", resolution=16).data
    assert torch.equal(traj[:, 0], start)  # state 0 is the navier-stokes field as stored
    for k in range(3):  # each state is the solver's, 0.1 time units (5 steps) after the one before
        want = simulate(traj[:, k, 0].double() * fdata.NS_SCALE, fdata.NS_CONFIG, 0.1) / fdata.NS_SCALE
        torch.testing.assert_close(traj[:, k + 1, 0].double(), want, atol=2e-5, rtol=0)
        assert relative_l2(traj[:, k + 1], traj[:, k]) > 0.01  # the flow moves
    for j in range(4):
        for k in range(3):
            assert torch.equal(ds.data[3 * j + k], traj[j, k + 1]) and torch.equal(ds.previous[3 * j + k], traj[j, k])
    again = fdata.load_navier_stokes_forecast(split="test", resolution=16, steps=3, interval=0.1)  # from the cache
    assert torch.equal(again.trajectories, traj)
    assert len(list((small / "cache" / "datasets" / "navier-stokes-forecast").glob("*.safetensors"))) == 1


@pytest.mark.parametrize("kw, fragment", [
    (dict(steps=0), "steps = 0 is not valid; valid: an integer 1..256"),
    (dict(interval=0.03), "interval = 0.03 is not valid; valid: a multiple of the solver's time step 0.02"),
    (dict(interval=-1.0), "interval = -1.0 is not valid"),
    (dict(resolution=15), "resolution 15 is too small for 'navier-stokes-forecast'; valid: >= 16 and even"),
])
def test_bad_forecast_options(small, kw, fragment):
    with pytest.raises(ValueError) as e:
        fdata.load_navier_stokes_forecast(split="test", **kw)
    assert fragment in str(e.value)


def test_previous_condition_reads_the_state_before_each_example(small):
    ds = fdata.load_navier_stokes_forecast(split="test", resolution=16, steps=2)
    cond = ImageCondition("previous", 1)
    assert cond.cond_channels == 1 and cond.meta()["image"] == "previous"
    idx = torch.tensor([5, 0, 3])
    got = cond.train_inputs(None, Batch(ds.data[idx], idx, ds), torch.Generator(), "cpu")["image_cond"]
    assert torch.equal(got, ds.previous[idx])
    assert torch.equal(cond.preview_values(ds, idx), ds.previous[idx])
    with pytest.raises(ValueError, match="cannot be built from x0"):
        cond.build(ds.data[idx], torch.Generator())
    with pytest.raises(Exception, match="noisecraft forecast RUN --state"):
        cond.default_value(2)


def test_previous_condition_needs_forecasting_data(small):
    cfg = load_config("tiny", overrides=["cond.image='previous'", "data.conditional=false", "data.source='grf'",
                                         "data.resolution=8"])
    with pytest.raises(ConfigError, match="only forecasting data holds \\(data.source = 'navier-stokes-forecast'\\)"):
        conditioners_for_training(cfg, load_dataset("grf", split="test", resolution=8))


class AR1Oracle:
    """The exact denoiser of x_{k+1} | x_k ~ N(a·x_k, s²·I): E[x0 | x, σ] = (s²·x + σ²·a·c) / (s² + σ²)."""

    def __init__(self, a: float, s: float):
        self.a, self.s = a, s

    def __call__(self, x, sigma, image_cond):
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1))) ** 2
        return (self.s**2 * x + s2 * self.a * image_cond) / (self.s**2 + s2)


def test_rollout_matches_the_exact_ar1_distribution():
    """Each member's draw is fed back as its next condition: after k steps the ensemble is
    N(a^k·x0, s²·(1 - a^2k)/(1 - a²)) exactly (sampler error aside)."""
    a, s, n = 0.6, 0.5, 3000
    x0 = torch.tensor([[[1.0, -2.0], [0.5, 3.0]]])  # (1, 2, 2)
    spec = SamplingSpec(solver="heun", nfe=39, seed=7)
    fc = rollout(AR1Oracle(a, s), x0, 3, n=n, spec=spec)
    assert fc.samples.shape == (n, 3, 1, 2, 2) and fc.mean.shape == fc.std.shape == (3, 1, 2, 2)
    for k in range(1, 4):
        x = fc.samples[:, k - 1].double()
        var = s**2 * (1 - a ** (2 * k)) / (1 - a**2)
        se = math.sqrt(var / n)
        torch.testing.assert_close(x.mean(0), a**k * x0.double(), atol=4 * se, rtol=0)
        assert abs(float(x.var(0).mean()) / var - 1) < 0.05  # 4 x 3000 draws: standard error ~1.3 %
    again = rollout(AR1Oracle(a, s), x0, 3, n=n, spec=spec)
    assert torch.equal(again.samples, fc.samples)  # the seed fixes the ensemble
    other = rollout(AR1Oracle(a, s), x0, 1, n=4, spec=SamplingSpec(solver="heun", nfe=39, seed=8))
    assert not torch.equal(other.samples[:, 0], fc.samples[:4, 0])


def test_rollout_refuses_bad_input():
    oracle = AR1Oracle(0.5, 0.5)
    with pytest.raises(ValueError, match="state must be a float tensor \\(C, H, W\\)"):
        rollout(oracle, torch.zeros(4, 4), 2)
    with pytest.raises(ValueError, match="got a batch of 3"):
        rollout(oracle, torch.zeros(3, 1, 4, 4), 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        rollout(oracle, torch.full((1, 4, 4), math.nan), 2)
    with pytest.raises(ValueError, match="steps must be an integer 1..10000, got 0"):
        rollout(oracle, torch.zeros(1, 4, 4), 0)


def test_forecast_scores_against_truth_and_persistence():
    g = torch.Generator().manual_seed(0)
    centre = torch.randn(2, 1, 4, 4, generator=g)  # truth and members: draws of the same distribution (calibrated)
    truth = centre + 0.3 * torch.randn(2, 1, 4, 4, generator=g)
    state = torch.randn(1, 4, 4, generator=g)
    members = centre[None] + 0.3 * torch.randn(50, 2, 1, 4, 4, generator=g)
    rows = forecast_scores(Forecast.of(members), truth, state)
    assert [r["lead"] for r in rows] == [1, 2]
    for j, r in enumerate(rows):
        assert r["persistence_rel_l2"] == pytest.approx(relative_l2(state, truth[j]))
        assert r["rel_l2"] == pytest.approx(relative_l2(members[:, j].mean(0), truth[j]), rel=1e-5)
        assert r["rel_l2"] < r["member_rel_l2"]  # the ensemble mean beats a member
        assert 0.6 < r["spread_skill"] < 1.6 and r["cov90"] > 0.7  # calibrated: spread ~ error
    with pytest.raises(ValueError, match="truth must be \\(K, C, H, W\\) = \\(2, 1, 4, 4\\)"):
        forecast_scores(Forecast.of(members), truth[:1], state)


@pytest.fixture()
def forecast_run(small):
    out = small / "run"
    result = run("train", "tiny", "--out", out, "--steps", 2, "--set", "data.source='navier-stokes-forecast'",
                 "--set", "data.resolution=16", "--set", "data.conditional=false", "--set", "cond.image='previous'",
                 "--set", "train.batch_size=4", "--set", "sample.nfe=2", "--set", "ema.phema_every=0", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_export_and_forecast_cli_round_trip(forecast_run, small, monkeypatch):
    monkeypatch.setattr(fdata, "FIELD_NATIVE_SIZE", 16)
    traj_dir = small / "traj"
    result = run("data", "export", "navier-stokes-forecast", "--split", "test", "--n", 2, "--out", traj_dir)
    assert result.exit_code == 0, result.output
    files = sorted(traj_dir.glob("*.npz"))
    assert len(files) == 2
    ds = load_dataset("navier-stokes-forecast", split="test", resolution=16)
    with np.load(files[0], allow_pickle=False) as z:
        assert sorted(z.files) == ["field", "trajectory"]
        assert z["trajectory"].shape == (fdata.FORECAST_STEPS + 1, 1, 16, 16)
        assert np.array_equal(z["field"], z["trajectory"][0])
        assert any(np.array_equal(z["trajectory"], t.numpy()) for t in ds.trajectories)
    out = small / "fc"
    result = run("forecast", forecast_run, "--state", files[0], "--truth", files[0], "--steps", 3, "--n", 3,
                 "--nfe", 2, "--seed", 4, "--out", out)
    assert result.exit_code == 0, result.output
    assert "3 steps (1.5 time units)" in result.output
    with np.load(out / "forecast.npz", allow_pickle=False) as z:
        assert z["samples"].shape == (3, 3, 1, 16, 16) and z["mean"].shape == z["std"].shape == (3, 1, 16, 16)
        np.testing.assert_allclose(z["mean"], z["samples"].mean(0), rtol=1e-5, atol=1e-6)
        samples = z["samples"]
    for png in ("member0.png", "mean.png", "std.png", "truth.png", "error.png"):
        assert (out / png).stat().st_size > 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["interval"] == 0.5 and [r["lead"] for r in doc["leads"]] == [1, 2, 3]
    truth = np.load(files[0])["trajectory"]
    assert doc["leads"][1]["persistence_rel_l2"] == pytest.approx(
        float(np.linalg.norm(truth[0] - truth[2]) / np.linalg.norm(truth[2])), rel=1e-5)
    again = small / "fc2"
    assert run("forecast", forecast_run, "--state", files[0], "--steps", 3, "--n", 3, "--nfe", 2, "--seed", 4,
               "--out", again).exit_code == 0
    assert np.array_equal(np.load(again / "forecast.npz")["samples"], samples)
    assert not (again / "metrics.json").exists()


def test_forecast_cli_errors(forecast_run, small):
    np.savez(small / "state.npz", field=np.zeros((1, 16, 16), np.float32))
    np.savez(small / "short.npz", trajectory=np.zeros((2, 1, 16, 16), np.float32))
    assert_user_error(run("forecast", forecast_run, "--state", small / "state.npz", "--truth", small / "short.npz",
                          "--steps", 3, "--out", small / "f"), "K >= steps + 1 = 4", "got (2, 1, 16, 16)")
    np.savez(small / "small_state.npz", field=np.zeros((1, 8, 8), np.float32))
    assert_user_error(run("forecast", forecast_run, "--state", small / "small_state.npz", "--out", small / "f"),
                      "expected (1, 16, 16)")
    assert_user_error(run("forecast", forecast_run, "--state", small / "state.npz", "--steps", 0, "--out", small / "f"),
                      "--steps 0 is out of range; valid: 1..1000")
    plain = small / "plain"
    assert run("train", "tiny", "--out", plain, "--steps", 1, "--set", "data.source='grf'", "--set", "data.resolution=8",
               "--set", "data.conditional=false", "--set", "ema.phema_every=0", "--quiet").exit_code == 0
    assert_user_error(run("forecast", plain, "--state", small / "state.npz", "--out", small / "f"),
                      "is not a next-state model", "[cond] image = 'previous'")
    assert_user_error(run("sample", forecast_run, "--n", 1, "--out", small / "s"), "noisecraft forecast RUN --state")
