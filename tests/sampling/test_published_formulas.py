"""The solver names that promise a published method compute that method's formula.

Each reference below is a deliberately plain float64 transcription of the published update, written
from the papers (and the authors' code where the paper leaves a choice open), step by step with
scalar coefficients; it never calls noisecraft's solvers or quadrature. Our solvers run through
`sample()` on the same open-ended schedules (1 to 4 steps, non-uniform in λ so that the step ratios r
matter) and must agree to 1e-10. All updates are in σ-space (α = 1, σ_t = σ, λ = -ln σ) with the data
prediction D(x, σ) of an exact Gaussian mixture.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import noisecraft as nc
from noisecraft.core.mixture import GaussianMixture

# Non-uniform in λ: h = 1.05, 0.82, 0.93, 0.88, 1.26
SIGMAS = [24.0, 8.4, 3.70, 1.46, 0.605, 0.171]


@pytest.fixture(scope="module")
def denoise():
    means = torch.tensor([[-1.2, 0.3], [0.9, 1.1], [0.4, -1.0]], dtype=torch.float64)
    mix = GaussianMixture(means, torch.tensor([0.4, 0.6, 0.3]), torch.tensor([1.0, 2.0, 1.5]))

    def denoise(x, sigma):  # sample() passes σ as a (B,) tensor, the references as a float
        return mix(x, sigma if torch.is_tensor(sigma) else torch.full((x.shape[0],), sigma, dtype=torch.float64))

    return denoise


@pytest.fixture(scope="module")
def noise():
    return torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


# ---- references ----------------------------------------------------------------------------------

def ref_dpmpp_2m(D, x, sigmas):
    """DPM-Solver++(2M), Lu et al. 2022b (arXiv 2211.01095), Algorithm 2:
    x_1 = (σ_1/σ_0) x_0 - α_1 (e^{-h_1} - 1) D_0;  then r_i = h_{i-1}/h_i,
    D'_i = (1 + 1/(2 r_i)) D_{i-1} - 1/(2 r_i) D_{i-2},  x_i = (σ_i/σ_{i-1}) x_{i-1} - α_i (e^{-h_i} - 1) D'_i."""
    d_old = h_old = None
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = D(x, s)
        h = math.log(s) - math.log(s_next)  # λ_{i} - λ_{i-1}, λ = -ln σ
        if d_old is None:
            d_eff = d
        else:
            r = h_old / h
            d_eff = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * d_old
        x = (s_next / s) * x - math.expm1(-h) * d_eff
        d_old, h_old = d, h
    return x


def ref_dpmpp_3m(D, x, sigmas):
    """DPM-Solver++(3M): the third-order multistep update of the DPM-Solver++ authors' code
    (`multistep_dpm_solver_third_update`, data prediction; also k-diffusion's 3M at η = 0 and diffusers'
    DPMSolverMultistep with solver_order=3): with φ_1 = e^{-h} - 1, φ_2 = φ_1/h + 1, φ_3 = φ_2/h - 1/2,
    r_0 = h_{i-1}/h, r_1 = h_{i-2}/h, D1_0 = (D_i - D_{i-1})/r_0, D1_1 = (D_{i-1} - D_{i-2})/r_1,
    D1 = D1_0 + r_0/(r_0 + r_1)·(D1_0 - D1_1), D2 = (D1_0 - D1_1)/(r_0 + r_1):
        x' = (σ'/σ) x - φ_1 D_i + φ_2 D1 - φ_3 D2.
    Warm-up as in the authors' code and diffusers: step 1 first order, step 2 the 2M update."""
    ds, hs = [], []
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = D(x, s)
        h = math.log(s) - math.log(s_next)
        phi1 = math.expm1(-h)
        if not ds:
            x = (s_next / s) * x - phi1 * d
        elif len(ds) == 1:
            r = hs[-1] / h
            x = (s_next / s) * x - phi1 * ((1 + 1 / (2 * r)) * d - (1 / (2 * r)) * ds[-1])
        else:
            r0, r1 = hs[-1] / h, hs[-2] / h
            d1_0 = (d - ds[-1]) / r0
            d1_1 = (ds[-1] - ds[-2]) / r1
            d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi2 = phi1 / h + 1
            phi3 = phi2 / h - 0.5
            x = (s_next / s) * x - phi1 * d + phi2 * d1 - phi3 * d2
        ds, hs = ds + [d], hs + [h]
    return x


def ref_unipc(D, x, sigmas, order, variant):
    """UniPC, Zhao et al. 2023 (arXiv 2302.04867): UniP-p predictor and UniC corrector, data prediction
    (their appendix, multistep UniPC with x0-prediction; authors' `multistep_uni_pc_bh_update`).
    With hh = -h, h·φ_1 = e^{hh} - 1, the g-vector b_k = (h·φ_{k+1})·k!/B(h) from the recursion
    hφ_{k+1} = hφ_k/hh - 1/k!, R[k][m] = r_m^k over the nodes r_m = (λ_m - λ_i)/h (and r = 1 for the
    corrector), B(h) = hh (bh1) or e^{hh} - 1 (bh2):
        x_pred = (σ'/σ) x - (e^{hh} - 1) D_i - B(h) Σ_m a_m (D_m - D_i)/r_m,   a = R⁻¹b (UniP: a = 1/2 for p = 2)
        x_corr = (σ'/σ) x - (e^{hh} - 1) D_i - B(h) [Σ_m c_m (D_m - D_i)/r_m + c_p (D(x_pred) - D_i)],
    c = R⁻¹b with the new node (UniC after a first-order predictor: c = 1/2). The model value at the
    predicted point is the next step's D_i; the corrector uses the same order as the predictor."""
    ds, lams = [D(x, sigmas[0])], [-math.log(sigmas[0])]
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        p = min(order, i + 1)
        lam, lam_next = -math.log(s), -math.log(s_next)
        h = lam_next - lam
        hh = -h
        b_h = hh if variant == "bh1" else math.expm1(hh)
        m0 = ds[-1]
        rks = [(lams[-1 - k] - lam) / h for k in range(1, p)]
        d1s = [(ds[-1 - k] - m0) / rk for k, rk in zip(range(1, p), rks)]
        rks.append(1.0)
        h_phi_1 = math.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        fact = 1
        R, b = [], []
        for k in range(1, p + 1):
            R.append([rk ** (k - 1) for rk in rks])
            b.append(h_phi_k * fact / b_h)
            fact *= k + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        R, b = np.array(R), np.array(b)
        x_base = (s_next / s) * x - h_phi_1 * m0
        if p == 1:
            x_pred = x_base
        else:
            rho_p = [0.5] if p == 2 else np.linalg.solve(R[:-1, :-1], b[:-1])
            x_pred = x_base - b_h * sum(float(rh) * dd for rh, dd in zip(rho_p, d1s))
        m_t = D(x_pred, s_next)
        rho_c = [0.5] if p == 1 else np.linalg.solve(R, b)
        corr = sum(float(rh) * dd for rh, dd in zip(rho_c[:-1], d1s)) if p > 1 else 0.0
        x = x_base - b_h * (corr + float(rho_c[-1]) * (m_t - m0))
        ds, lams = ds + [m_t], lams + [lam_next]
    return x


REFERENCES = {
    "dpmpp_2m": ref_dpmpp_2m,
    "dpmpp_3m": ref_dpmpp_3m,
    "unipc": lambda D, x, sig: ref_unipc(D, x, sig, 2, "bh2"),
    "unipc_3": lambda D, x, sig: ref_unipc(D, x, sig, 3, "bh2"),
    "unipc_bh1": lambda D, x, sig: ref_unipc(D, x, sig, 2, "bh1"),
}


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_solver_matches_published_formula(name, steps, denoise, noise):
    sigmas = SIGMAS[: steps + 1]  # open-ended: x at sigmas[-1], every update of every step compared
    x = noise * sigmas[0]
    expected = REFERENCES[name](denoise, x.clone(), sigmas)
    got = nc.sample(denoise, noise, solver=name, sigmas=sigmas)
    assert float((got - expected).abs().max()) <= 1e-10


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_3m"])
def test_final_step_to_zero_returns_the_denoised_value(name, denoise, noise):
    """With a schedule ending in 0 the last step is x = D(x, σ_min) (e^{-h} → 0, first order there)."""
    before = nc.sample(denoise, noise, solver=name, sigmas=SIGMAS)
    got = nc.sample(denoise, noise, solver=name, sigmas=SIGMAS + [0.0])
    torch.testing.assert_close(got, denoise(before, SIGMAS[-1]), rtol=0, atol=1e-12)


def test_renamed_variants_are_not_the_published_ones(denoise, noise):
    """The exact-integral variants differ from the published methods after their first step (with one
    step both are DDIM/first order: 2M, 3M) and agree to their orders' accuracy on fine steps."""
    sigmas = SIGMAS[:4]
    for published, ours in [("dpmpp_2m", "dpmpp_2m_exact"), ("dpmpp_3m", "dpmpp_3m_exact"), ("unipc", "unipc_am")]:
        one = [nc.sample(denoise, noise, solver=n, sigmas=sigmas[:2]) for n in (published, ours)]
        three = [nc.sample(denoise, noise, solver=n, sigmas=sigmas) for n in (published, ours)]
        if published != "unipc":  # UniC-1 (trapezoid-like, a = 1/2) is not the exact Adams-Moulton step
            torch.testing.assert_close(one[0], one[1], rtol=0, atol=1e-13)
        assert float((three[0] - three[1]).abs().max()) > 1e-6, published


def test_published_3m_weights_the_quadratic_term_by_half():
    """Why dpmpp_3m is globally 2nd order: for D(λ) = λ² (independent of x) on equal steps the exact
    integral of the quadratic through three past values is ∫_0^h e^{-(h-τ)} D dτ; the published
    update adds φ_2·D1 - φ_3·D2, whose D2 weight -φ_3 = h/6 + O(h²) is half the exact h/3 + O(h²)."""
    for h in (0.1, 0.01):
        phi1 = math.expm1(-h)
        phi2 = phi1 / h + 1
        phi3 = phi2 / h - 0.5
        exact_j2 = 1 - 2 * (1 - (1 - math.exp(-h)) / h) / h  # h·∫_0^1 e^{-h(1-s)} s² ds
        assert -phi3 == pytest.approx(exact_j2 / 2, rel=1e-6)
        assert -phi3 == pytest.approx(h / 6, rel=h)
