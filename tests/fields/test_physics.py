"""Physics guidance: the torch Darcy residual is the FV system of `fields.darcy` (oracle: its scipy matrix),
differentiable; the guided denoiser pulls samples onto a constraint without collapsing the rest, and is DPS
exactly where the physics term is off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisecraft.data.fields import channels_info, field_physics, load_darcy, to_physical
from noisecraft.fields import (darcy_fv_residual, darcy_jacobi_residual, darcy_physics, physics_dps, random_observations,
                               reconstruct)
from noisecraft.fields.darcy import darcy_coefficient, darcy_matrix, darcy_residual, solve_darcy
from noisecraft.sampling import sample
from noisecraft.sampling.noise import randn, seeded_generators
from noisecraft.tasks import dps


def test_fv_residual_is_the_scipy_system_batched():
    rng = np.random.default_rng(0)
    a = np.exp(rng.normal(size=(3, 12, 12)))
    u = rng.normal(size=(3, 12, 12))
    got = darcy_fv_residual(torch.from_numpy(a), torch.from_numpy(u), 2.0).numpy()
    for i in range(3):
        mat = darcy_matrix(a[i])
        want = (mat @ u[i].ravel() - 2.0 / 144).reshape(12, 12)
        np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-12 * np.abs(want).max())
        jac = darcy_jacobi_residual(torch.from_numpy(a[i]), torch.from_numpy(u[i]), 2.0).numpy()
        np.testing.assert_allclose(jac, want / mat.diagonal().reshape(12, 12), rtol=1e-12, atol=0)
        # the relative residual of fields.darcy is the same numbers' norm
        rel = np.linalg.norm(got[i]) / np.linalg.norm(np.full(144, 2.0 / 144))
        assert rel == pytest.approx(darcy_residual(a[i], u[i], 2.0), rel=1e-10)


def test_a_solved_pair_has_zero_residual_and_noise_does_not():
    a = darcy_coefficient("piecewise", 32, 0, np.arange(1))[0]
    u = solve_darcy(a)
    r = darcy_jacobi_residual(torch.from_numpy(a), torch.from_numpy(u))
    assert r.abs().max() < 1e-14 * np.abs(u).max() * 1e3
    noisy = darcy_jacobi_residual(torch.from_numpy(a), torch.from_numpy(u + 1e-3 * np.random.default_rng(0).normal(size=u.shape)))
    assert noisy.abs().mean() > 1e-4  # Jacobi-scaled: pixel noise of 1e-3 gives a residual of its order


def test_residual_is_differentiable_in_both_fields():
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(2, 5, 5, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
    u = torch.randn(2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, u: darcy_jacobi_residual(a, u), (a, u))


def test_field_physics_reads_normalized_pairs():
    test = load_darcy(split="test", resolution=None)
    x = test.data[:4]
    res = field_physics("darcy")(x)
    assert res.shape == (4, 64 * 64)
    assert res.abs().max() < 1e-3  # float32 storage of solved pairs (one stored unit of u is 0.012)
    noisy = x.clone()
    noisy[:, 1] += 0.01 * torch.randn(noisy[:, 1].shape, generator=torch.Generator().manual_seed(0))
    assert field_physics("darcy")(noisy).abs().mean() > 10 * res.abs().mean()
    phys = to_physical(x, channels_info("darcy"))
    torch.testing.assert_close(phys, test.to_physical(x))
    with pytest.raises(ValueError, match="'grf' has none built in; valid: darcy"):
        field_physics("grf")
    with pytest.raises(ValueError, match="needs pairs \\(B, 2, N, N\\)"):
        field_physics("darcy")(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="u_scale must be a finite number > 0"):
        darcy_physics(lambda x: x, u_scale=0.0)


def _gaussian_denoiser(x, sigma, **_):
    """The exact denoiser of N(0, I): E[x0 | x] = x / (1 + σ²)."""
    s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return x / (1 + s**2)


def _constraint(x):
    """A linear 'PDE': the first two entries of each sample agree (r = x₀ - x₁)."""
    flat = x.reshape(x.shape[0], -1)
    return (flat[:, :1] - flat[:, 1:2])


def _draw(den, n=400, seed=0, shape=(1, 2, 2)):
    gens = seeded_generators(range(seed, seed + n))
    return sample(den, randn((n, *shape), gens, dtype=torch.float64), solver="ddpm", nfe=60, generator=gens)


def test_physics_guidance_pulls_samples_onto_the_constraint_and_keeps_the_rest():
    plain = _draw(_gaussian_denoiser)
    guided = _draw(physics_dps(_gaussian_denoiser, _constraint, physics_step=3.0))
    r_plain, r_guided = _constraint(plain).abs().mean(), _constraint(guided).abs().mean()
    assert r_plain > 0.9  # |x₀ - x₁| of N(0, I): E = 2/√π ≈ 1.13
    assert r_guided < 0.15 * r_plain  # measured 0.111 vs 1.153 (DPS's normalized step leaves a residual ~ its size)
    # The constrained Gaussian: the guidance moves x only along ∇r = (1, -1, 0, 0), so x₀ + x₁ and x₂, x₃ are
    # exactly the unguided draws (same seeds), not shrunk.
    pf, gf = plain.reshape(len(plain), -1), guided.reshape(len(guided), -1)
    torch.testing.assert_close(gf[:, 0] + gf[:, 1], pf[:, 0] + pf[:, 1], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gf[:, 2:], pf[:, 2:], rtol=1e-9, atol=1e-9)


def test_physics_term_off_above_sigma_max_is_plain_dps():
    field = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    obs = random_observations(field, 0.5, seed=0)
    op, y = obs.operator((1, 4, 4)), obs.measurement(torch.float64).expand(8, -1)
    want = _draw(dps(_gaussian_denoiser, op, y, step_size=2.0), n=8, shape=(1, 4, 4))
    off = physics_dps(_gaussian_denoiser, _constraint, physics_step=5.0, sigma_max=1e-9, operator=op, y=y, step_size=2.0)
    torch.testing.assert_close(_draw(off, n=8, shape=(1, 4, 4)), want, rtol=1e-12, atol=1e-12)
    on = physics_dps(_gaussian_denoiser, _constraint, physics_step=5.0, operator=op, y=y, step_size=2.0)
    assert _constraint(_draw(on, n=8, shape=(1, 4, 4))).abs().mean() < 0.4 * _constraint(want).abs().mean()  # 0.11 vs 0.50


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="physics_step must be a finite number > 0, got 0"):
        physics_dps(_gaussian_denoiser, _constraint, physics_step=0)
    with pytest.raises(ValueError, match="physics sigma_max must be a number > 0"):
        physics_dps(_gaussian_denoiser, _constraint, physics_step=1.0, sigma_max=-1.0)
    with pytest.raises(ValueError, match="operator and y come together"):
        physics_dps(_gaussian_denoiser, _constraint, physics_step=1.0, y=torch.zeros(1, 2))
    obs = random_observations(torch.zeros(1, 4, 4), 0.5, seed=0)
    with pytest.raises(ValueError, match="needs method 'dps', not 'pigdm'"):
        reconstruct(_gaussian_denoiser, obs, (1, 4, 4), n=2, method="pigdm", physics=_constraint)
    assert math.isinf(physics_dps.__kwdefaults__["sigma_max"])


def test_the_guidance_residual_does_not_reward_raising_a():
    """The Jacobi scaling is a fixed metric: with u = 0 the residual is -h²f/diag(A(a)) and only a larger a
    would shrink it; no gradient may reach a that way (an earlier version pushed every a to its upper value)."""
    info = channels_info("darcy")
    residual = darcy_physics(lambda x: to_physical(x, info), u_scale=info[1]["scale"])
    x = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
    x[:, 1] = -info[1]["offset"] / info[1]["scale"]  # physical u = 0 everywhere
    x[:, 0] = torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x.requires_grad_(True)
    r = residual(x)
    assert r.abs().min() > 0  # not a solution: f = 1 is unbalanced
    (g,) = torch.autograd.grad(r.pow(2).sum(), x)
    assert g[:, 0].abs().max() == 0 and g[:, 1].abs().max() > 0  # only u is asked to move
