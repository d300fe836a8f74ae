"""Losses: each weighting equals its textbook target-space loss; noise levels have the right law."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft as nc
from noisecraft.core.losses import WEIGHTINGS


class FixedLevels(nc.NoiseLevels):
    def __init__(self, sigma):
        self.sigma = sigma

    def sample(self, n, *, generator=None, device=None):
        return self.sigma.clone()


def _setup(prediction, process):
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 6).double()
    wrapped = lambda x_in, c_noise: net(x_in)  # noqa: E731
    return nc.Precond(wrapped, prediction, process), wrapped


@pytest.mark.parametrize("weighting,prediction,process", [
    ("eps", "eps", nc.VEProcess()),
    ("min_snr", "eps", nc.DiscreteVPProcess()),
    ("flow", "flow", nc.FlowProcess()),
    ("x0", "x0", nc.VEProcess()),
    ("edm", "edm", nc.VEProcess()),
])
def test_weighted_x0_loss_equals_target_loss(weighting, prediction, process):
    D, net = _setup(prediction, process)
    sigma = torch.tensor([0.05, 0.5, 2.0, 20.0], dtype=torch.float64)
    x0 = torch.randn(4, 6, dtype=torch.float64)
    loss = nc.DenoisingLoss(FixedLevels(sigma), weighting)
    g = torch.Generator().manual_seed(5)
    got = loss(D, x0, generator=g)
    # Recreate the same ε and compute the loss in the network's own target space.
    g = torch.Generator().manual_seed(5)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    x = x0 + sigma[:, None] * eps
    c_skip, c_out, c_in, c_noise = D.coefficients(sigma)
    out = net(x * c_in[:, None], c_noise)
    s = sigma[:, None]
    if weighting == "eps":
        want = ((out - eps) ** 2).mean()
    elif weighting == "min_snr":
        snr = 1 / s**2
        want = (torch.clamp(snr, max=5.0) / snr * (out - eps) ** 2).mean()
    elif weighting == "flow":
        want = ((out - (eps - x0)) ** 2).mean()
    elif weighting == "x0":
        want = ((out - x0) ** 2).mean()
    else:  # EDM: λ(σ)·c_out² = 1, so the loss is the MSE of F against its effective target
        target = (x0 - c_skip[:, None] * x) / c_out[:, None]
        want = ((out - target) ** 2).mean()
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_noise_level_laws():
    g = torch.Generator().manual_seed(0)
    s = nc.LogNormal(-1.2, 1.2).sample(200_000, generator=g)
    assert abs(float(s.log().mean()) + 1.2) < 0.02 and abs(float(s.log().std()) - 1.2) < 0.02
    t = nc.LogitNormal(0.0, 1.0).sample(200_000, generator=g)
    tt = t / (1 + t)
    assert abs(float(torch.logit(tt).mean())) < 0.02
    proc = nc.DiscreteVPProcess()
    u = nc.UniformTime(proc).sample(5000, generator=g).double()
    assert torch.isin(torch.round(proc.t_of_sigma(u)), torch.arange(1000.0, dtype=torch.float64)).all()
    lu = nc.LogUniform(0.01, 100.0).sample(100_000, generator=g)
    assert 0.01 <= float(lu.min()) and float(lu.max()) <= 100 and abs(float(lu.log().mean())) < 0.05


def test_loss_trains_a_denoiser_toward_the_posterior_mean():
    """A linear denoiser trained with the EDM loss on N(0, 1) data learns E[x0|x] = x/(1+σ²)."""
    torch.manual_seed(0)

    class Scalar(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))

        def forward(self, x_in, c_noise):
            return x_in * self.mlp(c_noise[:, None])

    D = nc.Precond(Scalar(), "edm", sigma_data=1.0)
    loss = nc.DenoisingLoss(nc.LogNormal(0.0, 1.0), "edm", sigma_data=1.0)
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    for _ in range(400):
        opt.zero_grad()
        loss(D, torch.randn(256, 1)).backward()
        opt.step()
    sigma = torch.tensor([0.3, 1.0, 3.0])
    x = torch.ones(3, 1)
    torch.testing.assert_close(D(x, sigma).squeeze(1), 1 / (1 + sigma**2), atol=0.05, rtol=0)


def test_bad_loss_arguments():
    with pytest.raises(ValueError, match="valid: edm, eps, min_snr, flow, x0"):
        nc.DenoisingLoss(nc.LogNormal(), "huber")
    with pytest.raises(ValueError):
        nc.LogNormal(0, -1)
    assert set(WEIGHTINGS) == {"edm", "eps", "min_snr", "flow", "x0"}
    assert math.isclose(float(nc.loss_weight("edm", torch.tensor(0.5))), (0.25 + 0.25) / 0.0625)
