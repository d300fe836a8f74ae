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


def test_evaluate_nll_on_the_mixture(digit_mixture):
    x = digit_mixture.sample(6, generator=torch.Generator().manual_seed(0), sigma=0.002).float().reshape(6, 1, 8, 8)
    out = ev.evaluate_nll(digit_mixture, x.double(), exact_trace=True, batch_size=4)
    exact = -float(digit_mixture.log_prob(x.double(), 0.002).mean()) / 64
    assert out["nll_nats_per_dim"] == pytest.approx(exact, abs=0.01)
    assert out["bpd_8bit"] == pytest.approx(ev.bits_per_dim(-exact * 64, 64), abs=0.02)
    assert out["nll_n"] == 6
