"""The Matérn GRF: its empirical covariance is the Matérn kernel, its denoiser and posterior are the
dense-matrix Gaussian formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisecraft.fields.grf import MaternGRF, field_noise, matern_kernel


def test_empirical_covariance_matches_the_matern_kernel():
    n, length, nu, std = 32, 0.1, 1.5, 0.5
    grf = MaternGRF(n, nu=nu, length=length, std=std)
    x = grf.sample(2000, seed=3)[:, 0]  # (B, N, N)
    # Stationary: average the lag-(d, 0) and lag-(0, d) products over every pixel and field.
    lags = np.arange(0, 8)
    emp = np.array([float((x * torch.roll(x, -d, dims=1)).mean() + (x * torch.roll(x, -d, dims=2)).mean()) / 2
                    for d in lags])
    kernel = matern_kernel(lags / n, nu=nu, length=length, std=std)
    exact = grf.covariance_function()[0, lags].numpy()
    # The grid's exact covariance is the periodized, Nyquist-truncated Matérn kernel: within 1.5 % of std².
    assert np.abs(exact - kernel).max() < 0.015 * std**2
    # Monte Carlo: 2000 fields x 1024 pixels; the correlated pixels leave a standard error of ~1 % of std².
    assert np.abs(emp - kernel).max() < 0.04 * std**2
    assert emp[0] == pytest.approx(std**2, rel=0.04) and emp[6] < 0.5 * emp[0]  # it decays with the lag


def test_the_kernel_check_would_see_a_wrong_length_scale():
    grf = MaternGRF(32, nu=1.5, length=0.11, std=0.5)  # 10 % longer
    lags = np.arange(1, 6)
    wrong = grf.covariance_function()[0, lags].numpy()
    assert np.abs(wrong - matern_kernel(lags / 32, nu=1.5, length=0.1, std=0.5)).max() > 0.02 * 0.25


def test_field_i_depends_only_on_seed_and_index():
    a = field_noise(5, [0, 1, 2, 3], (4, 4))
    b = field_noise(5, [2], (4, 4))
    assert np.array_equal(a[2], b[0]) and not np.array_equal(a[0], a[1])
    grf = MaternGRF(8)
    assert torch.equal(grf.sample(4, seed=1)[3], grf.sample(1, seed=1, start=3)[0])


def _dense(grf: MaternGRF) -> torch.Tensor:
    n = grf.size
    grid = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1).reshape(-1, 2)
    return grf.covariance(grid, grid)  # (N², N²)


def test_denoiser_is_the_dense_gaussian_posterior_mean():
    grf = MaternGRF(8, nu=1.5, length=0.2, std=0.5, mean=0.1)
    c = _dense(grf)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.05, 0.5, 3.0], dtype=torch.float64)
    out = grf.denoise(x, sigma)
    for b in range(3):
        want = 0.1 + c @ torch.linalg.solve(c + sigma[b] ** 2 * torch.eye(64, dtype=torch.float64), x[b].reshape(-1) - 0.1)
        torch.testing.assert_close(out[b].reshape(-1), want, rtol=1e-9, atol=1e-9)


def test_posterior_is_dense_kriging_and_matheron_samples_agree():
    grf = MaternGRF(8, nu=1.5, length=0.2, std=0.5)
    c = _dense(grf)
    idx = torch.tensor([[0, 0], [3, 5], [7, 2], [4, 4]])
    flat = idx[:, 0] * 8 + idx[:, 1]
    y = torch.tensor([0.3, -0.2, 0.5, 0.0], dtype=torch.float64)
    post = grf.posterior(idx, y, noise_std=0.1)
    k = c[flat][:, flat] + 0.01 * torch.eye(4, dtype=torch.float64)
    mean = c[:, flat] @ torch.linalg.solve(k, y)
    cov = c - c[:, flat] @ torch.linalg.solve(k, c[flat])
    torch.testing.assert_close(post.mean.reshape(-1), mean, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(post.std.reshape(-1) ** 2, cov.diagonal(), rtol=1e-8, atol=1e-9)
    s = grf.posterior_samples(idx, y, 4000, seed=0, noise_std=0.1)
    assert (s.mean(0) - post.mean).abs().max() < 4 * post.std.max() / 4000**0.5
    assert (s.std(0) / post.std).sub(1).abs().max() < 0.08


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="length must be a finite number > 0, got -1"):
        MaternGRF(8, length=-1)
    with pytest.raises(ValueError, match="size must be an integer >= 2"):
        MaternGRF(1)


def test_log_likelihood_is_the_dense_gaussian_density():
    from scipy.stats import multivariate_normal

    grf = MaternGRF(6, nu=1.5, length=0.2, std=0.5, mean=0.3)
    x = grf.sample(4, seed=2)
    n = 6
    grid = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1).reshape(-1, 2)
    dense = multivariate_normal(mean=np.full(n * n, 0.3), cov=grf.covariance(grid, grid).numpy())
    want = [dense.logpdf(xi.reshape(-1).numpy()) for xi in x]
    np.testing.assert_allclose(grf.log_likelihood(x).numpy(), want, rtol=1e-10)


def test_classify_fields_recovers_the_length_scale():
    from noisecraft.fields.grf import classify_fields

    grfs = [MaternGRF(32, nu=1.5, length=v, std=0.5) for v in (0.05, 0.1, 0.2)]
    x = torch.cat([g.sample(20, seed=7) for g in grfs])
    truth = torch.arange(3).repeat_interleave(20)
    assert torch.equal(classify_fields(x, grfs), truth)  # 1024 Fourier modes per field: no mistakes
    between = MaternGRF(32, nu=1.5, length=0.07, std=0.5).sample(10, seed=1)  # no class's: a neighbour wins
    assert set(classify_fields(between, grfs).tolist()) <= {0, 1}


def test_fit_length_scale_recovers_the_parameter():
    from noisecraft.fields.grf import fit_length_scale

    for length in (0.05, 0.1, 0.2):
        x = MaternGRF(32, nu=1.5, length=length, std=0.5).sample(8, seed=3)
        fit = fit_length_scale(x, nu=1.5, std=0.5)
        assert torch.all((fit / length - 1).abs() < 0.15), (length, fit)  # grid step 5.5 %; 1024 modes per field


def test_dpmpp_2m_samples_a_stiff_grf_exactly_with_the_exact_denoiser():
    """A smooth GRF's spectrum spans many decades (a stiff probability-flow ODE); dpmpp_2m at 20 NFE gives the law
    back (the grf presets' sampler), as the oracle's fitted length scale shows."""
    from noisecraft.fields.grf import fit_length_scale
    from noisecraft.sampling import sample
    from noisecraft.sampling.noise import randn, seeded_generators

    grf = MaternGRF(32, nu=1.5, length=0.2, std=0.5)
    gens = seeded_generators(range(16))
    x = sample(grf.denoise, randn((16, 1, 32, 32), gens, dtype=torch.float64), solver="dpmpp_2m", nfe=20, generator=gens)
    fit = fit_length_scale(x, nu=1.5, std=0.5)
    assert abs(float(fit.median()) / 0.2 - 1) < 0.06, fit
