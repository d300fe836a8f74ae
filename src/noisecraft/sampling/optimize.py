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

Generalization. A schedule searched on one noise batch can fit that batch's trajectories rather than
the model (with a small batch the search finds error cancellations that do not recur). So the
result is checked on a second, fresh validation batch: it is kept only when its mean squared error
there is below the default schedule's by more than `z` standard errors of the paired per-sample
difference; otherwise the default schedule is returned and `ScheduleFit.optimized` is False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from .api import _check_nfe, _check_range, default_sigmas, sample
from .reference import solve_pf_ode
from .registry import get_solver

__all__ = ["optimize_schedule", "ScheduleFit"]


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


class _Counted:
    """Counts denoiser calls (each call is one batch) for the cost report."""

    def __init__(self, fn: Callable[..., Tensor]):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs) -> Tensor:
        self.calls += 1
        return self.fn(*args, **kwargs)


@dataclass(frozen=True)
class ScheduleFit:
    """What `optimize_schedule` found and whether it held on fresh noise.

    sigmas: the schedule to use: the searched one if `optimized`, else the solver's default.
    Errors are RMS distances (per element) from the exact PF-ODE solution; `*_se` is the standard
    error of the validation gain (mean over samples of default MSE - candidate MSE), `validation_gain`
    that mean. Calls count denoiser evaluations on a whole batch (reference solves included).
    """

    sigmas: Tensor
    optimized: bool
    default_sigmas: Tensor
    candidate_sigmas: Tensor
    calibration_error: float
    calibration_default_error: float
    validation_error: float
    validation_default_error: float
    validation_gain: float
    validation_gain_se: float
    calibration_calls: int
    validation_calls: int
    sampler_runs: int

    @property
    def denoiser_calls(self) -> int:
        return self.calibration_calls + self.validation_calls

    def summary(self) -> str:
        verdict = "optimized schedule kept" if self.optimized else "fell back to the default schedule"
        return (f"{verdict}: calibration {self.calibration_error:.3e} (default {self.calibration_default_error:.3e}), "
                f"validation {self.validation_error:.3e} (default {self.validation_default_error:.3e}, "
                f"gain {self.validation_gain:.2e} ± {self.validation_gain_se:.2e} MSE); "
                f"{self.denoiser_calls} batch calls of the denoiser in {self.sampler_runs} sampler runs")


def _per_sample_mse(out: Tensor, target: Tensor) -> Tensor:
    diff = (out.to(torch.float64) - target.to(torch.float64)).reshape(out.shape[0], -1)
    return diff.pow(2).mean(1)  # (B,)


def optimize_schedule(
    denoiser: Callable[..., Tensor],
    calibration_noise: Tensor,
    *,
    solver: str,
    nfe: int,
    sigma_min: float,
    sigma_max: float,
    validation_noise: Tensor | None = None,
    max_evals: int = 800,
    z: float = 2.0,
    reference: Tensor | None = None,
    validation_reference: Tensor | None = None,
    **options,
) -> ScheduleFit:
    """Search the step placement that minimizes `solver`'s error at `nfe` calls; keep it only if the
    gain holds on fresh noise. Use `result.sigmas` as `sample(..., sigmas=result.sigmas, nfe=nfe)`,
    which keeps within the same budget.

    calibration_noise: standard normal (B, ...), like `sample()`'s noise: the batch the search fits.
    validation_noise: a second, independent batch that decides whether the searched schedule is kept.
        None: the last half of `calibration_noise` is held out for it (the search uses the first half).
    z: the searched schedule is kept only if its validation MSE is below the default's by more than
        z standard errors of the paired per-sample difference (2 ≈ a one-sided 2 % false-keep rate).
    max_evals: budget of sampler runs for the search. reference / validation_reference: optional
        precomputed exact PF-ODE outputs (from σ_max·noise) for the two batches.
    options: solver options / conditioning, passed to `sample()`.

    Cost in denoiser calls (each call evaluates one whole batch; none of it counts toward the
    sampling budget): per batch without a given reference, one exact PF-ODE solve (`solve_pf_ode`,
    DOP853 at rtol = atol = 1e-8: typically 300-1500 calls, more for sharply peaked data); on the
    calibration batch at most (max_evals + 2)·nfe calls for the search and the final comparison; on
    the validation batch 2·nfe. Every count is reported in the result (`denoiser_calls`).
    """
    info = get_solver(solver)
    nfe = _check_nfe(nfe)
    _check_range(sigma_min, sigma_max)
    if info.stochastic or info.adaptive:
        raise ValueError(f"optimize_schedule needs a deterministic fixed-step solver, got {solver!r} ({info.kind}"
                         f"{', adaptive' if info.adaptive else ''})")
    if not isinstance(z, (int, float)) or not math.isfinite(z) or z < 0:
        raise ValueError(f"z must be a finite number >= 0, got {z!r}")
    calib, valid = calibration_noise, validation_noise
    if valid is None:
        if calib.shape[0] < 4:
            raise ValueError(f"calibration_noise of {calib.shape[0]} samples cannot be split into a calibration and "
                             "a validation half; pass >= 4 samples or a separate validation_noise")
        half = calib.shape[0] // 2
        calib, valid = calib[:half], calib[half:]
        if reference is not None:
            reference = reference[:half]
    elif valid.shape[0] < 2:
        raise ValueError(f"validation_noise needs >= 2 samples to estimate the noise of the gain, got {valid.shape[0]}")

    start = default_sigmas(solver, nfe, sigma_min, sigma_max, **options).tolist()
    den_c, den_v = _Counted(denoiser), _Counted(denoiser)
    runs = 0

    def run(den: _Counted, noise: Tensor, sig: list[float]) -> Tensor:
        nonlocal runs
        runs += 1
        return sample(den, noise, solver=solver, sigmas=sig, nfe=nfe, **options).to(torch.float64)

    def exact(den: _Counted, noise: Tensor, given: Tensor | None) -> Tensor:
        if given is not None:
            return given.to(torch.float64)
        return solve_pf_ode(den, noise * sigma_max, sigma_max, 0.0, rtol=1e-8, atol=1e-8, **options).to(torch.float64)

    target = exact(den_c, calib, reference)
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)

    def error(sig: list[float]) -> float:
        value = float(torch.sqrt(_per_sample_mse(run(den_c, calib, sig), target).mean()))
        return value if math.isfinite(value) else 1e30

    start_error = error(start)
    candidate = start
    if len(start) > 3:  # σ_max, σ_min, 0 leave nothing to place

        def objective(free: np.ndarray) -> float:
            return error(_sigmas_from_logits(free, log_min, log_max))

        x0 = _logits_from_sigmas(start, log_min, log_max)
        found = minimize(objective, x0, method="Powell", options={"maxfev": max_evals, "xtol": 1e-3, "ftol": 1e-6})
        candidate = _sigmas_from_logits(found.x, log_min, log_max)
    candidate_error = error(candidate) if candidate is not start else start_error

    # Validation on fresh noise: paired per-sample comparison of the two schedules.
    v_target = exact(den_v, valid, validation_reference)
    mse_default = _per_sample_mse(run(den_v, valid, start), v_target)
    mse_candidate = mse_default if candidate is start else _per_sample_mse(run(den_v, valid, candidate), v_target)
    diff = mse_default - mse_candidate
    gain = float(diff.mean())
    se = float(diff.std() / math.sqrt(diff.numel())) if diff.numel() > 1 else math.inf
    keep = (candidate is not start and candidate_error < start_error and math.isfinite(gain)
            and gain > z * se)
    as_tensor = lambda s: torch.tensor(s, dtype=torch.float64)  # noqa: E731
    return ScheduleFit(
        sigmas=as_tensor(candidate if keep else start), optimized=keep,
        default_sigmas=as_tensor(start), candidate_sigmas=as_tensor(candidate),
        calibration_error=candidate_error, calibration_default_error=start_error,
        validation_error=float(mse_candidate.mean().sqrt()), validation_default_error=float(mse_default.mean().sqrt()),
        validation_gain=gain, validation_gain_se=se,
        calibration_calls=den_c.calls, validation_calls=den_v.calls, sampler_runs=runs)
