"""log_likelihood against the exact density of a Gaussian mixture; bits_per_dim."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft.eval as ev
from noisecraft import GaussianMixture

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def _mixture(d: int, k: int = 4, scale: float = 0.4, std: float = 0.4, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = scale * torch.randn(k, d, generator=g, dtype=torch.float64)
    return GaussianMixture(means, torch.full((k,), std), torch.rand(k, generator=g, dtype=torch.float64) + 0.5)


def _points(mix: GaussianMixture, n: int = 128) -> torch.Tensor:
    return mix.sample(n, generator=torch.Generator().manual_seed(1), sigma=SIGMA_MIN)


def test_exact_trace_matches_closed_form_2d(mixture2d):
    x = _points(mixture2d)
    exact = mixture2d.log_prob(x, SIGMA_MIN)
    ll = ev.log_likelihood(mixture2d, x, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)  # auto: exact at d = 2
    assert ll.nats.shape == (128,) and ll.nats.dtype == torch.float64
    assert torch.equal(ll.std_err, torch.zeros(128, dtype=torch.float64))  # no probe noise
    err = (ll.nats - exact) / 2  # nats per dimension
    assert err.abs().mean() < 0.01, err.abs().mean()
    assert err.mean().abs() < 0.01


@pytest.mark.parametrize("d", [8, 16, 32])
def test_per_point_error_and_its_standard_error(d):
    """Per point, against the mixture's exact log-density: the default estimator (exact trace up to
    64-D) within 0.03 nats/dim on average, and so is forced Hutchinson with its default probes, whose
    reported standard error covers the actual error (|error| <= 2 s.e.) for most points."""
    mix = _mixture(d, seed=d)
    x = mix.sample(16, generator=torch.Generator().manual_seed(d + 1), sigma=SIGMA_MIN)
    exact = mix.log_prob(x, SIGMA_MIN)
    default = ev.log_likelihood(mix, x, generator=torch.Generator().manual_seed(0))
    assert ((default.nats - exact).abs().mean() / d) <= 0.03
    hutch = ev.log_likelihood(mix, x, trace="hutchinson", generator=torch.Generator().manual_seed(0))
    err = hutch.nats - exact
    assert (err.abs().mean() / d) <= 0.03, err.abs().mean() / d
    assert (hutch.std_err > 0).all()
    assert (err.abs() <= 2 * hutch.std_err).double().mean() >= 0.8
    # The s.e. is of the right size, not a blanket: on average within a factor of 3 of the actual error.
    assert hutch.std_err.mean() < 3 * err.abs().mean() + 1e-9 and err.abs().mean() < 3 * hutch.std_err.mean()


def test_default_probes():
    assert [ev.default_probes(d) for d in (2, 8, 16, 32, 64, 128, 256, 3072)] == [256, 64, 32, 16, 8, 4, 4, 4]


def test_acceptance_exact_and_hutchinson_32d():
    """Means over 128 points: within 0.01 nats/dim (exact trace) and 0.03 (one probe, the cheapest setting)."""
    mix = _mixture(32)
    x = _points(mix)
    exact = mix.log_prob(x, SIGMA_MIN)
    ll_exact = ev.log_likelihood(mix, x, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, trace="exact").nats
    assert ((ll_exact - exact).mean() / 32).abs() < 0.01
    assert ((ll_exact - exact).abs().mean() / 32) < 0.01  # per point, too
    one = ev.log_likelihood(mix, x, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, trace="hutchinson",
                            hutchinson_samples=1, generator=torch.Generator().manual_seed(0))
    assert ((one.nats - exact).mean() / 32).abs() < 0.03
    assert torch.equal(one.std_err, torch.zeros(128, dtype=torch.float64))  # one probe: no spread to measure


def test_probes_are_reproducible_and_options_work(mixture2d):
    x = _points(mixture2d, 16)
    kw = dict(trace="hutchinson", hutchinson_samples=2)
    a = ev.log_likelihood(mixture2d, x, generator=torch.Generator().manual_seed(5), **kw)
    b = ev.log_likelihood(mixture2d, x, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a.nats, b.nats) and torch.equal(a.std_err, b.std_err)
    exact = mixture2d.log_prob(x, SIGMA_MIN)
    # More probes average the estimate down towards the exact value, and the standard error with it.
    many = ev.log_likelihood(mixture2d, x, generator=torch.Generator().manual_seed(5), trace="hutchinson",
                             hutchinson_samples=32)
    assert (many.nats - exact).abs().mean() < (a.nats - exact).abs().mean()
    assert many.std_err.mean() < a.std_err.mean()
    # Gaussian probes are unbiased too, but also noisy on the diagonal of the Jacobian (Rademacher is not).
    gauss = ev.log_likelihood(mixture2d, x, generator=torch.Generator().manual_seed(5), probe="gaussian",
                              method="DOP853", **kw)
    assert gauss.nats.shape == (16,) and torch.isfinite(gauss.nats).all() and not torch.equal(gauss.nats, a.nats)


def test_conditioning_is_forwarded(mixture2d):
    seen = []

    def den(x, sigma, *, class_labels):
        seen.append(class_labels.shape)
        return mixture2d.denoise(x, sigma)

    x = _points(mixture2d, 4)
    ev.log_likelihood(den, x, trace="exact", class_labels=torch.zeros(4, 3))
    assert seen and all(s == (4, 3) for s in seen)


def test_bad_input(mixture2d):
    x = _points(mixture2d, 4)
    with pytest.raises(ValueError, match="sigma_min must be < sigma_max"):
        ev.log_likelihood(mixture2d, x, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="rademacher, gaussian"):
        ev.log_likelihood(mixture2d, x, probe="sobol")
    with pytest.raises(ValueError, match="shaped like x"):
        ev.log_likelihood(lambda x, s: x[:, :1], x)
    with pytest.raises(ValueError, match="auto, exact, hutchinson"):
        ev.log_likelihood(mixture2d, x, trace="diag")
    with pytest.raises(ValueError, match="hutchinson_samples"):
        ev.log_likelihood(mixture2d, x, hutchinson_samples=0)


def test_quantize_and_bin_width():
    assert ev.bin_width() == pytest.approx(2 / 255) and ev.bin_width(17, (0.0, 16.0)) == 1.0
    x = torch.tensor([[-1.0, -0.999, 0.5, 1.0, 1.3]])
    q = ev.quantize(x)
    levels = (q + 1) / (2 / 255)
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert q[0, 0] == -1 and q[0, 3] == 1 and q[0, 4] == 1  # clamped to the range
    with pytest.raises(ValueError, match="levels"):
        ev.bin_width(1)
    with pytest.raises(ValueError, match="low < high"):
        ev.quantize(x, 256, (1.0, -1.0))


def test_discrete_bound_is_a_bound_on_exact_bin_probabilities():
    """A 1-D-per-dimension Gaussian with known bin probabilities: the dequantized estimate, averaged over
    draws, is below log P(bin) (Jensen), and close to it when the density is smooth over a bin."""
    from torch.distributions import Normal

    levels, rng = 9, (-1.0, 1.0)
    delta = ev.bin_width(levels, rng)
    mix = GaussianMixture(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([0.5]))
    x = ev.quantize(mix.sample(8, generator=torch.Generator().manual_seed(3)), levels, rng)
    gauss = Normal(torch.tensor(0.0, dtype=torch.float64), math.sqrt(0.5**2 + SIGMA_MIN**2))
    log_p_bin = torch.log(gauss.cdf(x + delta / 2) - gauss.cdf(x - delta / 2)).sum(1)  # (8,) exact log P(x)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([ev.discrete_log_likelihood(mix, x, levels=levels, data_range=rng, generator=gen).nats
                         for _ in range(64)])
    bound = draws.mean(0)
    assert (bound <= log_p_bin + 3 * draws.std(0) / 8).all()  # a lower bound, up to the draws' noise
    jensen_gap = (log_p_bin - bound) / 3  # per dimension: Var(log p over a bin)/2 ~ small for Δ = 0.25
    assert (jensen_gap.mean() > 0) and (jensen_gap.mean() < 0.05), jensen_gap
    with pytest.raises(ValueError, match="not on the grid of 9 levels"):
        ev.discrete_log_likelihood(mix, x + 0.01, levels=levels, data_range=rng)


def test_bits_per_dim():
    # bpd = -log P / (D ln 2), elementwise on tensors; a uniform law over 256^D values is 8 bits/dim.
    d = 10
    assert ev.bits_per_dim(-d * math.log(256.0), d) == pytest.approx(8.0)
    ll = torch.tensor([0.0, -100.0], dtype=torch.float64)
    torch.testing.assert_close(ev.bits_per_dim(ll, d), -ll / (d * math.log(2)))
    with pytest.raises(ValueError, match="num_dims"):
        ev.bits_per_dim(0.0, 0)


def test_data_span_sees_upsampled_and_constant_pixels():
    g = torch.Generator().manual_seed(0)
    low = torch.rand(300, 1, 4, 4, generator=g) * 2 - 1
    up = torch.nn.functional.interpolate(low, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    assert ev.data_span(up) == ev.DataSpan(16, 64, 300) and ev.data_span(up).degenerate
    nearest = low.repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert ev.data_span(nearest).rank == 16
    full = torch.rand(300, 1, 8, 8, generator=g)
    assert ev.data_span(full) == ev.DataSpan(64, 64, 300) and not ev.data_span(full).degenerate
    full[:, :, 0, 0] = -1.0  # one constant pixel
    assert ev.data_span(full).rank == 63
    assert ev.data_span(full[:64]) is None  # as many images as dimensions: cannot tell
