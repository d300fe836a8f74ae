"""Stochastic samplers reproduce the data distribution when the denoiser is exact."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft as nc

# `consistency` maps through a consistency function, not a denoiser: it samples the data only with a
# consistency model (checked against the exact ODE map in tests/distill/test_losses.py)
STOCHASTIC = [n for n, i in nc.SOLVERS.items() if i.stochastic and n != "consistency"]


@pytest.mark.parametrize("name", STOCHASTIC)
def test_reproduces_mixture_weights_and_moments(name, mixture2d):
    """Multi-modal data: the right share of samples in each mode, each mode's mean and a coarse
    check of its width (the exact width check is the Gaussian test below)."""
    n = 4000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = nc.sample(mixture2d, noise, solver=name, nfe=200, sigma_min=0.005, sigma_max=80.0,
                    generator=torch.Generator().manual_seed(1))
    # Assign each sample to its most likely component and compare with the truth.
    comp = mixture2d.component_log_probs(out).argmax(1)
    weights = torch.bincount(comp, minlength=3).double() / n
    torch.testing.assert_close(weights, mixture2d.weights, atol=0.03, rtol=0)
    for k in range(3):
        pts = out[comp == k]
        torch.testing.assert_close(pts.mean(0), mixture2d.means[k], atol=0.05, rtol=0)
        std = pts.std(0)
        true = mixture2d.vars[k].sqrt()
        assert torch.all((std / true - 1).abs() < 0.12), f"{name}: component {k} std {std} vs {true}"


@pytest.mark.parametrize("name", STOCHASTIC)
def test_gaussian_data_gets_the_exact_mean_and_std(name):
    """x0 ~ N(μ, diag(s²)) over 8 coordinates with s from 0.2 to 1.0: the samples' mean and std
    must be μ and s. n = 4000 draws in float64 (the denoiser is exact, so only Monte-Carlo error and
    the solver's discretization error remain).

    Tolerances. Mean: 4 standard errors s/sqrt(n) per coordinate. Std: the relative standard error
    of a std from n draws is 1/sqrt(2n) = 1.1 % per coordinate and 0.40 % pooled over the 8
    (whitened) coordinates; the bounds are 4 standard errors plus 1 % of discretization bias (the
    first-order samplers at 600 calls, measured: pooled -0.9 % worst, ddpm). A sampler whose noise
    is 10 % too large or too small is 8-10 % off (measured) and fails."""
    n, nfe = 4000, 600
    mu = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)
    s = torch.linspace(0.2, 1.0, 8, dtype=torch.float64)
    gaussian = nc.GaussianMixture(mu[None], s[None])
    noise = torch.randn(n, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = nc.sample(gaussian, noise, solver=name, nfe=nfe, sigma_min=0.005, sigma_max=80.0,
                    generator=torch.Generator().manual_seed(1))
    z_mean = (out.mean(0) - mu) / (s / math.sqrt(n))
    assert z_mean.abs().max() < 4, f"{name}: mean off by {z_mean} standard errors"
    ratio = out.std(0) / s  # (8,), 1 when the width is right
    assert (ratio - 1).abs().max() < 4 / math.sqrt(2 * n) + 0.01, f"{name}: std / true std = {ratio}"
    pooled = ratio.pow(2).mean().sqrt()
    assert abs(pooled - 1) < 4 / math.sqrt(2 * n * 8) + 0.01, f"{name}: pooled std / true std = {pooled}"
