"""Ensemble forecasting with a next-state model (`[cond] image = "previous"`, e.g. the navier-stokes-forecast preset).

A conditional diffusion model of p(x_{k+1} | x_k) is rolled out autoregressively: every ensemble member
draws its next state given its own current one, and that draw becomes the condition of the next step
(the conditional-generation rollouts of score-based forecasting, e.g. Price et al. 2024 "GenCast"
with one previous state instead of two). The members start from the same state and spread as the
model's uncertainty compounds, so the ensemble's spread is a forecast of its own error:
`forecast_scores` checks that against the true trajectory (spread-skill ratio, interval coverage,
CRPS) next to persistence (x_{k} = x_0 for every lead).

    fc = rollout(run.denoiser(), state, steps=8, n=8, spec=run.spec())    # fc.samples (n, 8, C, H, W)
    rows = forecast_scores(fc, truth, state)                             # one dict per lead time

Seeds: member i's draw at step k uses spec.seed + k·n + i (its starting noise and solver noise), so
the same (seed, n) gives the same ensemble and no two draws share noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..sampling import sample
from ..sampling.noise import seeded_generators
from ..sampling.spec import SamplingSpec
from .metrics import posterior_scores, relative_l2
from .reconstruct import Posterior

__all__ = ["Forecast", "rollout", "forecast_scores", "read_trajectory"]


@dataclass(frozen=True)
class Forecast(Posterior):
    """samples (n, K, C, H, W): member i's state after k + 1 steps at [i, k]; mean and std (K, C, H, W)
    over the members (std with Bessel's correction; zeros for one member), as `Posterior.of` computes them."""


def _check_state(state: Tensor) -> Tensor:
    if not isinstance(state, Tensor) or state.ndim not in (3, 4) or not state.is_floating_point():
        got = f"{state.dtype} {tuple(state.shape)}" if isinstance(state, Tensor) else type(state).__name__
        raise ValueError(f"state must be a float tensor (C, H, W) or (1, C, H, W), got {got}")
    if state.ndim == 4:
        if state.shape[0] != 1:
            raise ValueError(f"state must be one field (C, H, W) or (1, C, H, W), got a batch of {state.shape[0]}")
        state = state[0]
    if not bool(torch.isfinite(state).all()):
        raise ValueError("state holds NaN or infinite values")
    return state


def rollout(denoiser: Callable[..., Tensor], state: Tensor, steps: int, *, n: int = 8,
            spec: SamplingSpec | None = None, batch_size: int = 250,
            callback: Callable[[dict], None] | None = None) -> Forecast:
    """An n-member ensemble forecast `steps` states ahead of `state` (C, H, W) (module notes).

    denoiser: a σ-space denoiser D(x, σ, image_cond=current state (B, C, H, W)), such as the run of a
    `[cond] image = "previous"` model (`Run.denoiser()`; its one condition is unguided, so no other
    input is needed); spec: solver, NFE, σ range and seed of every step (default SamplingSpec());
    guidance does not apply. callback: the sampler's per-step callback (`sample()`'s), for every
    rollout step in turn. Noise is drawn on the CPU from per-draw generators, as `Run.generate` draws it."""
    state = _check_state(state)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 10_000:
        raise ValueError(f"steps must be an integer 1..10000, got {steps!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    spec = spec or SamplingSpec()
    spec.check_seed_range(n * steps)
    params = getattr(denoiser, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    device = first.device if first is not None else torch.device("cpu")
    shape = tuple(state.shape)
    current = state[None].expand(n, *shape).contiguous()
    out = []
    for k in range(steps):
        nxt = []
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            gens = seeded_generators(range(spec.seed + k * n + lo, spec.seed + k * n + hi))
            noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(device)
            with torch.no_grad():
                x = sample(denoiser, noise, solver=spec.solver, nfe=spec.nfe, sigma_min=spec.sigma_min,
                           sigma_max=spec.sigma_max, generator=gens, callback=callback,
                           image_cond=current[lo:hi].to(device))
            nxt.append(x.cpu())
        current = torch.cat(nxt)
        out.append(current)
    return Forecast.of(torch.stack(out, 1))


def forecast_scores(fc: Forecast, truth: Tensor, state: Tensor) -> list[dict[str, float]]:
    """Per lead k = 1..K (truth (K, C, H, W): the true states after each step; state: the start):
    rel_l2 of the ensemble mean, member_rel_l2 (mean over members of each member's error),
    persistence_rel_l2 (the start as the forecast) and, with n ≥ 2, cov50, cov90, crps, spread_skill
    (`fields.metrics.posterior_scores`)."""
    state = _check_state(state)
    k = fc.samples.shape[1]
    if tuple(truth.shape) != (k, *state.shape):
        raise ValueError(f"truth must be (K, C, H, W) = ({k}, {', '.join(map(str, state.shape))}) for this forecast, "
                         f"got {tuple(truth.shape)}")
    n = fc.samples.shape[0]
    rows = []
    for j in range(k):
        members = fc.samples[:, j]
        row = {"lead": j + 1}
        row.update(posterior_scores(truth[j], fc.mean[j], samples=members if n > 1 else None))
        row["member_rel_l2"] = sum(relative_l2(m, truth[j]) for m in members) / n
        row["persistence_rel_l2"] = relative_l2(state, truth[j])
        rows.append(row)
    return rows


def read_trajectory(path, shape, steps: int) -> Tensor:
    """The true states 1..steps (steps, C, H, W) of a trajectory NPZ (key "trajectory" (K, C, H, W), state 0 the
    start, as `noisecraft data export navier-stokes-forecast` writes); a ValueError naming what is wrong."""
    from ..io.arrays import read_npz

    shape = tuple(int(s) for s in shape)
    traj = read_npz(path, key="trajectory")
    if traj.ndim != 4 or tuple(traj.shape[1:]) != shape or traj.shape[0] < steps + 1:
        raise ValueError(f"{str(path)!r}: 'trajectory' must be (K, {', '.join(map(str, shape))}) with K >= steps + 1 = "
                         f"{steps + 1} (state 0 the start), got {tuple(traj.shape)}")
    return traj[1:steps + 1]
