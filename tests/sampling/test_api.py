"""The sample() contract: NFE budget, determinism, batch invariance, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft as nc
from noisecraft.sampling import DenoiserError
from noisecraft.sampling.deterministic import corrected_steps

ALL = list(nc.SOLVERS)
STOCHASTIC = [n for n, i in nc.SOLVERS.items() if i.stochastic]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 5, 7, 10, 16])
def test_budget_is_spent_exactly_and_never_exceeded(name, nfe, mixture2d, counting):
    info = nc.SOLVERS[name]
    den = counting(mixture2d)
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    if info.adaptive and nfe < 4:
        with pytest.raises(ValueError, match="nfe"):
            nc.sample(den, noise, solver=name, nfe=nfe, generator=gen)
        return
    out = nc.sample(den, noise, solver=name, nfe=nfe, generator=gen)
    assert out.shape == noise.shape and torch.isfinite(out).all()
    if info.adaptive:
        assert den.calls <= nfe
    else:
        assert den.calls == nfe, f"{name} made {den.calls} calls for nfe={nfe}"


# 6 intervals of karras(6, 0.01, 80): steps 0-4 can be corrected, the final σ_min → 0 step never.
# The budget beyond one call per step corrects the LAST (lowest-σ) steps first (corrected_steps).
CORRECTED = {6: set(), 7: {4}, 8: {3, 4}, 9: {2, 3, 4}, 11: {0, 1, 2, 3, 4}, 14: {0, 1, 2, 3, 4}}


def _expected_call_sigmas(name: str, sigmas: list[float], corrected: set[int]) -> list[float]:
    """The σ of every denoiser call, in order, when exactly the steps in `corrected` get their second call."""
    gamma = math.sqrt(2) - 1  # edm_stochastic: min(s_churn / n, sqrt 2 - 1) with s_churn = 40, churn for σ in [0.05, 50]
    calls = []
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        calls.append(s * (1 + gamma) if name == "edm_stochastic" and 0.05 <= s <= 50 else s)
        if i in corrected:  # Heun / Langevin correct at σ', DPM-Solver++(2S) at the midpoint in log σ
            calls.append(math.sqrt(s * s_next) if name == "dpmpp_2s" else s_next)
    return calls


@pytest.mark.parametrize("nfe", sorted(CORRECTED))
@pytest.mark.parametrize("name", ["heun", "dpmpp_2s", "edm_stochastic", "pc_langevin", "unipc"])
def test_short_budget_with_explicit_sigmas_drops_corrections(name, nfe, mixture2d):
    """With 6 steps and nfe = 6 + k, exactly the last k correctable steps are corrected (the budget
    is spent exactly up to 11 calls); UniPC's corrector reuses the next step's call, so it makes 6
    calls whatever the budget."""
    sigmas = nc.karras(6, 0.01, 80.0)
    assert corrected_steps(sigmas.tolist(), nfe) == CORRECTED[nfe]
    seen = []

    def den(x, sigma):
        seen.append(float(sigma[0]))
        return mixture2d(x, sigma)

    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nc.sample(den, noise, solver=name, sigmas=sigmas, nfe=nfe, generator=torch.Generator().manual_seed(0))
    expected = _expected_call_sigmas(name, sigmas.tolist(), set() if name == "unipc" else CORRECTED[nfe])
    assert len(seen) == min(nfe, 11 if name != "unipc" else 6)
    torch.testing.assert_close(torch.tensor(seen, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="at least 6"):
        nc.sample(mixture2d, noise, solver=name, sigmas=sigmas, nfe=5)


def test_adaptive_meets_tolerance_under_cap(mixture2d, counting):
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = nc.solve_pf_ode(mixture2d, noise * 80.0, 80.0, 0.0, rtol=1e-9, atol=1e-9)
    errors, calls = [], []
    for tol in [1e-2, 1e-3, 1e-5]:
        den = counting(mixture2d)
        out = nc.sample(den, noise, solver="adaptive_rk", nfe=2000, sigma_min=1e-3, sigma_max=80.0, rtol=tol, atol=tol)
        errors.append(float((out - ref).pow(2).mean().sqrt()))
        calls.append(den.calls)
    assert calls[0] < calls[1] < calls[2] < 2000  # tighter tolerance -> more (but capped) calls
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


@pytest.mark.parametrize("name", STOCHASTIC)
def test_same_seed_bitwise_and_per_sample_generators_batch_invariant(name, mixture2d):
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda gens, x: nc.sample(mixture2d, x, solver=name, nfe=12, generator=gens)  # noqa: E731
    a = run(torch.Generator().manual_seed(7), noise)
    b = run(torch.Generator().manual_seed(7), noise)
    assert torch.equal(a, b)
    c = run(torch.Generator().manual_seed(8), noise)
    assert not torch.equal(a, c)
    batch = run(nc.seeded_generators([0, 1, 2, 3]), noise)
    singles = torch.cat([run(nc.seeded_generators([i]), noise[i : i + 1]) for i in range(4)])
    # Same noise per sample; the mixture's batched float64 reductions may differ in the last bit
    # between a batch of 4 and of 1 (vector kernels vs their scalar tails), so compare at 1e-12.
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-12)
    assert not torch.allclose(batch[0], batch[1])


def test_deterministic_solvers_are_batch_invariant(mixture2d):
    noise = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name, info in nc.SOLVERS.items():
        if info.stochastic:
            continue
        batch = nc.sample(mixture2d, noise, solver=name, nfe=10)
        singles = torch.cat([nc.sample(mixture2d, noise[i : i + 1], solver=name, nfe=10) for i in range(5)])
        torch.testing.assert_close(batch, singles, rtol=1e-12, atol=1e-12)


def test_any_tensor_shape_is_accepted():
    mean = torch.zeros(1, 3, 4, 5)

    def gaussian(x, sigma):  # x0 ~ N(0, I): E[x0|x] = x / (1 + σ²)
        return x / (1 + sigma.reshape(-1, 1, 1, 1) ** 2)

    noise = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    out = nc.sample(gaussian, noise, solver="dpmpp_3m", nfe=32)
    assert out.shape == noise.shape and mean.shape[1:] == out.shape[1:]
    # Exact PF-ODE for a standard normal: x(0) = x(σ_max)/sqrt(1+σ_max²).
    torch.testing.assert_close(out, noise * 80.0 / math.sqrt(1 + 80.0**2), rtol=2e-3, atol=2e-3)


def test_ddim_eta0_is_euler_and_ddpm_is_eta1(mixture2d):
    noise = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = nc.karras(8, 0.01, 80.0)
    assert torch.equal(nc.sample(mixture2d, noise, solver="ddim", sigmas=sig),
                       nc.sample(mixture2d, noise, solver="euler", sigmas=sig))
    a = nc.sample(mixture2d, noise, solver="ddpm", sigmas=sig, generator=torch.Generator().manual_seed(1))
    b = nc.sample(mixture2d, noise, solver="ddim_eta", eta=1.0, sigmas=sig, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="eta"):
        nc.sample(mixture2d, noise, solver="ddpm", eta=0.3)


def test_callback_sees_every_step(mixture2d):
    seen = []
    nc.sample(mixture2d, torch.randn(2, 2, dtype=torch.float64), solver="dpmpp_2m", nfe=6, callback=seen.append)
    assert [s["i"] for s in seen] == list(range(6))
    assert seen[-1]["sigma_next"] == 0.0 and all(set(s) >= {"x", "sigma", "denoised"} for s in seen)


def test_conditioning_is_forwarded(mixture2d):
    got = {}

    def den(x, sigma, class_labels=None):
        got["labels"] = class_labels
        return mixture2d(x, sigma)

    nc.sample(den, torch.randn(2, 2, dtype=torch.float64), solver="euler", nfe=3, class_labels=torch.tensor([1, 2]))
    assert got["labels"].tolist() == [1, 2]


# ---- bad input -------------------------------------------------------------------------------

@pytest.fixture
def noise():
    return torch.randn(3, 2, dtype=torch.float64)


def test_unknown_solver_lists_valid_names(mixture2d, noise):
    with pytest.raises(ValueError, match="valid solvers: euler, heun"):
        nc.sample(mixture2d, noise, solver="dpm_fast")


@pytest.mark.parametrize("nfe", [0, -3, 2.5, True, "10"])
def test_bad_nfe(mixture2d, noise, nfe):
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        nc.sample(mixture2d, noise, solver="euler", nfe=nfe)


@pytest.mark.parametrize("lo,hi", [(1.0, 1.0), (5.0, 1.0), (0.0, 1.0), (float("nan"), 1.0), (0.1, float("inf"))])
def test_bad_sigma_range(mixture2d, noise, lo, hi):
    with pytest.raises(ValueError, match="sigma_m"):
        nc.sample(mixture2d, noise, solver="euler", nfe=4, sigma_min=lo, sigma_max=hi)


@pytest.mark.parametrize("sigmas,match", [
    ([[80.0, 1.0, 0.0]], "1-D"),
    ([80.0], "at least 2"),
    ([80.0, float("nan"), 0.0], "finite"),
    ([80.0, 90.0, 0.0], "strictly decreasing"),
    ([80.0, 1.0, -1.0], ">= 0"),
])
def test_bad_sigmas(mixture2d, noise, sigmas, match):
    with pytest.raises(ValueError, match=match):
        nc.sample(mixture2d, noise, solver="euler", sigmas=sigmas)


def test_nan_denoiser_names_step_and_sigma(mixture2d, noise):
    def bad(x, sigma):
        out = mixture2d(x, sigma)
        return out * float("nan") if float(sigma[0]) < 1.0 else out

    with pytest.raises(DenoiserError, match=r"NaN/Inf at step \d+ \(sigma=0\.\d+"):
        nc.sample(bad, noise, solver="heun", nfe=10)


def test_deferred_nonfinite_check_names_the_first_bad_call(mixture2d, noise):
    """The CUDA path (forced here on the CPU): no host synchronisation per call, the same error after."""
    from noisecraft.sampling.api import GuardedDenoiser

    sigmas = [2.0, 1.0, 0.5, 0.0]

    def bad(x, sigma):
        return mixture2d(x, sigma) * (float("nan") if float(sigma[0]) < 1.5 else 1.0)

    guarded = GuardedDenoiser(bad, 3, sigmas, {}, defer=True)
    for s in sigmas[:3]:
        guarded(noise, s)  # does not raise while the solver runs
    with pytest.raises(DenoiserError, match=r"NaN/Inf at step 1 \(sigma=1, call 2\)"):
        guarded.check()
    fine = GuardedDenoiser(mixture2d, 3, sigmas, {}, defer=True)
    assert torch.equal(fine(noise, 1.0), GuardedDenoiser(mixture2d, 3, sigmas, {})(noise, 1.0))
    fine.check()


def test_wrong_shape_denoiser(noise):
    with pytest.raises(DenoiserError, match=r"shape \(3,\) for input \(3, 2\) at step 0"):
        nc.sample(lambda x, s: x.sum(1), noise, solver="euler", nfe=3)


def test_non_tensor_noise(mixture2d):
    with pytest.raises(ValueError, match="noise must be a floating-point tensor"):
        nc.sample(mixture2d, [[0.0, 1.0]], solver="euler")
