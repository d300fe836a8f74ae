"""Distillation and consistency losses: callables `(denoiser, x0, generator=, **cond) -> loss`, the
same interface as core.losses, so `train(..., loss=...)` trains a student with them.

* `ConsistencyDistillationLoss` - consistency distillation, CD (Song et al. 2023, Alg. 2): on the Karras
  discretization σ_1 = σ_min < ... < σ_N = σ_max, draw n, noise x_{n+1} = x0 + σ_{n+1}·z, take one
  teacher ODE step (Heun or Euler in σ) to x̂_n, and pull f_θ(x_{n+1}, σ_{n+1}) towards the
  stop-gradient f_θ⁻(x̂_n, σ_n). θ⁻ = stopgrad(θ) (iCT, Song & Dhariwal 2023, Sec. 3.2: no EMA target).
* `ConsistencyTrainingLoss` - consistency training from scratch, iCT: x̂_n = x0 + σ_n·z with the same
  z (an unbiased one-sample estimate of the teacher step), lognormal sampling of n, the
  discretization curriculum N(k) doubling from s0 to s1 (Song & Dhariwal 2023, Eq. 8 and 11).
* `ProgressiveDistillationLoss` - progressive distillation (Salimans & Ho 2022, Alg. 2): the student
  takes one Euler (= DDIM) step of the K-step grid where the teacher takes two of the 2K-step grid;
  the target is the x0 that makes the student's step land on the teacher's.

The consistency function is f = a(σ)·x + b(σ)·D (core.consistency), so f(x, σ_min) = x exactly.
Both consistency losses use iCT's pseudo-Huber metric d(u, v) = sqrt(||u - v||² + c²) - c,
c = 0.00054·sqrt(dim), and weight λ(σ_n) = 1/(σ_{n+1} - σ_n) (Song & Dhariwal 2023, Sec. 3.3-3.4).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..core import rng
from ..core.consistency import ConsistencyFunction
from ..core.losses import loss_weight
from ..core.precond import expand_sigma
from ..core.schedules import karras_open

__all__ = [
    "pseudo_huber", "karras_levels", "ode_step", "curriculum_steps", "lognormal_index_probs",
    "ConsistencyDistillationLoss", "ConsistencyTrainingLoss", "ProgressiveDistillationLoss", "TEACHER_SOLVERS",
]

TEACHER_SOLVERS = ("heun", "euler")
METRICS = ("pseudo_huber", "l2")
INDEX_SAMPLING = ("uniform", "lognormal")


def pseudo_huber(u: Tensor, v: Tensor, c: float | None = None) -> Tensor:
    """Per-sample sqrt(||u - v||² + c²) - c, shape (B,); c defaults to 0.00054·sqrt(dim) (iCT)."""
    diff = (u - v).reshape(u.shape[0], -1).float()
    c = 0.00054 * math.sqrt(diff.shape[1]) if c is None else c
    return torch.sqrt(diff.pow(2).sum(1) + c * c) - c


def karras_levels(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """The n consistency levels σ_1 = σ_min < ... < σ_n = σ_max, Karras spacing (Song et al. 2023, Sec. 5), float64."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"number of consistency levels must be an integer >= 2, got {n!r}")
    a, b = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    levels = (a + torch.arange(n, dtype=torch.float64) / (n - 1) * (b - a)) ** rho
    levels[0], levels[-1] = sigma_min, sigma_max  # exact ends: f(x, σ_1) = x holds bitwise
    return levels


def ode_step(denoiser: Callable[..., Tensor], x: Tensor, sigma: Tensor, sigma_next: Tensor, solver: str = "heun",
             **cond: Any) -> Tensor:
    """One probability-flow ODE step dx/dσ = (x - D)/σ from σ to σ' (per-sample (B,) tensors), Euler or
    Heun (Karras et al. 2022, Alg. 1); rows with σ' = 0 take the Euler step x' = D (Heun's second slope
    is undefined there)."""
    if solver not in TEACHER_SOLVERS:
        raise ValueError(f"unknown teacher solver {solver!r}; valid: {', '.join(TEACHER_SOLVERS)}")
    s, s_next = expand_sigma(sigma, x), expand_sigma(sigma_next, x)
    slope = (x - denoiser(x, sigma, **cond)) / s
    x_next = x + (s_next - s) * slope
    if solver == "euler":
        return x_next
    safe = torch.clamp(sigma_next, min=torch.finfo(x.dtype).tiny)
    slope2 = (x_next - denoiser(x_next, safe, **cond)) / expand_sigma(safe, x)
    heun = x + (s_next - s) * 0.5 * (slope + slope2)
    return torch.where(s_next > 0, heun, x_next)


def curriculum_steps(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's discretization curriculum (Song & Dhariwal 2023, Eq. 11): N(k) = min(s0·2^⌊k/K'⌋, s1) + 1,
    K' = ⌊K / (log2⌊s1/s0⌋ + 1)⌋ - the number of levels doubles in equal stages of training."""
    stage_len = max(1, total_steps // (int(math.log2(s1 // s0)) + 1))
    return min(s0 * 2 ** (step // stage_len), s1) + 1


def lognormal_index_probs(levels: Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> Tensor:
    """p(n) ∝ erf((ln σ_{n+1} - P_mean)/(√2 P_std)) - erf((ln σ_n - P_mean)/(√2 P_std)) over the N-1
    intervals of `levels` (iCT, Sec. 3.5): the lognormal noise distribution, discretized."""
    e = torch.erf((torch.log(levels) - p_mean) / (math.sqrt(2) * p_std))
    p = (e[1:] - e[:-1]).clamp(min=0)
    return p / p.sum()


def _draw_index(generator: rng.Generators, n: int, probs: Tensor) -> Tensor:
    """n interval indices drawn from probs (one uniform per sample, inverse CDF), shape (n,)."""
    u = rng.rand(generator, n, dtype=torch.float64).cpu()
    cdf = torch.cumsum(probs, 0)
    return torch.searchsorted(cdf, u * cdf[-1], right=True).clamp(max=len(probs) - 1)


def _noise(generator: rng.Generators, x0: Tensor) -> Tensor:
    if generator is None:
        return torch.randn_like(x0)
    return rng.randn(generator, x0.shape[0], *x0.shape[1:], dtype=x0.dtype).to(x0.device)


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


class _ConsistencyLoss:
    """What CD and CT share: the levels, the index draw, f, the metric and the weight."""

    def __init__(self, sigma_min: float, sigma_max: float, rho: float, sigma_data: float, metric: str,
                 index_sampling: str, p_mean: float, p_std: float):
        _check_choice("metric", metric, METRICS)
        _check_choice("index sampling", index_sampling, INDEX_SAMPLING)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max, self.rho, self.sigma_data = sigma_min, sigma_max, rho, sigma_data
        self.metric, self.index_sampling, self.p_mean, self.p_std = metric, index_sampling, p_mean, p_std

    def levels_and_probs(self, n_levels: int) -> tuple[Tensor, Tensor]:
        levels = karras_levels(n_levels, self.sigma_min, self.sigma_max, self.rho)
        if self.index_sampling == "uniform":
            return levels, torch.full((n_levels - 1,), 1.0 / (n_levels - 1), dtype=torch.float64)
        return levels, lognormal_index_probs(levels, self.p_mean, self.p_std)

    def draw(self, generator: rng.Generators, x0: Tensor, n_levels: int) -> tuple[Tensor, Tensor, Tensor]:
        """(σ_n, σ_{n+1}, z) per sample; σ drawn before z from each sample's generator."""
        levels, probs = self.levels_and_probs(n_levels)
        n = _draw_index(generator, x0.shape[0], probs)
        lo, hi = levels[n].to(x0.device, x0.dtype), levels[n + 1].to(x0.device, x0.dtype)
        return lo, hi, _noise(generator, x0)

    def distance(self, pred: Tensor, target: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """mean over the batch of λ(σ_n)·d(f_θ, f_θ⁻), λ = 1/(σ_{n+1} - σ_n)."""
        if self.metric == "pseudo_huber":
            d = pseudo_huber(pred, target)
        else:
            d = (pred - target).reshape(pred.shape[0], -1).float().pow(2).mean(1)
        return (d / (hi - lo).float()).mean()

    def consistency(self, denoiser: Callable[..., Tensor], x_hi: Tensor, hi: Tensor, x_lo: Tensor, lo: Tensor,
                    cond: dict) -> tuple[Tensor, Tensor]:
        f = ConsistencyFunction(denoiser, self.sigma_min, self.sigma_data)
        with torch.no_grad():  # θ⁻ = stopgrad(θ) (iCT)
            target = f(x_lo, lo, **cond)
        return f(x_hi, hi, **cond), target


class ConsistencyDistillationLoss(_ConsistencyLoss):
    """CD (Song et al. 2023, Alg. 2) with a frozen `teacher` denoiser (any wrapper, e.g. CFG at a fixed
    weight: the guidance is then distilled in). `n_levels` = N of the Karras discretization."""

    def __init__(self, teacher: Callable[..., Tensor], n_levels: int = 18, *, solver: str = "heun",
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, sigma_data: float = 0.5,
                 metric: str = "pseudo_huber", index_sampling: str = "uniform", p_mean: float = -1.1,
                 p_std: float = 2.0):
        super().__init__(sigma_min, sigma_max, rho, sigma_data, metric, index_sampling, p_mean, p_std)
        _check_choice("teacher solver", solver, TEACHER_SOLVERS)
        karras_levels(n_levels)  # validates n_levels
        self.teacher, self.n_levels, self.solver = teacher, n_levels, solver

    def __call__(self, denoiser: Callable[..., Tensor], x0: Tensor, *, generator: rng.Generators = None,
                 **cond: Any) -> Tensor:
        lo, hi, z = self.draw(generator, x0, self.n_levels)
        x_hi = x0 + expand_sigma(hi, x0) * z
        with torch.no_grad():
            x_lo = ode_step(self.teacher, x_hi, hi, lo, self.solver, **cond)
        pred, target = self.consistency(denoiser, x_hi, hi, x_lo, lo, cond)
        return self.distance(pred, target, lo, hi)


class ConsistencyTrainingLoss(_ConsistencyLoss):
    """iCT from scratch: no teacher; N follows `curriculum_steps(step, total_steps, s0, s1)` with `step`
    the optimizer steps done, which the trainer sets through `set_step` before every step (so a resumed
    run continues the curriculum exactly). The `digits-ct` preset trains with it (loss.objective = "consistency")."""

    def __init__(self, total_steps: int, *, s0: int = 10, s1: int = 1280, sigma_min: float = 0.002,
                 sigma_max: float = 80.0, rho: float = 7.0, sigma_data: float = 0.5, metric: str = "pseudo_huber",
                 index_sampling: str = "lognormal", p_mean: float = -1.1, p_std: float = 2.0):
        super().__init__(sigma_min, sigma_max, rho, sigma_data, metric, index_sampling, p_mean, p_std)
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
        if not 1 <= s0 <= s1:
            raise ValueError(f"need 1 <= s0 <= s1 for the curriculum, got s0={s0}, s1={s1}")
        self.total_steps, self.s0, self.s1, self.step = total_steps, s0, s1, 0

    @property
    def n_levels(self) -> int:
        return curriculum_steps(self.step, self.total_steps, self.s0, self.s1)

    def __call__(self, denoiser: Callable[..., Tensor], x0: Tensor, *, generator: rng.Generators = None,
                 **cond: Any) -> Tensor:
        lo, hi, z = self.draw(generator, x0, self.n_levels)
        x_hi, x_lo = x0 + expand_sigma(hi, x0) * z, x0 + expand_sigma(lo, x0) * z
        pred, target = self.consistency(denoiser, x_hi, hi, x_lo, lo, cond)
        return self.distance(pred, target, lo, hi)

    def set_step(self, step: int) -> None:
        """Called by the trainer before each step with the steps done (also right after a resume)."""
        self.step = step


class ProgressiveDistillationLoss:
    """One stage of progressive distillation (Salimans & Ho 2022, Alg. 2) to a `student_steps`-step
    Euler sampler on the nested grid `karras_open` (sampler `euler_open`). For a grid index i the
    teacher takes two `solver` steps σ_i → σ'_{2i+1} → σ_{i+1} (σ' the 2K-step grid); the student's one
    Euler step x' = D + (σ_{i+1}/σ_i)(x - D) lands on the teacher's x'' when
        D = x̃0 = (x'' - (σ_{i+1}/σ_i)·x) / (1 - σ_{i+1}/σ_i),
    the regression target. Weighted like the teacher's EDM loss (λ(σ) = (σ² + σd²)/(σ·σd)², instead of
    the paper's truncated SNR, which plays the same role: bounded at high σ, ~1/σ² at low σ)."""

    def __init__(self, teacher: Callable[..., Tensor], student_steps: int, *, solver: str = "euler",
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, sigma_data: float = 0.5):
        _check_choice("teacher solver", solver, TEACHER_SOLVERS)
        if isinstance(student_steps, bool) or not isinstance(student_steps, int) or student_steps < 1:
            raise ValueError(f"student_steps must be an integer >= 1, got {student_steps!r}")
        self.teacher, self.student_steps, self.solver, self.sigma_data = teacher, student_steps, solver, sigma_data
        self.student_grid = karras_open(student_steps, sigma_min, sigma_max, rho)  # K + 1 values, ends in 0
        self.teacher_grid = karras_open(2 * student_steps, sigma_min, sigma_max, rho)

    def target(self, x: Tensor, i: Tensor, **cond: Any) -> Tensor:
        """x̃0 for samples x at student levels σ_i (i of shape (B,)): the two-teacher-steps target."""
        g, t = self.student_grid.to(x.dtype), self.teacher_grid.to(x.dtype)
        s, s_next, mid = g[i].to(x.device), g[i + 1].to(x.device), t[2 * i + 1].to(x.device)
        with torch.no_grad():
            x_mid = ode_step(self.teacher, x, s, mid, self.solver, **cond)
            x_end = ode_step(self.teacher, x_mid, mid, s_next, self.solver, **cond)
        r = expand_sigma(s_next / s, x)
        return (x_end - r * x) / (1 - r)

    def __call__(self, denoiser: Callable[..., Tensor], x0: Tensor, *, generator: rng.Generators = None,
                 **cond: Any) -> Tensor:
        if generator is None:
            i = torch.randint(0, self.student_steps, (x0.shape[0],))
        else:
            i = rng.randint(generator, 0, self.student_steps, x0.shape[0]).cpu().long()
        sigma = self.student_grid[i].to(x0.device, x0.dtype)
        x = x0 + expand_sigma(sigma, x0) * _noise(generator, x0)
        target = self.target(x, i, **cond)
        w = expand_sigma(loss_weight("edm", sigma, self.sigma_data), x0)
        return (w * (denoiser(x, sigma, **cond) - target) ** 2).mean()
