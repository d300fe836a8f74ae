"""The pseudo-spectral vorticity solver: divergence-free velocity, Taylor-Green decay, conservation of
energy and enstrophy without viscosity and forcing, and a statistically steady Kolmogorov flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisecraft.fields.grf import MaternGRF
from noisecraft.fields.navier_stokes import (NSConfig, SpectralGrid, energy, enstrophy, kolmogorov_snapshots, simulate,
                                             velocity)


def _grid(n):
    x = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    return torch.meshgrid(x, x, indexing="ij")


def test_velocity_is_divergence_free_and_has_the_vorticity():
    n = 32
    g = SpectralGrid(n)
    w = MaternGRF(n, nu=1.5, length=0.15, std=1.0).sample(2, seed=0)[:, 0]
    w = g.irfft(g.rfft(w) * g.dealias)
    w = w - w.mean((-2, -1), keepdim=True)  # band-limited with zero mean: a vorticity on the torus
    u, v = velocity(g.rfft(w), g)
    div = g.irfft(1j * g.kx * g.rfft(u) + 1j * g.ky * g.rfft(v))
    curl = g.irfft(1j * g.kx * g.rfft(v) - 1j * g.ky * g.rfft(u))
    assert div.abs().max() < 1e-10 * w.abs().max()
    torch.testing.assert_close(curl, w, rtol=1e-9, atol=1e-9)
    # and by a second-order finite difference too (not only the spectral identity)
    h = 2 * math.pi / n
    div_fd = (torch.roll(u, -1, 1) - torch.roll(u, 1, 1) + torch.roll(v, -1, 2) - torch.roll(v, 1, 2)) / (2 * h)
    assert div_fd.abs().max() < 0.05 * (u.abs().max() / h)


def test_taylor_green_vortex_decays_as_the_exact_solution():
    x, y = _grid(16)
    w0 = (2 * torch.sin(x) * torch.sin(y))[None]
    cfg = NSConfig(nu=0.05, drag=0.1, forcing_wavenumber=0, dt=0.05)
    w = simulate(w0, cfg, 2.0)
    exact = w0 * math.exp(-(2 * 0.05 + 0.1) * 2.0)  # -ν|k|² - α with |k|² = 2; the advection term is 0
    torch.testing.assert_close(w, exact, rtol=0, atol=1e-10)
    wrong_sign = w0 * math.exp(+(2 * 0.05 + 0.1) * 2.0)
    assert (w - wrong_sign).abs().max() > 0.1


def test_inviscid_unforced_flow_conserves_energy_and_enstrophy_while_it_moves():
    w0 = MaternGRF(32, nu=1.5, length=0.15, std=1.0).sample(2, seed=1)[:, 0]
    drift = []
    for dt in (0.02, 0.01):
        w = simulate(w0, NSConfig(nu=0.0, drag=0.0, forcing_wavenumber=0, dt=dt), 2.0)
        drift.append(max((energy(w) / energy(w0) - 1).abs().max().item(), (enstrophy(w) / enstrophy(w0) - 1).abs().max().item()))
        moved = torch.corrcoef(torch.stack([w[0].flatten(), w0[0].flatten()]))[0, 1]
        assert moved < 0.8  # the nonlinear term really acts
    # measured: 4.2e-8 at Δt = 0.02 and 1.3e-9 at 0.01 (RK4's time error only; the spatial scheme conserves both)
    assert drift[0] < 1e-6 and drift[1] < drift[0] / 8


def test_kolmogorov_snapshots_are_forced_turbulence():
    cfg = NSConfig(spinup=4.0)
    w = kolmogorov_snapshots(32, 0, np.arange(3), cfg)
    assert torch.isfinite(w).all() and w.shape == (3, 32, 32)
    e = energy(w)
    assert (e > 0.1).all() and (e < 5).all()
    assert not torch.allclose(w[0], w[1])
    # the same index gives the same trajectory, whatever the batch
    torch.testing.assert_close(kolmogorov_snapshots(32, 0, np.array([2]), cfg)[0], w[2], rtol=1e-9, atol=1e-9)


def test_bad_grid_size_is_refused():
    with pytest.raises(ValueError, match="even integer >= 4, got 7"):
        SpectralGrid(7)
