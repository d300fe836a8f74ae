"""optimize_schedule: a valid schedule within budget that beats the default on held-out noise."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc


def test_optimized_schedule_beats_default_on_held_out_noise(mixture2d, counting):
    g = torch.Generator().manual_seed(0)
    calib = torch.randn(32, 2, generator=g, dtype=torch.float64)
    held_out = torch.randn(64, 2, generator=g, dtype=torch.float64)
    # dpmpp_2m_exact: the solver this margin was measured with (the published dpmpp_2m's default
    # schedule is better at NFE 6, and its optimized schedule reaches 0.74x rather than < 0.7x).
    kw = dict(solver="dpmpp_2m_exact", nfe=6, sigma_min=0.01, sigma_max=80.0)
    sigmas = nc.optimize_schedule(mixture2d, calib, max_evals=200, **kw)
    assert sigmas.shape == (7,) and sigmas[-1] == 0 and torch.all(torch.diff(sigmas) < 0)
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-2]) >= 0.01 * (1 - 1e-9)

    ref = nc.solve_pf_ode(mixture2d, held_out * 80.0, 80.0, 0.0)
    den = counting(mixture2d)
    tuned = nc.sample(den, held_out, solver="dpmpp_2m_exact", sigmas=sigmas, nfe=6)
    assert den.calls == 6
    default = nc.sample(mixture2d, held_out, **kw)
    err = lambda out: float((out - ref).pow(2).mean().sqrt())  # noqa: E731
    assert err(tuned) < 0.7 * err(default), (err(tuned), err(default))


def test_rejects_stochastic_and_adaptive(mixture2d):
    noise = torch.randn(4, 2, dtype=torch.float64)
    for solver in ["ddpm", "adaptive_rk"]:
        with pytest.raises(ValueError, match="deterministic fixed-step"):
            nc.optimize_schedule(mixture2d, noise, solver=solver, nfe=6, sigma_min=0.01, sigma_max=80.0)
