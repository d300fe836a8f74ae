"""Generation statistics of fields (`noisecraft.fields.statistics`) on sets with a known spectrum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisecraft.data import load_dataset
from noisecraft.data import fields as fdata
from noisecraft.fields import (MaternGRF, darcy_residuals, darcy_solution_errors, distribution_distance, pixel_statistics,
                               pixel_w1, radial_power_spectrum, solve_darcy, spectrum_errors, vorticity_statistics)
from noisecraft.fields.navier_stokes import velocity, SpectralGrid


def _shell_mean(values: torch.Tensor) -> torch.Tensor:
    """The band average of a per-wavevector array (N, N), by the same integer shells, written out by loops."""
    n = values.shape[0]
    k = np.fft.fftfreq(n, 1.0 / n)
    sums, counts = np.zeros(n // 2 + 1), np.zeros(n // 2 + 1)
    for i in range(n):
        for j in range(n):
            b = int(np.round(np.hypot(k[i], k[j])))
            if b <= n // 2:
                sums[b] += float(values[i, j]); counts[b] += 1
    return torch.from_numpy(sums / counts)


def test_spectrum_of_exact_grf_draws_is_the_shell_average_of_the_eigenvalues():
    grf = MaternGRF(32, nu=1.5, length=0.1, std=0.5)
    x = grf.sample(2000, seed=7)
    spec = radial_power_spectrum(x)
    expect = _shell_mean(grf.eigenvalues)  # E|F(x)_k|² / N² = λ_k for x = F⁻¹(√λ F(w)), w white
    err = spectrum_errors(spec, expect[None])
    assert spec.shape == (1, 17)
    assert float(err[0, 1:].max()) < 0.08  # sampling noise: a few % per band with 2000 fields
    assert float(err[0, 4:].max()) < 0.03  # more modes per band, less noise


def test_white_noise_is_flat_and_far_from_a_grf_at_high_wavenumbers():
    w = 0.5 * torch.randn(500, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spec = radial_power_spectrum(w)
    assert torch.allclose(spec[0, 1:], torch.full((16,), 0.25, dtype=torch.float64), rtol=0.1)  # σ² per mode
    grf = radial_power_spectrum(MaternGRF(32, nu=1.5, length=0.1, std=0.5).sample(500, seed=1))
    err = spectrum_errors(spec, grf)[0]
    assert float(err[-1]) > 100 and float(err[1]) > 0.9  # too much power at small scales, too little at large


def test_two_disjoint_grf_sets_agree_within_sampling_noise_and_a_scaled_set_does_not():
    grf = MaternGRF(32, nu=1.5, length=0.1, std=0.5)
    a, b = grf.sample(800, seed=1), grf.sample(800, seed=2)
    ref = radial_power_spectrum(a)
    assert float(spectrum_errors(radial_power_spectrum(b), ref)[0, 2:].max()) < 0.1
    assert float(spectrum_errors(radial_power_spectrum(1.2 * b), ref)[0, 2:].min()) > 0.3  # 1.44x power everywhere
    st = pixel_statistics(b)
    assert st["mean"][0] == pytest.approx(0.0, abs=0.02) and st["std"][0] == pytest.approx(0.5, abs=0.02)
    assert pixel_w1(a, b)[0] < 0.02
    assert pixel_w1(a, b + 0.1)[0] == pytest.approx(0.1, abs=0.02)  # a shift moves W1 by the shift


def test_darcy_residuals_of_real_pairs_are_small_and_of_perturbed_pairs_large(monkeypatch, tmp_path):
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 2, "test": 3} for k in fdata.FIELD_SPLIT_SIZES})
    ds = load_dataset("darcy", split="test", resolution=16)
    real = darcy_residuals(ds.to_physical(ds.data))
    assert real.shape == (3,) and real.max() < 1e-4  # float32 storage only
    noisy = ds.data.clone()
    noisy[:, 1] += 0.01 * torch.randn(noisy[:, 1].shape, generator=torch.Generator().manual_seed(0))
    assert darcy_residuals(ds.to_physical(noisy)).min() > 100 * real.max()
    a = np.full((8, 8), 2.0)
    exact = torch.from_numpy(np.stack([a, solve_darcy(a)]))[None]
    assert darcy_residuals(exact)[0] < 1e-12


def test_darcy_residuals_snap_a_soft_piecewise_coefficient_and_mark_nonphysical_pairs(monkeypatch, tmp_path):
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 2, "test": 3} for k in fdata.FIELD_SPLIT_SIZES})
    ds = load_dataset("darcy", split="test", resolution=16)
    real = ds.to_physical(ds.data).double()
    assert np.array_equal(darcy_residuals(real, levels=(3, 12)), darcy_residuals(real))  # already on {3, 12}
    soft = ds.data.clone()
    soft[:, 0] *= 0.7  # a in {4.35, 10.65}: the same interfaces, wrong values
    soft = ds.to_physical(soft).double()
    assert darcy_residuals(soft).min() > 1e3 * darcy_residuals(real).max()
    assert darcy_residuals(soft, levels=(3, 12)).max() < 1e-4  # snapping restores the true coefficient
    bad = real.clone()
    bad[1, 0, 4, 4] = -1.0  # not a medium
    res = darcy_residuals(bad)
    assert np.isinf(res[1]) and np.isfinite(res[[0, 2]]).all()
    with pytest.raises(ValueError, match="levels must be two values 0 < lo < hi"):
        darcy_residuals(real, levels=(12, 3))
    # u vs the solver's u for the pair's a: ~0 for real pairs, the relative change of a scaled u
    assert darcy_solution_errors(real).max() < 1e-5
    scaled = real.clone()
    scaled[:, 1] *= 1.1
    np.testing.assert_allclose(darcy_solution_errors(scaled), 0.1, rtol=1e-3)
    assert darcy_solution_errors(soft, levels=(3, 12)).max() < 1e-5 and darcy_solution_errors(soft).min() > 0.01
    assert np.isinf(darcy_solution_errors(bad)[1])


def _taylor_green(n: int, amp: float = 1.0) -> torch.Tensor:
    """ω = 2·amp·sin x·sin y on the n x n grid of [0, 2π)² (ψ = amp·sin x·sin y, u = amp·(sin x cos y, -cos x sin y))."""
    x = torch.arange(n, dtype=torch.float64) * 2 * np.pi / n
    return 2 * amp * torch.sin(x)[:, None] * torch.sin(x)[None, :]


def test_vorticity_statistics_of_taylor_green_vortices_are_exact():
    # ½⟨ω²⟩ = ½·4amp²·¼ = amp²/2; ½⟨|u|²⟩ = ½·amp²·(¼ + ¼) = amp²/4; ⟨ω⟩ = 0; max |ω| = 2amp (x = π/2 on the grid)
    amps = torch.tensor([1.0, 0.5, 3.0], dtype=torch.float64)
    w = torch.stack([_taylor_green(16, float(a)) for a in amps])[:, None]
    s = vorticity_statistics(w)
    np.testing.assert_allclose(s["enstrophy"], amps.numpy() ** 2 / 2, rtol=1e-12)
    np.testing.assert_allclose(s["energy"], amps.numpy() ** 2 / 4, rtol=1e-12)
    np.testing.assert_allclose(s["mean"], 0, atol=1e-14)
    np.testing.assert_allclose(s["max_abs"], 2 * amps.numpy(), rtol=1e-12)
    # a constant offset c is a nonzero circulation: it moves the mean and enstrophy, not the velocity
    s2 = vorticity_statistics(w + 0.25)
    np.testing.assert_allclose(s2["mean"], 0.25, rtol=1e-12)
    np.testing.assert_allclose(s2["enstrophy"], amps.numpy() ** 2 / 2 + 0.25**2 / 2, rtol=1e-12)
    np.testing.assert_allclose(s2["energy"], s["energy"], rtol=1e-12)


def test_velocity_from_any_vorticity_is_divergence_free_so_divergence_is_no_statistic():
    g = SpectralGrid(16)
    w = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # not a flow at all
    u, v = velocity(g.rfft(w), g)
    div = g.irfft(1j * g.kx * g.rfft(u) + 1j * g.ky * g.rfft(v))
    assert float(div.abs().max()) < 1e-12 * float(w.abs().max())


def test_real_navier_stokes_fields_have_zero_mean_vorticity(monkeypatch, tmp_path):
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 4, "test": 3} for k in fdata.FIELD_SPLIT_SIZES})
    ds = load_dataset("navier-stokes", split="test", resolution=16)
    s = vorticity_statistics(ds.to_physical(ds.data).double())
    rms = np.sqrt(2 * s["enstrophy"])
    assert (rms > 0.5).all() and (np.abs(s["mean"]) < 1e-6 * rms).all()  # float32 storage only
    assert (s["max_abs"] >= rms).all()


def test_distribution_distance_is_a_relative_w1():
    b = np.array([1.0, 2.0, 3.0])
    assert distribution_distance(b, b) == 0
    assert distribution_distance(b + 0.5, b) == pytest.approx(0.5 / 2.0)  # shift d: W1 = d; mean |b| = 2
    assert distribution_distance(np.array([2.0]), b) == pytest.approx((1 + 0 + 1) / 3 / 2.0)
    with pytest.raises(ValueError, match="reference values are all 0"):
        distribution_distance(b, np.zeros(3))


@pytest.mark.parametrize("call, fragment", [
    (lambda: vorticity_statistics(torch.zeros(2, 2, 8, 8)), "(N, 1, n, n) with n even"),
    (lambda: distribution_distance(np.array([]), np.ones(2)), "non-empty"),
    (lambda: radial_power_spectrum(torch.zeros(4, 8, 8)), "must be fields (N, C, H, W)"),
    (lambda: spectrum_errors(torch.ones(1, 5), torch.ones(1, 4)), "same shape"),
    (lambda: pixel_w1(torch.zeros(2, 1, 4, 4), torch.zeros(2, 2, 4, 4)), "same channels"),
    (lambda: darcy_residuals(torch.zeros(2, 1, 4, 4)), "(N, 2, n, n)"),
])
def test_bad_input_is_one_clear_error(call, fragment):
    with pytest.raises(ValueError, match=None) as e:
        call()
    assert fragment in str(e.value)
