"""Distillation losses against the exact Gaussian-mixture oracle: the consistency function of the exact
denoiser is the exact PF-ODE map to σ_min, so CD gives it (near) zero loss; progressive distillation's
target makes one student step equal two teacher steps; the boundary condition f(x, σ_min) = x is exact."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft as nc
from noisecraft.core.consistency import ConsistencyFunction, consistency_coefficients
from noisecraft.core.schedules import karras, karras_open
from noisecraft.distill.losses import (
    ConsistencyDistillationLoss,
    ConsistencyTrainingLoss,
    ProgressiveDistillationLoss,
    curriculum_steps,
    karras_levels,
    lognormal_index_probs,
    ode_step,
    pseudo_huber,
)

SMIN, SMAX = 0.002, 80.0


def ode_map(mixture, x: torch.Tensor, sigma: torch.Tensor, steps: int = 80) -> torch.Tensor:
    """The exact PF-ODE map x(σ) -> x(σ_min) of the mixture, by a fine Heun solve per distinct σ
    (sample() starts from sigmas[0]·noise, hence x / σ)."""
    out = x.clone()
    for s in sigma.unique().tolist():
        rows = sigma == s
        if s <= SMIN * (1 + 1e-9):
            continue
        grid = karras(steps, SMIN, s)[:-1]  # s ... σ_min, no final step to 0
        out[rows] = nc.sample(mixture, x[rows].double() / s, solver="heun", sigmas=grid, nfe=2 * steps).to(x.dtype)
    return out


class ExactConsistencyDenoiser:
    """The denoiser D whose consistency function a·x + b·D is the exact ODE map: D = (f* - a·x)/b."""

    def __init__(self, mixture):
        self.mixture = mixture

    def __call__(self, x, sigma, **_):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
        a, b = consistency_coefficients(sigma, SMIN)
        f = ode_map(self.mixture, x, sigma)
        b_ = b.clamp(min=1e-12).reshape(-1, 1).to(x.dtype)
        return torch.where(b.reshape(-1, 1) > 0, (f - a.reshape(-1, 1).to(x.dtype) * x) / b_, x)


@pytest.fixture
def mixture():
    g = torch.Generator().manual_seed(3)
    means = torch.randn(3, 4, generator=g, dtype=torch.float64)
    return nc.GaussianMixture(means, torch.tensor([0.3, 0.2, 0.4]), torch.tensor([0.5, 0.3, 0.2]))


def test_boundary_condition_is_exact():
    net = torch.nn.Linear(4, 4)
    f = ConsistencyFunction(lambda x, s, **c: net(x) * 1e3, SMIN)
    x = torch.randn(8, 4)
    assert torch.equal(f(x, torch.full((8,), SMIN)), x)
    a, b = consistency_coefficients(torch.tensor([SMIN, 1.0, 80.0], dtype=torch.float64), SMIN)
    assert a[0] == 1 and b[0] == 0
    assert abs(a[2]) < 1e-4 and abs(b[2] - 1) < 1e-4  # f ≈ D at high σ: a teacher is a good start


def test_exact_ode_map_has_near_zero_cd_loss(mixture):
    x0 = mixture.sample(64, generator=torch.Generator().manual_seed(0))
    gens = nc.seeded_generators(range(64))
    loss = ConsistencyDistillationLoss(mixture.denoise, n_levels=40, metric="l2")
    exact = float(loss(ExactConsistencyDenoiser(mixture), x0, generator=gens))
    wrong = float(loss(mixture.denoise, x0, generator=nc.seeded_generators(range(64))))  # f ≈ D: not the ODE map
    assert exact < 1e-3 * wrong and wrong > 1e-3
    # pseudo-Huber too, and the metric's own zero
    ph = ConsistencyDistillationLoss(mixture.denoise, n_levels=40)
    assert float(ph(ExactConsistencyDenoiser(mixture), x0, generator=nc.seeded_generators(range(64)))) < 0.02 * float(
        ph(mixture.denoise, x0, generator=nc.seeded_generators(range(64))))
    assert float(pseudo_huber(x0, x0).abs().max()) == 0


def test_exact_cd_residual_shrinks_with_the_teacher_step(mixture):
    """The residual of the exact map is the teacher's Heun step error: O(h^3) per step."""
    x0 = mixture.sample(32, generator=torch.Generator().manual_seed(1))
    res = [float(ConsistencyDistillationLoss(mixture.denoise, n_levels=n, metric="l2")(
        ExactConsistencyDenoiser(mixture), x0, generator=nc.seeded_generators(range(32)))) for n in (20, 80)]
    assert res[1] < res[0] / 8


def test_progressive_target_student_reproduces_two_teacher_steps(mixture):
    """A student whose D is the distillation target, sampled with K Euler steps on the K-grid, gives the
    teacher's 2K Euler steps on the 2K-grid exactly (the grids are nested)."""
    k = 4
    loss = ProgressiveDistillationLoss(mixture.denoise, k, solver="euler")
    grid = karras_open(k, SMIN, SMAX)
    assert torch.allclose(karras_open(2 * k, SMIN, SMAX)[::2], grid)

    def student(x, sigma, **_):
        s = float(torch.as_tensor(sigma).reshape(-1)[0])
        i = int(torch.argmin((grid[:-1] - s).abs()))
        return loss.target(x.double(), torch.full((x.shape[0],), i)).to(x.dtype)

    noise = torch.randn(16, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    one = nc.sample(student, noise, solver="euler_open", nfe=k, sigma_min=SMIN, sigma_max=SMAX)
    two = nc.sample(mixture.denoise, noise, solver="euler_open", nfe=2 * k, sigma_min=SMIN, sigma_max=SMAX)
    assert torch.allclose(one, two, atol=1e-9)
    # and the targets themselves: exact D gives a positive loss for a plain denoiser (it is not 2 steps)
    x0 = mixture.sample(32, generator=torch.Generator().manual_seed(4))
    assert float(loss(mixture.denoise, x0, generator=nc.seeded_generators(range(32)))) > 1e-4


def test_heun_teacher_step_is_closer_to_the_exact_ode(mixture):
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3.0
    s, t = torch.full((16,), 3.0, dtype=torch.float64), torch.full((16,), 2.7, dtype=torch.float64)
    fine = nc.sample(mixture, x / 3.0, solver="heun", sigmas=karras(200, 2.7, 3.0)[:-1], nfe=400)
    err = {m: float((ode_step(mixture.denoise, x, s, t, m) - fine).abs().max()) for m in ("euler", "heun")}
    assert err["heun"] < err["euler"] / 5


def test_ode_step_to_zero_is_the_denoiser(mixture):
    x = torch.randn(8, 4, dtype=torch.float64)
    s, z = torch.full((8,), 2.0, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    assert torch.allclose(ode_step(mixture.denoise, x, s, z, "heun"), mixture.denoise(x, s))


def test_consistency_sampler_one_step_is_f_at_sigma_max(mixture):
    f = ExactConsistencyDenoiser(mixture)
    noise = torch.randn(8, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    got = nc.sample(f, noise, solver="consistency", nfe=1, sigma_min=SMIN, sigma_max=SMAX)
    ref = ode_map(mixture, noise * SMAX, torch.full((8,), SMAX, dtype=torch.float64))
    assert torch.allclose(got, ref, atol=1e-9)
    # the exact ODE map lands where a fine ODE solve from σ_max lands
    fine = nc.sample(mixture, noise, solver="heun", nfe=400, sigma_min=SMIN, sigma_max=SMAX)
    assert float((got - fine).abs().max()) < 0.02


def test_curriculum_and_lognormal_probs():
    assert [curriculum_steps(k, 800) for k in (0, 99, 100, 799)] == [11, 11, 21, 1281]
    levels = karras_levels(11)
    assert levels[0] == pytest.approx(SMIN) and levels[-1] == pytest.approx(SMAX)
    p = lognormal_index_probs(levels)
    assert p.shape == (10,) and float(p.sum()) == pytest.approx(1.0) and (p >= 0).all()
    loss = ConsistencyTrainingLoss(800)
    loss.set_step(400)
    assert loss.n_levels == curriculum_steps(400, 800)


def test_ct_loss_is_finite_and_differentiable():
    net = torch.nn.Linear(4, 4)
    den = lambda x, s, **c: net(x)
    x0 = torch.randn(8, 4)
    loss = ConsistencyTrainingLoss(100)(den, x0, generator=nc.seeded_generators(range(8)))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and net.weight.grad is not None


@pytest.mark.parametrize("bad, match", [
    (dict(n_levels=1), "levels must be an integer >= 2"),
    (dict(solver="rk4"), "unknown teacher solver 'rk4'; valid: heun, euler"),
    (dict(metric="lpips"), "unknown metric 'lpips'"),
])
def test_bad_options(mixture, bad, match):
    with pytest.raises(ValueError, match=match):
        ConsistencyDistillationLoss(mixture.denoise, **{"n_levels": 18, **bad})
