"""Step schedules: endpoints, monotonicity, closed forms, errors."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc
from noisecraft.core.schedules import OPEN_ENDED


@pytest.mark.parametrize("name", list(nc.SCHEDULES))
@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_shape_endpoints_monotone(name, n):
    s = nc.get_schedule(name, n, 0.01, 100.0)
    assert s.shape == (n + 1,) and s[-1] == 0
    torch.testing.assert_close(s[0], torch.tensor(100.0, dtype=torch.float64))
    if n > 1 and name not in OPEN_ENDED:
        torch.testing.assert_close(s[-2], torch.tensor(0.01, dtype=torch.float64))
    assert torch.all(torch.diff(s) < 0)


def test_karras_rho1_is_linear_and_loglinear_is_geometric():
    torch.testing.assert_close(nc.karras(5, 1.0, 5.0, rho=1.0)[:-1], torch.linspace(5.0, 1.0, 5, dtype=torch.float64))
    s = nc.loglinear(5, 0.01, 100.0)[:-1]
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, ratios[0].expand(4))


def test_flow_shift_one_is_uniform_in_t():
    s = nc.flow_shift(6, 0.01, 99.0, shift=1.0)[:-1]
    t = s / (1 + s)
    torch.testing.assert_close(torch.diff(t), torch.diff(t)[0].expand(5))
    shifted = nc.flow_shift(6, 0.01, 99.0, shift=3.0)[:-1]
    assert torch.all(shifted[1:-1] > s[1:-1])  # shift > 1 spends more steps at high noise


@pytest.mark.parametrize("n", [1, 3, 8])
def test_uniform_t_open_is_uniform_in_t_and_ends_at_t_max_over_n(n):
    s = nc.uniform_t_open(n, 0.002, 80.0)
    t = s / (1 + s)
    t_max = 80.0 / 81.0
    torch.testing.assert_close(t[:-1], t_max * (1 - torch.arange(n, dtype=torch.float64) / n))
    torch.testing.assert_close(s[-2], torch.tensor((t_max / n) / (1 - t_max / n), dtype=torch.float64))
    assert s[-1] == 0 and torch.all(torch.diff(s) < 0)


@pytest.mark.parametrize("n", [1, 5, 8, 9, 20])
def test_low_nfe_open_is_open_for_few_steps_then_the_knee_schedule(n):
    s = nc.low_nfe_open(n, 0.002, 80.0)
    expected = nc.uniform_t_open(n, 0.002, 80.0) if n <= 8 else nc.loglinear(n, 0.002, 80.0, knee=10.0)
    torch.testing.assert_close(s, expected, rtol=0, atol=0)
    assert nc.get_solver("unipc_3").schedule == "low_nfe_open"  # the default solver's default schedule
    torch.testing.assert_close(nc.default_sigmas("unipc_3", n, 0.002, 80.0), s, rtol=0, atol=0)


def test_low_nfe_open_beats_the_knee_schedule_at_five_steps_on_an_exact_mixture():
    """The reason it is the default below NFE 9: on a mixture outside the benchmark family
    (dimension 24, 6 components), unipc_3 at NFE 5 lands closer to the exact PF-ODE solution."""
    g = torch.Generator().manual_seed(3)
    mix = nc.GaussianMixture(2.0 * torch.randn(6, 24, generator=g, dtype=torch.float64),
                             0.05 + 0.3 * torch.rand(6, generator=g, dtype=torch.float64))
    noise = torch.randn(256, 24, generator=g, dtype=torch.float64)
    ref = nc.solve_pf_ode(mix, 80.0 * noise, 80.0, 0.0, rtol=1e-9, atol=1e-9)
    rmse = lambda sig: float((nc.sample(mix, noise, solver="unipc_3", sigmas=sig) - ref).pow(2).mean().sqrt())  # noqa: E731
    knee = rmse(nc.loglinear(5, 0.002, 80.0, knee=10.0))
    assert rmse(nc.default_sigmas("unipc_3", 5, 0.002, 80.0)) < 0.8 * knee


@pytest.mark.parametrize("args", [(0, 0.1, 1.0), (3, 1.0, 0.1), (3, 0.0, 1.0), (3, 0.1, float("inf")), (2.5, 0.1, 1.0)])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        nc.karras(*args)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="valid: karras, loglinear"):
        nc.get_schedule("cosine", 4, 0.1, 1.0)
