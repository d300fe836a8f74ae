"""Schedule optimization: place a solver's steps for one model by minimizing its actual error.

Given calibration noise, the exact target is the probability-flow ODE solution from σ_max·noise,
computed once to high accuracy (`solve_pf_ode`). The step placement is then chosen to minimize the
RMS distance between the solver's output at the given NFE and that target - the objective of
"Accelerating Diffusion Sampling with Optimized Time Steps" (Xue et al. 2024, arXiv 2402.17376),
measured directly on the model instead of through a surrogate bound (cf. Align Your Steps,
Sabour et al. 2024, arXiv 2404.14507, which also optimizes per model and solver).

Parameterization: the log-σ range [ln σ_min, ln σ_max] is split into the solver's n-1 step
increments plus one slack increment by a softmax, so every candidate is strictly decreasing, starts
at σ_max, and its last positive σ lies in [σ_min, σ_max); the trailing 0 (final denoising) is kept.
The search is derivative-free (scipy's Powell), so any denoiser works, and each evaluation costs
one sampler run on the calibration batch (its calls are not part of the sampling budget).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from .api import _check_nfe, _check_range, default_sigmas, sample
from .reference import solve_pf_ode
from .registry import get_solver

__all__ = ["optimize_schedule"]


def _sigmas_from_logits(free: np.ndarray, log_min: float, log_max: float) -> list[float]:
    logits = np.concatenate([free, [0.0]])  # last logit fixed: the softmax is shift-invariant
    incr = np.exp(logits - logits.max())
    # A floor on every increment keeps candidates strictly decreasing however far the search goes.
    incr = (0.99 * incr / incr.sum() + 0.01 / len(incr)) * (log_max - log_min)
    log_sigmas = log_max - np.concatenate([[0.0], np.cumsum(incr[:-1])])  # drop the slack increment
    return [float(v) for v in np.exp(log_sigmas)] + [0.0]


def _logits_from_sigmas(sigmas: list[float], log_min: float, log_max: float) -> np.ndarray:
    logs = np.log(np.asarray(sigmas[:-1], dtype=np.float64))
    incr = -np.diff(logs)
    slack = max(log_max - log_min - incr.sum(), 1e-3 * incr.mean())
    parts = np.concatenate([incr, [slack]]) / (log_max - log_min)
    logits = np.log(np.clip((parts - 0.01 / len(parts)) / 0.99, 1e-9, None))
    return logits[:-1] - logits[-1]


def optimize_schedule(
    denoiser: Callable[..., Tensor],
    calibration_noise: Tensor,
    *,
    solver: str,
    nfe: int,
    sigma_min: float,
    sigma_max: float,
    max_evals: int = 800,
    reference: Tensor | None = None,
    **options,
) -> Tensor:
    """Return sigmas (float64, ending in 0) that minimize `solver`'s error at `nfe` calls.

    calibration_noise: standard normal (B, ...), like `sample()`'s noise; use a batch separate from
        the noise you evaluate on. reference: optional precomputed exact outputs for it.
    max_evals: budget of sampler runs for the search. options: solver options / conditioning,
        passed to `sample()`.
    The result, passed as `sample(..., sigmas=result, nfe=nfe)`, keeps within the same budget.
    """
    info = get_solver(solver)
    nfe = _check_nfe(nfe)
    _check_range(sigma_min, sigma_max)
    if info.stochastic or info.adaptive:
        raise ValueError(f"optimize_schedule needs a deterministic fixed-step solver, got {solver!r} ({info.kind}"
                         f"{', adaptive' if info.adaptive else ''})")
    start = default_sigmas(solver, nfe, sigma_min, sigma_max, **options).tolist()
    if len(start) <= 3:  # σ_max, σ_min, 0: nothing to place
        return torch.tensor(start, dtype=torch.float64)
    noise = calibration_noise
    if reference is None:
        reference = solve_pf_ode(denoiser, noise * sigma_max, sigma_max, 0.0, rtol=1e-8, atol=1e-8, **options)
    target = reference.to(torch.float64)
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)

    def error(sig: list[float]) -> float:
        out = sample(denoiser, noise, solver=solver, sigmas=sig, nfe=nfe, **options).to(torch.float64)
        value = float(torch.sqrt(torch.mean((out - target) ** 2)))
        return value if math.isfinite(value) else 1e30

    def objective(free: np.ndarray) -> float:
        return error(_sigmas_from_logits(free, log_min, log_max))

    x0 = _logits_from_sigmas(start, log_min, log_max)
    best = minimize(objective, x0, method="Powell", options={"maxfev": max_evals, "xtol": 1e-3, "ftol": 1e-6})
    candidate = _sigmas_from_logits(best.x, log_min, log_max)
    chosen = candidate if error(candidate) < error(start) else start
    return torch.tensor(chosen, dtype=torch.float64)
