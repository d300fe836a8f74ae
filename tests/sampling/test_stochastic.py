"""Stochastic samplers reproduce the data distribution when the denoiser is exact."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc

STOCHASTIC = [n for n, i in nc.SOLVERS.items() if i.stochastic]


@pytest.mark.parametrize("name", STOCHASTIC)
def test_reproduces_mixture_weights_and_moments(name, mixture2d):
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
