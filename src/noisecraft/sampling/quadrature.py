"""Interpolation weights for exponential and plain Adams-type integrators.

The probability-flow ODE in σ-space, dx/dσ = (x - D(x, σ))/σ, written in λ = -ln σ, is
dx/dλ = D - x. Its exact solution over a step h = λ' - λ (DPM-Solver++, Lu et al. 2022b, Eq. 9) is

    x(λ') = e^{-h}·x(λ) + ∫_0^h e^{-(h-τ)} D(λ+τ) dτ.

Replacing D by the polynomial that interpolates known values D_j at nodes τ_j = s_j·h gives
x' = e^{-h} x + Σ_j w_j D_j. With past nodes (s_j ≤ 0) this is an exponential Adams-Bashforth
method (our dpmpp_2m_exact/3m_exact); adding the node s = 1 gives an exponential Adams-Moulton
corrector (our unipc_am, in the pattern of UniPC, Zhao et al. 2023). A kernel rate k ≠ 1 gives the data-prediction SDE
solvers (kernel k·e^{-k(h-τ)}, k = 1 + η). With no exponential (k → 0, kernel 1) the same code
gives variable-step Adams-Bashforth for dx/dσ (LMS).

The published multistep methods do not all integrate their interpolant exactly; their coefficients
are here too, written in the same form (weights on D_j at nodes s_j, newest first, s_0 = 0):
`dpm_solver_pp_weights` (DPM-Solver++ 2M/3M) and `unipc_weights` (UniP/UniC with B(h)).
All arithmetic is in Python floats / float64: coefficients are computed once per step.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["exp_moments", "exp_adams_weights", "adams_weights", "dpm_solver_pp_weights", "unipc_weights"]


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


def dpm_solver_pp_weights(h: float, nodes: Sequence[float]) -> list[float]:
    """Weights of the published DPM-Solver++ multistep update x' = e^{-h}x + Σ_j w_j D_j (data prediction,
    σ-space, α = 1), for 1, 2 or 3 nodes s_0 = 0 > s_1 > s_2 (newest first), r_0 = -s_1, r_1 = s_1 - s_2.

    1 node:  w = [1 - e^{-h}] (DDIM / DPM-Solver++ 1st order).
    2 nodes: DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2): D' = (1 + 1/(2r))·D_0 - 1/(2r)·D_1, x' = e^{-h}x
             + (1 - e^{-h})·D' -- the "midpoint" form, not the exact integral of the linear interpolant.
    3 nodes: the third-order multistep update of the DPM-Solver++ code (LuChengTHU/dpm-solver
             `multistep_dpm_solver_third_update`; k-diffusion `sample_dpmpp_3m_sde` at η = 0; diffusers'
             DPMSolverMultistep, solver_order=3): with D1_0 = (D_0 - D_1)/r_0, D1_1 = (D_1 - D_2)/r_1,
             D2 = (D1_0 - D1_1)/(r_0 + r_1), D1 = D1_0 + r_0·D2,
                 x' = e^{-h}x + φ_1·D_0 + φ_2·D1 - φ_3·D2,
             φ_1 = 1 - e^{-h}, φ_2 = 1 - φ_1/h, φ_3 = φ_2/h - 1/2.
    D_0 + D1·s + D2·s² is the quadratic through the nodes; the exact integral would weight D2 by
    h·J_2 = -2φ_3, the published one by -φ_3 = h·J_2/2 (so its local error is O(h^3), see docs/samplers.md).
    φ_k are evaluated through the moments J_k = ∫_0^1 e^{-h(1-s)} s^k ds (φ_1 = hJ_0, φ_2 = hJ_1,
    φ_3 = -hJ_2/2), which are the same numbers without the cancellation of the closed forms at small h.
    """
    k = len(nodes)
    j = exp_moments(h, k)
    phi1 = h * j[0]
    if k == 1:
        return [phi1]
    r0 = -nodes[1]
    if k == 2:
        return [phi1 * (1 + 0.5 / r0), -phi1 * 0.5 / r0]
    if k != 3:
        raise ValueError(f"DPM-Solver++ multistep has orders 1-3, got {k} nodes")
    r1 = nodes[1] - nodes[2]
    phi2, phi3 = h * j[1], -0.5 * h * j[2]
    # φ_2·D1_0 + c·(D1_0 - D1_1) with c = (φ_2·r_0 - φ_3)/(r_0 + r_1), expanded onto D_0, D_1, D_2
    c = (phi2 * r0 - phi3) / (r0 + r1)
    return [phi1 + (phi2 + c) / r0, -(phi2 + c) / r0 - c / r1, c / r1]


def unipc_weights(h: float, nodes: Sequence[float], variant: str = "bh2") -> list[float]:
    """Weights of UniPC's UniP (predictor) or UniC (corrector) in data prediction (Zhao et al. 2023,
    Sec. 3 and App. "UniPC with data prediction": x' = e^{-h}x + (1 - e^{-h})D_0 - B(h)·Σ_m a_m D_m),
    in σ-space with α = 1.

    nodes: s_0 = 0 (the step's start), then the past nodes s_m < 0 (newest first); for the corrector the
    last node is s = 1, the model value at the predicted point. With r_m = s_m and D_m = (D(s_m) - D_0)/r_m
    the coefficients solve R·a = g/B(h), R[k, m] = r_m^k (k = 0..p-1), where g_k/B(h) is the entry b_{k+1}
    of the authors' code, which equals -h·J_{k+1}(h)/B(h) with J_k = ∫_0^1 e^{-h(1-s)} s^k ds (their
    recursion for h·φ_k evaluates the same numbers with cancellation at small h). B(h) for the step h in
    λ, in the data-prediction sign convention of the authors' code (hh = -h):
    bh1: B = hh = -h;  bh2: B = e^{hh} - 1 = expm1(-h).
    As in the authors' code, a system of size one (UniP-2, and UniC after a first-order predictor) uses
    a_1 = 1/2 instead of solving it; with bh2 UniP-2 is then exactly DPM-Solver++(2M).
    """
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"unipc variant must be 'bh1' or 'bh2', got {variant!r}")
    rks = [float(s) for s in nodes[1:]]  # past nodes (and s = 1 for the corrector)
    b_h = -h if variant == "bh1" else math.expm1(-h)  # B(h) for the data prediction (hh = -h)
    phi1 = -math.expm1(-h)
    if not rks:
        return [phi1]
    p = len(rks)  # the linear system's size
    if p == 1:
        rhos = [0.5]
    else:
        j = exp_moments(h, p + 1)
        g = np.array([-h * j[k + 1] / b_h for k in range(p)])  # b_k of the authors' code, k = 1..p
        vander = np.vander(np.asarray(rks), p, increasing=True).T  # R[k, m] = r_m^k
        rhos = list(np.linalg.solve(vander, g))
    # x' = e^{-h}x + φ_1 D_0 - B(h) Σ_m ρ_m (D(s_m) - D_0)/r_m
    past = [-b_h * rho / r for rho, r in zip(rhos, rks)]
    return [phi1 - sum(past)] + past
