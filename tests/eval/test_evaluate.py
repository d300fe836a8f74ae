"""Protocols: reference + noise floor, evaluate_samples, the training hook, evaluate_nll."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisecraft.conditioning import ClassLabels
from noisecraft.sampling import SamplingSpec

import noisecraft.eval as ev
from noisecraft import GaussianMixture


@pytest.fixture
def extractor(tiny_features):
    return ev.load_extractor(tiny_features[0])


@pytest.fixture
def reference(extractor, digits8_splits):
    train, test = digits8_splits
    return ev.build_reference(train.images, extractor, holdout=test.images, holdout_labels=test.labels,
                              name="digits", kid_subsets=10)


@pytest.fixture
def digit_mixture(digits8_splits):
    """An exact denoiser whose samples look like blurred digits: one component per class mean."""
    train = digits8_splits[0]
    means = torch.stack([train.images[train.labels == c].mean(0).reshape(-1) for c in range(10)]).double()
    return GaussianMixture(means, torch.full((10,), 0.15))


def test_parse_metrics():
    assert ev.parse_metrics("fd, kid,fd") == ("fd", "kid")
    with pytest.raises(ev.EvalError, match="unknown metric 'fid'; valid: fd, kid, pr, acc, nll"):
        ev.parse_metrics("fd,fid")
    with pytest.raises(ev.EvalError, match="no metrics"):
        ev.parse_metrics(" , ")


def test_noise_floor_equals_evaluating_the_holdout(reference, digits8_splits):
    test = digits8_splits[1]
    floor = reference.noise_floor
    assert {"fd", "kid", "kid_std_err", "precision", "recall", "accuracy", "coverage", "n"} <= set(floor)
    assert floor["n"] == test.images.shape[0]
    again = ev.evaluate_samples(test.images, reference, labels=test.labels)
    for key in ("fd", "kid", "kid_std_err", "precision", "recall", "accuracy", "coverage"):
        assert again[key] == floor[key], key
    assert floor["accuracy"] == pytest.approx(reference.extractor.info["held_out_accuracy"])
    assert reference.describe()["n_holdout"] == test.images.shape[0]


def test_evaluate_samples_is_deterministic_and_sensible(reference, digits8_splits):
    train = digits8_splits[0]
    noise = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = ev.evaluate_samples(noise, reference)
    b = ev.evaluate_samples(noise, reference)
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    real = ev.evaluate_samples(train.images[:200], reference, labels=train.labels[:200])
    assert real["fd"] < a["fd"] and real["kid"] < a["kid"] and real["precision"] > a["precision"]
    assert "accuracy" not in a and "coverage" in a  # no labels: coverage only
    with pytest.raises(ev.EvalError, match="needs at least 9 samples"):
        ev.evaluate_samples(noise[:5], reference, metrics=["fd"])


def test_evaluate_during_training(reference, digit_mixture):
    calls = []

    class Wrapped(torch.nn.Module):
        def forward(self, x, sigma, class_labels=None):
            calls.append(self.training)
            return digit_mixture.denoise(x, sigma).to(x.dtype)

    den = Wrapped().train()
    state = torch.get_rng_state()
    kw = dict(shape=(1, 8, 8), n=40, spec=SamplingSpec(solver="euler", nfe=6, seed=3),
              conditioners=[ClassLabels([str(i) for i in range(10)])], metrics=("fd", "kid", "acc"))
    a = ev.evaluate_during_training(den, reference, **kw)
    b = ev.evaluate_during_training(den, reference, **kw)
    assert torch.equal(state, torch.get_rng_state())  # the trainer's RNG is untouched
    assert den.training and calls and not any(calls)  # eval mode inside, restored after
    for key in ("fd", "kid", "kid_std_err", "accuracy", "coverage"):
        assert a[key] == b[key] and math.isfinite(a[key])
    assert a["n"] == 40 and a["sampling_seconds"] > 0
    assert set(ev.METRIC_DIRECTIONS) >= {"fd", "kid", "accuracy"}


def test_evaluate_nll_continuous_on_the_mixture(digit_mixture):
    x = digit_mixture.sample(6, generator=torch.Generator().manual_seed(0), sigma=0.002).reshape(6, 1, 8, 8)
    out = ev.evaluate_nll(digit_mixture, x, levels=None, batch_size=4)  # 64-D: exact trace by default
    exact = -float(digit_mixture.log_prob(x, 0.002).mean()) / 64
    assert out["nll_nats_per_dim"] == pytest.approx(exact, abs=0.01)
    assert out["nll_n"] == 6 and out["trace"] == "exact" and out["estimator_std_err_per_dim"] == 0.0
    assert out["span"] is None and out["note"] is None and "bpd" not in out  # 6 points in 64-D: cannot tell


def test_evaluate_nll_discrete_bound(digit_mixture):
    """8-bit data: the dequantized bits/dim, which equals -(log p(x + u) + D ln Δ)/(D ln 2) per image."""
    x = digit_mixture.sample(6, generator=torch.Generator().manual_seed(0), sigma=0.002).reshape(6, 1, 8, 8)
    x = x.clamp(-1, 1)
    out = ev.evaluate_nll(digit_mixture, x, batch_size=6, seed=3)
    xq = ev.quantize(x)
    assert 0 < out["quantization_max_change"] <= 1 / 255 + 1e-12
    again = ev.discrete_log_likelihood(digit_mixture, xq, generator=torch.Generator().manual_seed(3))
    per_image = ev.bits_per_dim(again.nats, 64)
    assert out["bpd"] == pytest.approx(float(per_image.mean()), rel=1e-9)
    assert out["bpd_std_err"] == pytest.approx(float(per_image.std() / math.sqrt(6)), rel=1e-9)
    assert out["levels"] == 256 and out["bin_width"] == pytest.approx(2 / 255) and out["dequant_draws"] == 1
    # It is close to the continuous figure converted with the bin width (the density is smooth at Δ = 2/255).
    cont = ev.evaluate_nll(digit_mixture, xq, levels=None, batch_size=6)["nll_nats_per_dim"]
    assert out["bpd"] == pytest.approx((cont - math.log(2 / 255)) / math.log(2), abs=0.05)
    two = ev.evaluate_nll(digit_mixture, x, batch_size=6, dequant_draws=2, levels=16)
    assert two["dequant_draws"] == 2 and two["bin_width"] == pytest.approx(2 / 15)


def test_evaluate_nll_refuses_a_density_on_a_subspace(digit_mixture):
    """Images upsampled from 4x4 fill 16 of 64 dimensions: no continuous NLL, and the bound carries a note."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(80, 1, 4, 4, generator=g) * 2 - 1
    up = torch.nn.functional.interpolate(low, size=(8, 8), mode="nearest")
    with pytest.raises(ev.EvalError, match="span only 16 of 64 dimensions"):
        ev.evaluate_nll(digit_mixture, up[:2], levels=None, support=up)
    out = ev.evaluate_nll(digit_mixture, up[:2], support=up, trace="hutchinson", hutchinson_samples=4)
    assert out["span"] == {"rank": 16, "dims": 64, "n": 82} and "span only 16 of 64" in out["note"]
    assert out["trace"] == "hutchinson" and out["probes"] == 4 and out["estimator_std_err_per_dim"] > 0
    assert math.isfinite(out["bpd"])
