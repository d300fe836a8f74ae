"""Noise processes: σ(t), s(t), inverses and derivatives agree with each other and the literature."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft as nc

PROCESSES = [
    nc.VEProcess(),
    nc.VPProcess(),
    nc.DiscreteVPProcess("linear"),
    nc.DiscreteVPProcess("scaled_linear", beta_start=0.00085, beta_end=0.012),
    nc.DiscreteVPProcess("cosine"),
    nc.FlowProcess(),
]


@pytest.mark.parametrize("proc", PROCESSES, ids=repr)
def test_inverse_round_trip(proc):
    t = torch.linspace(proc.t_min, proc.t_max, 37, dtype=torch.float64)
    torch.testing.assert_close(proc.t_of_sigma(proc.sigma(t)), t, rtol=1e-9, atol=1e-9)
    assert torch.all(torch.diff(proc.sigma(t)) > 0), "σ(t) must increase"


@pytest.mark.parametrize("proc", PROCESSES, ids=repr)
def test_derivatives_match_finite_differences(proc):
    t = torch.linspace(proc.t_min, proc.t_max, 11, dtype=torch.float64)[1:-1] + 0.37 * (proc.t_max - proc.t_min) / 10
    eps = 1e-6 * (proc.t_max - proc.t_min)
    fd_sigma = (proc.sigma(t + eps) - proc.sigma(t - eps)) / (2 * eps)
    fd_scale = (proc.scale(t + eps) - proc.scale(t - eps)) / (2 * eps)
    torch.testing.assert_close(proc.dsigma_dt(t), fd_sigma, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(proc.dscale_dt(t), fd_scale, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("proc", PROCESSES, ids=repr)
def test_scale_of_sigma_consistent(proc):
    t = torch.linspace(proc.t_min, proc.t_max, 9, dtype=torch.float64)
    torch.testing.assert_close(proc.scale_of_sigma(proc.sigma(t)), proc.scale(t), rtol=1e-9, atol=1e-12)


def test_discrete_vp_matches_ddpm_alphas():
    proc = nc.DiscreteVPProcess("linear")
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    t = torch.tensor([0.0, 10.0, 500.0, 999.0], dtype=torch.float64)
    idx = t.long()
    torch.testing.assert_close(proc.scale(t) ** 2, alpha_bar[idx])
    torch.testing.assert_close(proc.sigma(t), ((1 - alpha_bar[idx]) / alpha_bar[idx]).sqrt())
    assert math.isclose(proc.sigma_min, 0.01, rel_tol=1e-3) and 157 < proc.sigma_max < 158


def test_add_noise_is_the_forward_process():
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([0.1, 0.3, 0.5, 0.9])
    flow = nc.FlowProcess()
    torch.testing.assert_close(flow.add_noise(x0, eps, t), (1 - t)[:, None] * x0 + t[:, None] * eps)
    vp = nc.VPProcess()
    a = vp.scale(t.double()).float()[:, None]
    torch.testing.assert_close(vp.add_noise(x0, eps, t), a * x0 + (1 - a**2).sqrt() * eps, rtol=1e-5, atol=1e-6)


def test_continuous_vp_closed_form():
    vp = nc.VPProcess(beta_min=0.1, beta_max=20.0)
    t = torch.tensor(0.5, dtype=torch.float64)
    log_ab = -(0.1 * 0.5 + 0.5 * 19.9 * 0.25)
    assert math.isclose(float(vp.sigma(t)), math.sqrt(math.exp(-log_ab) - 1), rel_tol=1e-12)


@pytest.mark.parametrize("bad", [
    lambda: nc.VEProcess(1.0, 0.5),
    lambda: nc.VPProcess(beta_min=2.0, beta_max=1.0),
    lambda: nc.FlowProcess(t_max=1.0),
    lambda: nc.DiscreteVPProcess("quadratic"),
    lambda: nc.get_process("edm"),
])
def test_bad_process_arguments(bad):
    with pytest.raises(ValueError):
        bad()
