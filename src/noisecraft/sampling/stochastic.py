"""Stochastic samplers of the reverse diffusion in σ-space.

A fact that keeps this file short: in σ-space the DDPM chain (any β table) is the VE chain
x_i = x_{i-1} + sqrt(σ_i² - σ_{i-1}²)·z, because x_t/sqrt(ᾱ_t) turns the VP step into exactly that.
So the DDPM posterior q(x_{i-1} | x_i, x0) (Ho et al. 2020, Eq. 7), DDIM with η (Song et al. 2021a,
Eq. 16) and k-diffusion's Euler-ancestral step are one formula,

    x' = D + (σ_down/σ)·(x - D) + σ_up·z,   σ_up = min(σ', η·σ'·sqrt(1 - σ'²/σ²)),  σ_down² = σ'² - σ_up²,

and differ only in η and their default step schedules (`ancestral` below). Samplers draw noise from
a `NoiseSource`, so fixed generators give bitwise-identical results.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.consistency import consistency_coefficients
from .deterministic import Callback, Denoise, combine, corrected_steps, report
from .noise import NoiseSource
from .quadrature import exp_adams_weights

__all__ = ["consistency", "ancestral", "edm_stochastic", "dpmpp_2m_sde", "pc_langevin", "ancestral_sigmas", "ancestral_step"]


def ancestral_sigmas(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(σ_down, σ_up) of an ancestral step from σ to σ' with stochasticity η ∈ [0, 1]."""
    if sigma_next == 0:
        return 0.0, 0.0
    up = min(sigma_next, eta * sigma_next * math.sqrt(max(0.0, 1 - (sigma_next / sigma) ** 2)))
    return math.sqrt(sigma_next**2 - up**2), up


def ancestral_step(x: Tensor, denoised: Tensor, sigma: float, sigma_next: float, eta: float, noise: NoiseSource) -> Tensor:
    """One ancestral step σ → σ' given D(x, σ) (see the module docstring)."""
    down, up = ancestral_sigmas(sigma, sigma_next, eta)
    x = torch.lerp(denoised, x, down / sigma)
    return x + up * noise(x) if up > 0 else x


def ancestral(
    denoise: Denoise,
    x: Tensor,
    sigmas: list[float],
    *,
    nfe: int,
    noise: NoiseSource,
    callback: Callback = None,
    eta: float = 1.0,
) -> Tensor:
    """DDPM ancestral sampling (η = 1), DDIM with η ∈ [0, 1], Euler-ancestral: see the module docstring."""
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        x = ancestral_step(x, d, s, s_next, eta, noise)
        report(callback, i, x, s, s_next, d)
    return x


def edm_stochastic(
    denoise: Denoise,
    x: Tensor,
    sigmas: list[float],
    *,
    nfe: int,
    noise: NoiseSource,
    callback: Callback = None,
    s_churn: float = 40.0,
    s_tmin: float = 0.05,
    s_tmax: float = 50.0,
    s_noise: float = 1.0,
) -> Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2): raise σ by a factor (1 + γ) with
    fresh noise ("churn"), then take a Heun step from the raised σ̂ to σ'."""
    if s_churn < 0 or s_noise <= 0 or s_tmin < 0 or s_tmax < s_tmin:
        raise ValueError(
            f"edm_stochastic needs s_churn >= 0, s_noise > 0, 0 <= s_tmin <= s_tmax; got "
            f"s_churn={s_churn}, s_noise={s_noise}, s_tmin={s_tmin}, s_tmax={s_tmax}"
        )
    n = len(sigmas) - 1
    corrected = corrected_steps(sigmas, nfe)
    gamma_max = min(s_churn / n, math.sqrt(2) - 1)
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        gamma = gamma_max if s_tmin <= s <= s_tmax else 0.0
        s_hat = s * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(s_hat**2 - s**2) * s_noise * noise(x)
        d = denoise(x, s_hat)
        slope = (x - d) / s_hat
        x_next = x + (s_next - s_hat) * slope
        if i in corrected:
            slope_next = (x_next - denoise(x_next, s_next)) / s_next
            x_next = x + (s_next - s_hat) * 0.5 * (slope + slope_next)
        x = x_next
        report(callback, i, x, s_hat, s_next, d)
    return x


def dpmpp_2m_sde(
    denoise: Denoise,
    x: Tensor,
    sigmas: list[float],
    *,
    nfe: int,
    noise: NoiseSource,
    callback: Callback = None,
    eta: float = 1.0,
) -> Tensor:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, App. B): a data-prediction exponential integrator of the
    reverse SDE family indexed by η. Over a step h in λ:

        x' = (σ'/σ)·e^{-ηh}·x + ∫_0^h k·e^{-k(h-τ)} D(λ+τ) dτ + σ'·sqrt(1 - e^{-2ηh})·z,   k = 1 + η,

    with D linear through the last two values. η = 0 is DPM-Solver++(2M); η = 1 at first order is
    the DDPM posterior step.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    history: list[tuple[float, Tensor]] = []
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        lam = -math.log(s)
        history = (history + [(lam, d)])[-2:]
        if s_next == 0:
            x = d
        else:
            h = -math.log(s_next) - lam
            past = list(reversed(history))
            w = exp_adams_weights(h, [(lam_j - lam) / h for lam_j, _ in past], rate=1 + eta)
            x = combine(x, (s_next / s) * math.exp(-eta * h), zip(w, (dj for _, dj in past)))
            if eta > 0:
                x = x + s_next * math.sqrt(-math.expm1(-2 * eta * h)) * noise(x)
        report(callback, i, x, s, s_next, d)
    return x


def pc_langevin(
    denoise: Denoise,
    x: Tensor,
    sigmas: list[float],
    *,
    nfe: int,
    noise: NoiseSource,
    callback: Callback = None,
    corrector_steps: int = 1,
    snr: float = 0.16,
) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021b, Alg. 2 for VE): a reverse-diffusion
    (ancestral) predictor, then `corrector_steps` Langevin MCMC steps at the new σ',
    x ← x + ε·score + sqrt(2ε)·z with score = (D - x)/σ'².

    Step size ε = 2·(snr·σ')². Song et al. set ε = 2·(snr·||z||/||score||)² with norms averaged over
    the batch; where noise dominates, ||score|| ≈ ||z||/σ' and the two agree. The σ-only form keeps
    samples independent of their batch (per-sample seeds stay reproducible) and cannot blow up
    where a sample's score happens to be near zero (annealed Langevin, Song & Ermon 2019, also
    scales ε with σ²)."""
    if corrector_steps < 0 or snr <= 0:
        raise ValueError(f"pc_langevin needs corrector_steps >= 0 and snr > 0, got {corrector_steps}, {snr}")
    n = len(sigmas) - 1
    nonfinal = [i for i in range(n) if sigmas[i + 1] > 0]
    # Correctors go to the last non-final steps that the budget covers.
    covered = min(len(nonfinal), max(0, nfe - n) // corrector_steps) if corrector_steps else 0
    with_corrector = set(nonfinal[len(nonfinal) - covered:])
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        x = ancestral_step(x, d, s, s_next, 1.0, noise)
        for _ in range(corrector_steps if i in with_corrector else 0):
            score = (denoise(x, s_next) - x) / s_next**2
            step = 2 * (snr * s_next) ** 2
            x = x + step * score + math.sqrt(2 * step) * noise(x)
        report(callback, i, x, s, s_next, d)
    return x


def consistency(
    denoise: Denoise,
    x: Tensor,
    sigmas: list[float],
    *,
    nfe: int,
    noise: NoiseSource,
    callback: Callback = None,
    sigma_min: float = 0.002,
    sigma_data: float = 0.5,
) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1) for a consistency-distilled or
    -trained run: x ← f(x, σ_i), then re-noise to the next level, x ← x + sqrt(σ_{i+1}² - σ_min²)·z,
    until σ = 0. f = a(σ)·x + b(σ)·D(x, σ) is the boundary-exact parameterization of core.consistency;
    `sigma_min` must be the boundary the model was trained with. One call per step."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        a, b = consistency_coefficients(torch.tensor(s, dtype=torch.float64), sigma_min, sigma_data)
        d = denoise(x, s)
        d = combine(d, float(b), [(float(a), x)])  # f(x, σ) = a·x + b·D
        x = d + math.sqrt(max(s_next**2 - sigma_min**2, 0.0)) * noise(d) if s_next > 0 else d
        report(callback, i, x, s, s_next, d)
    return x
