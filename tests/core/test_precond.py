"""Preconditioning: a network that predicts its target exactly yields D = x0 exactly."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc


def _ideal_net(prediction, process, x0, eps, sigma, sigma_data=0.5):
    """A 'network' that returns the exact training target for this (x0, ε, σ)."""
    s = sigma.reshape(-1, 1)

    def net(x_in, c_noise):
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "v":
            alpha = 1 / torch.sqrt(1 + s**2)
            return alpha * eps - alpha * s * x0
        if prediction == "flow":
            return eps - x0
        c_skip = sigma_data**2 / (s**2 + sigma_data**2)
        c_out = s * sigma_data / torch.sqrt(s**2 + sigma_data**2)
        return (x0 - c_skip * (x0 + s * eps)) / c_out

    return net


@pytest.mark.parametrize("prediction,process", [
    ("edm", nc.VEProcess()),
    ("eps", nc.DiscreteVPProcess()),
    ("eps", nc.VEProcess()),
    ("x0", nc.VPProcess()),
    ("v", nc.DiscreteVPProcess("cosine")),
    ("flow", nc.FlowProcess()),
])
def test_ideal_prediction_gives_exact_x0(prediction, process):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 7, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 7, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.3, 1.0, 7.0, 80.0], dtype=torch.float64)
    D = nc.Precond(_ideal_net(prediction, process, x0, eps, sigma), prediction, process)
    torch.testing.assert_close(D(x0 + sigma[:, None] * eps, sigma), x0, rtol=1e-9, atol=1e-9)


def test_eps_model_sees_what_it_saw_in_training():
    """VP + ε: the net gets x_t = sqrt(ᾱ)·x and the DDPM timestep (one-line interop)."""
    proc = nc.DiscreteVPProcess("linear")
    seen = {}

    def net(x_in, c_noise):
        seen["x_in"], seen["t"] = x_in, c_noise
        return torch.zeros_like(x_in)

    t = torch.tensor([0.0, 250.0, 999.0], dtype=torch.float64)
    sigma = proc.sigma(t)
    x = torch.randn(3, 4, dtype=torch.float64)
    nc.Precond(net, "eps", proc)(x, sigma)
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["x_in"], proc.scale(t)[:, None] * x)


def test_conditioning_forwarded_and_scalar_sigma():
    calls = {}

    def net(x_in, c_noise, class_labels=None):
        calls["labels"] = class_labels
        return x_in

    D = nc.Precond(net, "edm")
    out = D(torch.ones(2, 3), 1.0, class_labels=torch.tensor([1, 2]))
    assert out.shape == (2, 3) and calls["labels"].tolist() == [1, 2]


@pytest.mark.parametrize("kwargs,match", [
    (dict(prediction="score"), "unknown prediction"),
    (dict(prediction="v", process=nc.VEProcess()), "VP"),
    (dict(prediction="flow", process=nc.VEProcess()), "FlowProcess"),
    (dict(prediction="edm", sigma_data=0.0), "sigma_data"),
])
def test_bad_precond(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nc.Precond(lambda x, c: x, **kwargs)
