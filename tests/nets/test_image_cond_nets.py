"""Concatenation conditioning (`cond_channels`, `image_cond`) in the U-Net and the DiT, and its
path through the preconditioning (x scaled by c_in, the condition never)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisecraft.core import Precond
from noisecraft.nets import build_net, build_net_from_config

PRESETS = ["unet-tiny", "dit-tiny"]


def _net(name: str, nudge, cond_channels: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return nudge(build_net(name, in_channels=1, resolution=8, cond_channels=cond_channels)).eval()


@pytest.mark.parametrize("name", PRESETS)
def test_condition_changes_the_output_and_only_its_own_row(name, nudge):
    net = _net(name, nudge)
    x, c = torch.randn(3, 1, 8, 8), torch.zeros(3)
    cond = torch.randn(3, 2, 8, 8)
    out = net(x, c, image_cond=cond)
    assert out.shape == x.shape
    other = cond.clone()
    other[1] += 1.0  # change sample 1's condition only
    out2 = net(x, c, image_cond=other)
    assert not torch.allclose(out[1], out2[1])
    assert torch.equal(out[0], out2[0]) and torch.equal(out[2], out2[2])


@pytest.mark.parametrize("name", PRESETS)
def test_input_layer_reads_x_and_condition(name, nudge):
    net = _net(name, nudge, cond_channels=3)
    first = net.conv_in if name.startswith("unet") else net.patch_embed
    assert first.in_channels == 1 + 3
    twin = build_net_from_config(net.config)  # cond_channels survives the JSON config
    assert twin.cfg.cond_channels == 3
    twin.load_state_dict(net.state_dict(), strict=True)


@pytest.mark.parametrize("name", PRESETS)
def test_wrong_or_missing_condition_is_a_clear_error(name, nudge):
    net = _net(name, nudge)
    x, c = torch.randn(2, 1, 8, 8), torch.zeros(2)
    with pytest.raises(ValueError, match=r"needs image_cond of shape .*\(2, 2, 8, 8\).*got None"):
        net(x, c)
    with pytest.raises(ValueError, match=r"expected image_cond of shape .*\(2, 2, 8, 8\), got \(2, 1, 8, 8\)"):
        net(x, c, image_cond=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"got \(2, 2, 4, 4\)"):
        net(x, c, image_cond=torch.zeros(2, 2, 4, 4))
    plain = build_net(name, in_channels=1, resolution=8)
    with pytest.raises(ValueError, match="takes no image condition"):
        plain(x, c, image_cond=torch.zeros(2, 2, 8, 8))


def test_negative_cond_channels_is_refused():
    with pytest.raises(ValueError, match="cond_channels must be an integer >= 0"):
        build_net("unet-tiny", in_channels=1, resolution=8, cond_channels=-1)
    with pytest.raises(ValueError, match="cond_channels must be an integer >= 0"):
        build_net("dit-tiny", in_channels=1, resolution=8, cond_channels=-1)


class _Spy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: dict = {}

    def forward(self, x, c_noise, *, image_cond=None):
        self.seen = {"x": x, "image_cond": image_cond}
        return torch.zeros_like(x)


@pytest.mark.parametrize("prediction", ["edm", "eps"])
def test_precond_scales_x_but_never_the_condition(prediction):
    spy = _Spy()
    den = Precond(spy, prediction)
    x = torch.randn(2, 1, 4, 4)
    cond = torch.randn(2, 2, 4, 4)
    sigma = torch.tensor([0.5, 3.0])
    den(x, sigma, image_cond=cond)
    c_in = den.coefficients(sigma)[2].reshape(-1, 1, 1, 1)
    assert torch.allclose(spy.seen["x"], x * c_in)
    assert spy.seen["image_cond"] is cond  # passed through untouched
