"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
Models", EDM2, Sec. 3 and Appendix C).

A *power-function EMA* averages the weights seen up to time t with the profile

    p(τ; t, γ) = (γ + 1) τ^γ / t^(γ+1),   0 ≤ τ ≤ t                    (EDM2 Eq. 3)

whose width relative to t is σ_rel = sqrt((γ+1) / ((γ+2)² (γ+3)))   (Appendix C.1). It is
maintained online with β_t = (1 - Δt/t)^(γ+1), Δt the samples per step (Eq. 4); time is
measured in training samples seen.

Training keeps a few such tracks (σ_rel 0.05 and 0.10 by default) and saves their weights every
K steps. Any other EMA profile p(τ; t*, γ*) is then approximated by a linear combination of the
stored profiles. The profiles are known in closed form, so the least-squares coefficients follow
from their inner products (Appendix C.3):

    ⟨p_i, p_j⟩ = (γ_i+1)(γ_j+1)/(γ_i+γ_j+1) · m^(γ_i+γ_j+1) / (t_i^(γ_i+1) t_j^(γ_j+1)),  m = min(t_i, t_j)

    x = argmin ‖Σ_i x_i p_i - p*‖²  ⇔  A x = b,  A_ij = ⟨p_i, p_j⟩, b_i = ⟨p_i, p*⟩

and because averaging is linear in the weights, θ* = Σ_i x_i θ_i. `solve_posthoc_coefficients`
and `reconstruct` are pure functions (they read runs); `noisecraft.train.ema.PowerEMA` is the
small training-time object that keeps the tracks.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "std_to_exp",
    "exp_to_std",
    "power_beta",
    "solve_posthoc_coefficients",
    "reconstruct",
]

MAX_STD = 0.2886  # σ_rel of γ = 0 (a uniform average): sqrt(1/12)


def exp_to_std(gamma: float) -> float:
    """σ_rel of the power profile with exponent γ (EDM2 Appendix C.1)."""
    g = float(gamma)
    return math.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3)))


def std_to_exp(std: float) -> float:
    """Invert exp_to_std: γ is the largest real root of γ³ + 7γ² + (16 - 1/σ²)γ + (12 - 1/σ²) = 0,
    which is σ_rel² (γ+2)²(γ+3) = γ+1 multiplied out."""
    s = float(std)
    if not 0 < s < MAX_STD:
        raise ValueError(f"post-hoc EMA std must be in (0, {MAX_STD}), got {std}")
    inv = 1.0 / s**2
    roots = np.roots([1.0, 7.0, 16.0 - inv, 12.0 - inv])
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real.max())


def power_beta(std: float, t_next: float, t_delta: float) -> float:
    """Per-step decay β = (1 - Δt/t)^(γ+1) of the power EMA at time t_next (EDM2 Eq. 4)."""
    gamma = std_to_exp(std)
    return (1.0 - t_delta / t_next) ** (gamma + 1)


def _log_inner(t_i: np.ndarray, g_i: np.ndarray, t_j: np.ndarray, g_j: np.ndarray) -> np.ndarray:
    """log ⟨p_i, p_j⟩ for broadcastable arrays (log space avoids overflow of t^(γ+1))."""
    m = np.minimum(t_i, t_j)
    return (
        np.log(g_i + 1) + np.log(g_j + 1) - np.log(g_i + g_j + 1)
        + (g_i + g_j + 1) * np.log(m) - (g_i + 1) * np.log(t_i) - (g_j + 1) * np.log(t_j)
    )


def solve_posthoc_coefficients(
    in_t: Sequence[float], in_std: Sequence[float], out_t: float | Sequence[float], out_std: float | Sequence[float]
) -> np.ndarray:
    """Least-squares coefficients X (len(in), len(out)) such that the profile of target j is
    approximated by Σ_i X[i, j]·p(·; in_t[i], γ(in_std[i])). Times in any consistent unit."""
    t_i = np.asarray(in_t, dtype=np.float64)
    g_i = np.array([std_to_exp(s) for s in np.atleast_1d(in_std)], dtype=np.float64)
    t_o = np.atleast_1d(np.asarray(out_t, dtype=np.float64))
    g_o = np.array([std_to_exp(s) for s in np.atleast_1d(out_std)], dtype=np.float64)
    t_o, g_o = np.broadcast_arrays(t_o, g_o)
    if t_i.shape != g_i.shape or t_i.ndim != 1 or len(t_i) == 0:
        raise ValueError("in_t and in_std must be 1-D sequences of equal, non-zero length")
    if not (np.all(t_i > 0) and np.all(t_o > 0)):
        raise ValueError("post-hoc EMA times must be > 0")
    scale = max(t_i.max(), t_o.max())  # normalise time: only ratios matter
    t_i, t_o = t_i / scale, t_o / scale
    A = np.exp(_log_inner(t_i[:, None], g_i[:, None], t_i[None, :], g_i[None, :]))
    B = np.exp(_log_inner(t_i[:, None], g_i[:, None], t_o[None, :], g_o[None, :]))
    X = np.linalg.lstsq(A, B, rcond=None)[0]
    return X


def reconstruct(
    snapshots: Sequence[tuple[float, float, Mapping[str, Tensor]]], std: float, t: float | None = None
) -> dict[str, Tensor]:
    """Weights of the power EMA with relative std `std` at time `t` (default: the latest snapshot
    time), from snapshots (t_i, std_i, weights_i). Only snapshots with t_i <= t are used."""
    if not snapshots:
        raise ValueError("no post-hoc EMA snapshots to reconstruct from")
    if t is None:
        t = max(s[0] for s in snapshots)
    used = [s for s in snapshots if s[0] <= t]
    if not used:
        raise ValueError(f"no post-hoc EMA snapshot at or before t={t}")
    X = solve_posthoc_coefficients([s[0] for s in used], [s[1] for s in used], t, std)[:, 0]
    names = list(used[0][2].keys())
    out: dict[str, Tensor] = {}
    for n in names:
        acc = torch.zeros_like(used[0][2][n], dtype=torch.float64)
        for x, (_, _, w) in zip(X, used):
            acc += float(x) * w[n].to(torch.float64)
        out[n] = acc.to(used[0][2][n].dtype)
    return out
