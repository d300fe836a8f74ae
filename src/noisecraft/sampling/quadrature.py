"""Interpolation weights for exponential and plain Adams-type integrators.

The probability-flow ODE in σ-space, dx/dσ = (x - D(x, σ))/σ, written in λ = -ln σ, is
dx/dλ = D - x. Its exact solution over a step h = λ' - λ (DPM-Solver++, Lu et al. 2022b, Eq. 9) is

    x(λ') = e^{-h}·x(λ) + ∫_0^h e^{-(h-τ)} D(λ+τ) dτ.

Replacing D by the polynomial that interpolates known values D_j at nodes τ_j = s_j·h gives
x' = e^{-h} x + Σ_j w_j D_j. With past nodes (s_j ≤ 0) this is an exponential Adams-Bashforth
method (DPM-Solver++ 2M/3M, UniPC's predictor); adding the node s = 1 gives the Adams-Moulton
corrector (UniPC's UniC, Zhao et al. 2023). A kernel rate k ≠ 1 gives the data-prediction SDE
solvers (kernel k·e^{-k(h-τ)}, k = 1 + η). With no exponential (k → 0, kernel 1) the same code
gives variable-step Adams-Bashforth for dx/dσ (LMS).

All arithmetic is in Python floats / float64: coefficients are computed once per step.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["exp_moments", "exp_adams_weights", "adams_weights"]


def exp_moments(a: float, count: int) -> list[float]:
    """J_k(a) = ∫_0^1 e^{-a(1-s)} s^k ds for k = 0..count-1.

    |a| < 1: the series J_k = Σ_m (-a)^m k!/(m+k+1)! (no cancellation).
    |a| ≥ 1: the recursion J_k = (1 - k·J_{k-1})/a with J_0 = (1 - e^{-a})/a (for the few k used
    here the error grows at most by k/|a| per step).
    """
    if abs(a) < 1.0:
        out = []
        for k in range(count):
            term = 1.0 / (k + 1)  # m = 0: k!/(k+1)!
            total, m = term, 0
            while abs(term) > 1e-18 * abs(total) and m < 60:
                m += 1
                term *= -a / (m + k + 1)
                total += term
            out.append(total)
        return out
    j = [-math.expm1(-a) / a]
    for k in range(1, count):
        j.append((1.0 - k * j[-1]) / a)
    return j


def _lagrange_moment_weights(nodes: Sequence[float], moments: Sequence[float]) -> list[float]:
    """Weights w with Σ_j w_j f(s_j) = Σ_k c_k·moments[k] for the interpolating polynomial Σ c_k s^k."""
    s = np.asarray(nodes, dtype=np.float64)
    vander = np.vander(s, len(s), increasing=True)  # V[j, k] = s_j^k
    # p(s) = Σ_k c_k s^k with V c = f  =>  Σ_k c_k m_k = m·V^{-1} f  =>  w = V^{-T} m
    return list(np.linalg.solve(vander.T, np.asarray(moments[: len(s)], dtype=np.float64)))


def exp_adams_weights(h: float, nodes: Sequence[float], rate: float = 1.0) -> list[float]:
    """w_j with ∫_0^h rate·e^{-rate(h-τ)} p(τ) dτ = Σ_j w_j D_j, p interpolating D_j at τ = nodes[j]·h."""
    a = rate * h
    moments = [a * m for m in exp_moments(a, len(nodes))]
    return _lagrange_moment_weights(nodes, moments)


def adams_weights(h: float, nodes: Sequence[float]) -> list[float]:
    """w_j with ∫_0^h p(τ) dτ = Σ_j w_j f_j, p interpolating f_j at τ = nodes[j]·h (variable-step Adams)."""
    moments = [h / (k + 1) for k in range(len(nodes))]
    return _lagrange_moment_weights(nodes, moments)
