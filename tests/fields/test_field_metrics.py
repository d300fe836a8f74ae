"""Uncertainty scores on cases with known answers, and the baselines on a GRF."""

from __future__ import annotations

import math

import pytest
import torch

from noisecraft.fields import (MaternGRF, coverage, crps, cubic_baseline, gaussian_coverage, gaussian_crps, gp_baseline,
                               mean_baseline, posterior_scores, random_observations, relative_l2,
                               spread_skill)


def _calibrated(n=64, pixels=4000, seed=0):
    """Truth and ensemble drawn from the same N(0, 1) per pixel: a perfectly calibrated forecast."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(pixels, generator=g, dtype=torch.float64), torch.randn(n, pixels, generator=g, dtype=torch.float64)


def test_coverage_and_spread_skill_of_a_calibrated_ensemble():
    truth, ens = _calibrated()
    assert coverage(ens, truth, 0.5) == pytest.approx(0.5, abs=0.03)
    assert coverage(ens, truth, 0.9) == pytest.approx(0.9, abs=0.02)
    small_truth, small = _calibrated(n=32, pixels=20000, seed=1)  # a small ensemble is not penalized for its size
    assert coverage(small, small_truth, 0.9) == pytest.approx(0.9, abs=0.015)
    assert spread_skill(ens, truth) == pytest.approx(1.0, abs=0.05)
    over = 0.5 * ens  # over-confident: too narrow
    assert coverage(over, truth, 0.9) < 0.7 and spread_skill(over, truth) < 0.6
    zeros = torch.zeros_like(truth)
    assert gaussian_coverage(zeros, torch.ones_like(truth), truth, 0.9) == pytest.approx(0.9, abs=0.02)


def test_crps_matches_the_gaussian_closed_form_and_the_point_forecast_limit():
    truth, ens = _calibrated(n=400, pixels=500)
    exact = gaussian_crps(torch.zeros(500), torch.ones(500), truth)
    assert crps(ens, truth) == pytest.approx(exact, rel=0.03)
    # the closed form at y = μ is σ(√2 - 1)/√π
    assert gaussian_crps(torch.zeros(1), torch.ones(1), torch.zeros(1)) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    # a collapsed ensemble scores the absolute error
    point = torch.full((5, 3), 2.0)
    assert crps(point, torch.tensor([1.0, 2.0, 4.0])) == pytest.approx((1 + 0 + 2) / 3)


def test_relative_l2_and_bad_levels():
    assert relative_l2(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="level must be in \\(0, 1\\)"):
        coverage(torch.zeros(3, 2), torch.zeros(2), 90)
    with pytest.raises(ValueError, match="at least 2 samples"):
        crps(torch.zeros(1, 2), torch.zeros(2))


def test_posterior_scores_of_an_ensemble_a_gaussian_and_a_point_forecast():
    truth, ens = _calibrated(n=32, pixels=3000, seed=2)
    truth = truth.reshape(1, 50, 60)
    ens = ens.reshape(32, 1, 50, 60)
    zeros, ones = torch.zeros_like(truth), torch.ones_like(truth)
    row = posterior_scores(truth, ens.mean(0), ens.std(0), ens)
    assert row == {"rel_l2": relative_l2(ens.mean(0), truth), "cov50": coverage(ens, truth, 0.5),
                   "cov90": coverage(ens, truth, 0.9), "crps": crps(ens, truth), "spread_skill": spread_skill(ens, truth)}
    assert row["cov90"] == pytest.approx(0.9, abs=0.02) and row["spread_skill"] == pytest.approx(1.0, abs=0.06)
    gauss = posterior_scores(truth, zeros, ones)  # the true predictive N(0, 1)
    assert set(gauss) == {"rel_l2", "cov50", "cov90", "crps"} and gauss["cov90"] == pytest.approx(0.9, abs=0.02)
    assert gauss["crps"] == pytest.approx(gaussian_crps(zeros, ones, truth))
    assert posterior_scores(truth, truth) == {"rel_l2": 0.0}  # a point forecast: error only
    with pytest.raises(ValueError, match="must have the truth's shape"):
        posterior_scores(truth, zeros[0])
    with pytest.raises(ValueError, match="samples must be"):
        posterior_scores(truth, zeros, ones, ens[:, 0])


def test_baselines_on_a_grf():
    grf = MaternGRF(24, nu=1.5, length=0.15, std=0.5)
    truth = grf.sample(1, seed=11)[0]
    obs = random_observations(truth, 0.1, seed=3)
    exact = grf.posterior(obs.idx, obs.values[:, 0])
    gp_mean, gp_std = gp_baseline(obs, truth.shape, restarts=0)
    cubic = cubic_baseline(obs, truth.shape)
    flat = mean_baseline(grf.sample(200, seed=4))
    e_exact, e_gp = relative_l2(exact.mean, truth), relative_l2(gp_mean, truth)
    e_cubic, e_flat = relative_l2(cubic, truth), relative_l2(flat, truth)
    assert e_exact < e_flat and e_gp < e_flat and e_cubic < 1.2 * e_flat
    assert e_gp < 1.3 * e_exact  # fitted kriging is close to kriging with the true kernel
    assert gp_std.shape == truth.shape and (gp_std[0, obs.idx[:, 0], obs.idx[:, 1]] < 0.05).all()
    assert torch.isfinite(cubic).all() and (cubic[0, obs.idx[:, 0], obs.idx[:, 1]] - obs.values[:, 0]).abs().max() < 1e-9
