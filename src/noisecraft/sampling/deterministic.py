"""Deterministic solvers of the probability-flow ODE in σ-space (Karras et al. 2022, Eq. 4 with s = 1):

    dx/dσ = (x - D(x, σ)) / σ,     equivalently   dx/dλ = D - x,  λ = -ln σ.

Every solver is a plain function `solver(denoise, x, sigmas, *, nfe, callback, **options) -> x`:
  * `denoise(x, sigma: float) -> Tensor` is the budgeted denoiser built by `sample()`;
  * `sigmas` is a Python list of decreasing floats; when it ends in 0 the last interval is the final
    denoising σ_min → 0 and the result is a clean sample; otherwise the result is x at sigmas[-1];
  * `nfe` is the number of denoiser calls the solver may make; single-step second-order solvers
    (Heun, DPM-Solver++ 2S) drop corrections on their first steps when the budget is short.
No state survives between calls: multistep history lives in local lists.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .quadrature import adams_weights, dpm_solver_pp_weights, exp_adams_weights, unipc_weights

Denoise = Callable[[Tensor, float], Tensor]
Callback = Callable[[dict], None] | None

__all__ = [
    "euler", "heun", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_exact", "dpmpp_3m_exact", "dpmpp_2s", "unipc", "unipc_am",
    "ipndm", "lms", "adaptive_rk",
]


def report(callback: Callback, i: int, x: Tensor, sigma: float, sigma_next: float, denoised: Tensor) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})


def combine(x: Tensor, a: float, terms) -> Tensor:
    """a·x + Σ w_j·t_j for (w_j, t_j) in terms, one fused multiply-add kernel per term."""
    out = x * a
    for w, t in terms:
        out.add_(t, alpha=float(w))
    return out


def corrected_steps(sigmas: list[float], nfe: int) -> set[int]:
    """Which steps of a predictor-corrector single-step solver get their second evaluation.

    Each step costs one call, a correction one more; the final σ → 0 step is never corrected.
    When the budget is short, the first (highest-σ) steps go uncorrected: there the ODE is nearly
    linear and a first-order step loses the least.
    """
    n = len(sigmas) - 1
    correctable = [i for i in range(n) if sigmas[i + 1] > 0]
    spare = max(0, nfe - n)
    return set(correctable[len(correctable) - min(spare, len(correctable)):])


def euler(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None) -> Tensor:
    """Euler on dx/dσ; in σ-space this is exactly DDIM with η = 0 (Song et al. 2021a; EDM Sec. 3)."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        x = torch.lerp(d, x, s_next / s)  # d + (σ'/σ)(x - d)
        report(callback, i, x, s, s_next, d)
    return x


def heun(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None) -> Tensor:
    """EDM's 2nd-order Heun method (Karras et al. 2022, Algorithm 1)."""
    corrected = corrected_steps(sigmas, nfe)
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        slope = (x - d) / s
        x_next = x + (s_next - s) * slope
        if i in corrected:
            slope_next = (x_next - denoise(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * 0.5 * (slope + slope_next)
        x = x_next
        report(callback, i, x, s, s_next, d)
    return x


Weights = Callable[[float, list[float]], list[float]]  # (h, nodes s_j newest first) -> w_j on D_j


def _exp_multistep(denoise: Denoise, x: Tensor, sigmas: list[float], order: int, weights: Weights,
                   callback: Callback) -> Tensor:
    """Exponential multistep in λ = -ln σ on the data prediction: x' = (σ'/σ)·x + Σ_j w_j D_j with the
    last `order` denoised values D_j at nodes s_j = (λ_j - λ)/h. The first steps use the history
    available (orders 1, 2, ...); the final σ → 0 step returns D."""
    history: list[tuple[float, Tensor]] = []  # (λ_j, D_j), newest last
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        lam = -math.log(s)
        history = (history + [(lam, d)])[-order:]
        if s_next == 0:
            x = d
        else:
            h = -math.log(s_next) - lam
            nodes = [(lam_j - lam) / h for lam_j, _ in reversed(history)]
            x = combine(x, s_next / s, zip(weights(h, nodes), (d_j for _, d_j in reversed(history))))
        report(callback, i, x, s, s_next, d)
    return x


def dpmpp_2m(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None) -> Tensor:
    """DPM-Solver++(2M) as published (Lu et al. 2022b, Alg. 2; k-diffusion `sample_dpmpp_2m`, diffusers'
    DPMSolverMultistep with solver_type="midpoint"): x' = (σ'/σ)x + (1 - e^{-h})·((1 + 1/(2r))D_i - D_{i-1}/(2r))."""
    return _exp_multistep(denoise, x, sigmas, 2, dpm_solver_pp_weights, callback)


def dpmpp_3m(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None) -> Tensor:
    """DPM-Solver++(3M) as published: the third-order multistep update of the DPM-Solver++ code
    (= k-diffusion `sample_dpmpp_3m_sde` at η = 0, diffusers' DPMSolverMultistep solver_order=3); its
    second step is the 2M update above (as in the DPM-Solver code and diffusers; k-diffusion's 3M uses
    the exact linear integral there). See quadrature.dpm_solver_pp_weights."""
    return _exp_multistep(denoise, x, sigmas, 3, dpm_solver_pp_weights, callback)


def dpmpp_2m_exact(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None) -> Tensor:
    """Our 2nd-order exponential Adams-Bashforth: the DPM-Solver++ step (Lu et al. 2022b, Eq. 9) with the
    linear interpolant of the last two D integrated exactly (diffusers' solver_type="heun")."""
    return _exp_multistep(denoise, x, sigmas, 2, exp_adams_weights, callback)


def dpmpp_3m_exact(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None) -> Tensor:
    """Our 3rd-order exponential Adams-Bashforth: the quadratic interpolant of the last three D
    integrated exactly (the published 3M gives its quadratic term half that weight)."""
    return _exp_multistep(denoise, x, sigmas, 3, exp_adams_weights, callback)


def dpmpp_2s(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None, r: float = 0.5) -> Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1): single-step, an intermediate evaluation at λ + r·h."""
    if not 0 < r < 1:
        raise ValueError(f"dpmpp_2s: r must be in (0, 1), got {r}")
    corrected = corrected_steps(sigmas, nfe)
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        if s_next == 0:
            x = d
        elif i not in corrected:
            x = torch.lerp(d, x, s_next / s)
        else:
            lam, h = -math.log(s), math.log(s / s_next)
            s_mid = math.exp(-(lam + r * h))
            u = torch.lerp(d, x, s_mid / s)  # first-order step to the intermediate point
            d_mid = denoise(u, s_mid)
            w0, w1 = exp_adams_weights(h, [0.0, r])
            x = combine(x, s_next / s, [(w0, d), (w1, d_mid)])
        report(callback, i, x, s, s_next, d)
    return x


def _predictor_corrector(denoise: Denoise, x: Tensor, sigmas: list[float], nfe: int, order: int,
                         predict: Weights, correct: Weights, callback: Callback) -> Tensor:
    """A predictor with the last `order` denoised values, then a corrector that adds the value at the
    predicted point (node s = 1, passed first: `correct(h, [1.0] + nodes)`). That value is reused by the next step, so the corrector costs
    no extra call. The final σ → 0 step returns the denoised value at σ_min."""
    n = len(sigmas) - 1
    history: list[tuple[float, Tensor]] = []
    d = denoise(x, sigmas[0])
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        lam = -math.log(s)
        history = (history + [(lam, d)])[-order:]
        if s_next == 0:
            x = d
            report(callback, i, x, s, s_next, d)
            break
        h = -math.log(s_next) - lam
        past = list(reversed(history))
        nodes = [(lam_j - lam) / h for lam_j, _ in past]
        x_pred = combine(x, s_next / s, zip(predict(h, nodes), (dj for _, dj in past)))
        d_prev = d
        if i == n - 1 and n + 1 > nfe:  # open-ended schedule without budget for the last corrector
            x = x_pred
            report(callback, i, x, s, s_next, d_prev)
            break
        d = denoise(x_pred, s_next)
        if i + 2 <= n and sigmas[i + 2] == 0:
            x = x_pred  # the next step returns d as it is: a correction of x would be unused
        else:
            x = combine(x, s_next / s, zip(correct(h, [1.0] + nodes), [d] + [dj for _, dj in past]))
        report(callback, i, x, s, s_next, d_prev)
    return x


def unipc(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None, order: int = 2,
          variant: str = "bh2") -> Tensor:
    """UniPC as published (Zhao et al. 2023): UniP-p predictor + UniC corrector on the data prediction,
    with B(h) = h ("bh1") or e^h - 1 ("bh2", the default of diffusers' UniPCMultistepScheduler); the
    coefficients are quadrature.unipc_weights. UniP-p and UniC use the same history (p values); the
    corrector adds the model value at the predicted point, which the next step reuses."""
    if order not in (1, 2, 3):
        raise ValueError(f"unipc: order must be 1, 2 or 3, got {order}")
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"unipc: variant must be 'bh1' or 'bh2', got {variant!r}")

    def predict(h: float, nodes: list[float]) -> list[float]:
        return unipc_weights(h, nodes, variant)

    def correct(h: float, nodes: list[float]) -> list[float]:  # nodes = [1.0, 0, past...]
        w = unipc_weights(h, nodes[1:] + [1.0], variant)
        return w[-1:] + w[:-1]

    return _predictor_corrector(denoise, x, sigmas, nfe, order, predict, correct, callback)


def unipc_am(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None, order: int = 2) -> Tensor:
    """Our exponential Adams predictor-corrector in UniPC's pattern: the order-p exponential
    Adams-Bashforth predictor (= dpmpp_2m_exact/3m_exact) and an exponential Adams-Moulton corrector
    (the interpolant through the history and the predicted point's D integrated exactly, order p+1)."""
    if order not in (1, 2, 3):
        raise ValueError(f"unipc_am: order must be 1, 2 or 3, got {order}")
    return _predictor_corrector(denoise, x, sigmas, nfe, order, exp_adams_weights, exp_adams_weights, callback)


_AB_COEFFS = (
    (1.0,),
    (3 / 2, -1 / 2),
    (23 / 12, -16 / 12, 5 / 12),
    (55 / 24, -59 / 24, 37 / 24, -9 / 24),
)


def ipndm(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None, order: int = 4) -> Tensor:
    """Improved PNDM (Zhang & Chen 2023, DEIS): Adams-Bashforth with fixed coefficients on dx/dσ,
    lower orders while history builds up."""
    if order not in (1, 2, 3, 4):
        raise ValueError(f"ipndm: order must be 1..4, got {order}")
    slopes: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        slopes = (slopes + [(x - d) / s])[-order:]
        coeffs = _AB_COEFFS[len(slopes) - 1]
        x = combine(x, 1.0, ((c * (s_next - s), g) for c, g in zip(coeffs, reversed(slopes))))
        report(callback, i, x, s, s_next, d)
    return x


def lms(denoise: Denoise, x: Tensor, sigmas: list[float], *, nfe: int, callback: Callback = None, order: int = 4) -> Tensor:
    """Linear multistep: variable-step Adams-Bashforth on dx/dσ with exactly integrated Lagrange weights."""
    if order not in (1, 2, 3, 4):
        raise ValueError(f"lms: order must be 1..4, got {order}")
    history: list[tuple[float, Tensor]] = []
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        history = (history + [(s, (x - d) / s)])[-order:]
        h = s_next - s
        past = list(reversed(history))
        w = adams_weights(h, [(s_j - s) / h for s_j, _ in past])
        x = combine(x, 1.0, zip(w, (g for _, g in past)))
        report(callback, i, x, s, s_next, d)
    return x


def adaptive_rk(
    denoise: Denoise,
    x: Tensor,
    sigmas: list[float],
    *,
    nfe: int,
    callback: Callback = None,
    rtol: float = 1e-3,
    atol: float = 1e-3,
) -> Tensor:
    """Adaptive exponential Runge-Kutta 3(2) in λ = -ln σ, error-controlled, NFE-capped.

    Each step is DPM-Solver++(3S) (Lu et al. 2022a/b, stages at r = 1/3 and 2/3 of the step) with an
    embedded 2nd-order solution from the first two stages; their difference drives the step size
    (as in DPM-Solver's adaptive mode, Lu et al. 2022a Sec. 3.3). Only sigmas[0] and the last
    positive sigma are used. A step costs 3 calls (a rejected retry 2). When the remaining budget
    could not cover the remaining distance at the proposed step size, the step is stretched to fit
    and accepted: `nfe` is a hard cap, the tolerance a target.
    """
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"adaptive_rk: rtol and atol must be > 0, got {rtol}, {atol}")
    to_zero = sigmas[-1] == 0
    positive = [s for s in sigmas if s > 0]
    if nfe < 3 + int(to_zero):
        raise ValueError(f"adaptive_rk needs nfe >= {3 + int(to_zero)} (one 3-stage step), got {nfe}")
    lam, lam_end = -math.log(positive[0]), -math.log(positive[-1])
    r1, r2 = 1 / 3, 2 / 3
    used, step = 0, 0
    h = (lam_end - lam) / 8
    d0 = None
    while lam < lam_end:
        s = math.exp(-lam)
        if d0 is None:
            d0, used = denoise(x, s), used + 1
        remaining = nfe - used - int(to_zero)  # keep one call for the final denoising
        attempts_left = 1 + (remaining - 2) // 3  # this attempt (2 calls) + full steps (3 calls)
        dist = lam_end - lam
        must_accept = attempts_left <= 1
        if h < dist / attempts_left:
            h, must_accept = dist / attempts_left, True
        lands = h >= dist
        h = min(h, dist)
        x1 = d0 + math.exp(-r1 * h) * (x - d0)
        d1 = denoise(x1, s * math.exp(-r1 * h))
        w = exp_adams_weights(r2 * h, [0.0, r1 / r2])
        x2 = math.exp(-r2 * h) * x + w[0] * d0 + w[1] * d1
        d2 = denoise(x2, s * math.exp(-r2 * h))
        used += 2
        w3, w2 = exp_adams_weights(h, [0.0, r2]), exp_adams_weights(h, [0.0, r1])
        x_high = math.exp(-h) * x + w3[0] * d0 + w3[1] * d2
        x_low = math.exp(-h) * x + w2[0] * d0 + w2[1] * d1
        scale = atol + rtol * torch.maximum(x.abs(), x_high.abs())
        err = float(torch.sqrt(torch.mean(((x_high - x_low) / scale) ** 2)))
        if err <= 1.0 or must_accept:
            lam = lam_end if lands else lam + h
            x, d0 = x_high, None
            report(callback, step, x, s, math.exp(-lam), d2)
            step += 1
        h = h * (5.0 if err == 0 else min(5.0, max(0.2, 0.9 * err ** (-1 / 3))))
    return denoise(x, positive[-1]) if to_zero else x
