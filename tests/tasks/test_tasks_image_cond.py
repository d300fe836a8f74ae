"""Mask- and low-res-conditioned models in the tasks: `inpaint(method="model")`, `super_resolve(
method="model")`, the condition builders, and the errors for wrong models and inputs.

Oracle: for independent N(0, s²) pixels the exact denoiser of an unknown pixel is s²/(s²+σ²)·x
whatever the other pixels are, so a mask-conditioned "model" that returns the known pixels from
its condition and that shrinkage elsewhere is exact, and one sampler pass must give N(0, s²) there.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisecraft.core import Precond
from noisecraft.nets import build_net
from noisecraft.sampling import seeded_generators
from noisecraft.tasks import (Downsample, image_cond_channels, image_cond_of, inpaint, lowres_condition,
                              mask_condition, super_resolve)

S = 0.7  # prior std of every pixel


class MaskOracle(nn.Module):
    """Exact D(x, σ | known pixels) for independent N(0, S²) pixels; counts its calls."""

    image_cond = "mask"
    lowres_factor = 0

    def __init__(self) -> None:
        super().__init__()
        self.calls, self.conds = 0, []

    def forward(self, x, sigma, *, image_cond=None):
        self.calls += 1
        self.conds.append(image_cond)
        image, keep = image_cond[:, :-1], image_cond[:, -1:]
        shrink = S**2 / (S**2 + sigma.reshape(-1, 1, 1, 1) ** 2)
        return torch.where(keep.bool(), image, shrink * x)


class Plain(nn.Module):
    """The unconditional exact denoiser of the same prior (what RePaint would use)."""

    image_cond = ""

    def forward(self, x, sigma, **cond):
        return S**2 / (S**2 + sigma.reshape(-1, 1, 1, 1) ** 2) * x


def _image_and_mask(b=64, c=1, r=8):
    torch.manual_seed(0)
    image = torch.rand(b, c, r, r) * 2 - 1
    keep = torch.ones(1, 1, r, r)
    keep[..., 2:6, 2:6] = 0
    return image, keep


def test_condition_builders():
    image, keep = _image_and_mask(b=2, c=3)
    cond = mask_condition(image, keep)
    assert cond.shape == (2, 4, 8, 8)
    assert torch.equal(cond[:, 3:], keep.expand(2, 1, 8, 8))
    assert torch.equal(cond[:, :3], image * keep)  # unknown pixels never reach the net
    low = Downsample(4)(image)
    up = lowres_condition(low, 4)
    assert up.shape == image.shape and torch.allclose(Downsample(4)(up), low)
    assert [image_cond_channels(k, 3) for k in ("", "mask", "lowres")] == [0, 4, 3]
    with pytest.raises(ValueError, match=r"one mask for all channels"):
        mask_condition(image, torch.ones(2, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown image condition 'box'"):
        image_cond_channels("box", 1)


def test_model_inpainting_is_one_exact_pass():
    image, keep = _image_and_mask(b=256)
    oracle = MaskOracle()
    out = inpaint(oracle, image, keep, solver="dpmpp_2m", nfe=30, generator=seeded_generators(range(256)))
    assert oracle.calls == 30  # one sampler pass of nfe calls, no resampling
    assert torch.equal(oracle.conds[0], mask_condition(image, keep.expand(256, 1, 8, 8)))
    known = keep.bool().expand_as(image)
    assert torch.equal(out[known], image[known])  # known pixels exact
    hole = out[~known]  # 256 images x 16 pixels from N(0, S²) if the pass is exact
    assert abs(float(hole.mean())) < 0.03
    assert float(hole.std()) == pytest.approx(S, rel=0.05)  # measured 0.714 (Monte-Carlo std error ~0.008)


def test_model_inpainting_is_reproducible_per_sample():
    image, keep = _image_and_mask(b=4)
    a = inpaint(MaskOracle(), image, keep, solver="ddpm", nfe=8, generator=seeded_generators(range(4)))
    b = inpaint(MaskOracle(), image[2:3], keep, solver="ddpm", nfe=8, generator=seeded_generators([2]))
    assert torch.allclose(a[2:3], b, atol=1e-6)


def test_auto_picks_the_method_from_the_tag():
    image, keep = _image_and_mask(b=2)
    plain = Plain()
    calls = []
    counted = lambda x, s, **c: (calls.append(1), plain(x, s, **c))[1]  # noqa: E731 - untagged wrapper: RePaint
    inpaint(counted, image, keep, solver="ddpm", nfe=4, resample_steps=2)
    assert len(calls) == 8  # RePaint: nfe · U calls
    oracle = MaskOracle()
    inpaint(oracle, image, keep, solver="ddpm", nfe=4)
    assert oracle.calls == 4


def test_inpaint_errors_name_the_problem():
    image, keep = _image_and_mask(b=2)
    with pytest.raises(ValueError, match="needs a mask-conditioned denoiser.*no image condition.*method='repaint'"):
        inpaint(Plain(), image, keep, method="model")
    with pytest.raises(ValueError, match="RePaint needs a denoiser without an image condition.*mask-conditioned"):
        inpaint(MaskOracle(), image, keep, method="repaint")
    with pytest.raises(ValueError, match="apply to method 'repaint' only"):
        inpaint(MaskOracle(), image, keep, resample_steps=5)
    with pytest.raises(ValueError, match="unknown inpaint method 'palette'"):
        inpaint(MaskOracle(), image, keep, method="palette")
    rgb = torch.zeros(2, 3, 8, 8)
    per_channel = torch.ones(2, 3, 8, 8)
    per_channel[:, 0, :2] = 0
    with pytest.raises(ValueError, match="one mask for all channels"):
        inpaint(MaskOracle(), rgb, per_channel)
    # a real mask-conditioned net at 8x8 given a 16x16 image: the net names the expected condition
    torch.manual_seed(0)
    net = build_net("dit-tiny", in_channels=1, resolution=8, cond_channels=2)
    den = Precond(net)  # a mask condition: read from the net's cond_channels (in_channels + 1)
    assert image_cond_of(den) == ("mask", 0)
    with pytest.raises(ValueError, match="does not match this DiT's resolution 8x8"):
        inpaint(den, torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16), nfe=2)


def test_plain_precond_is_known_to_have_no_condition():
    den = Precond(build_net("unet-tiny", in_channels=1, resolution=8))  # untagged: read from the net
    assert image_cond_of(den) == ("", 0)
    assert image_cond_of(lambda x, s: x) == (None, 0)


class LowresOracle(nn.Module):
    """D(x, σ | y) that returns the upsampled condition: records what it was given."""

    image_cond = "lowres"
    lowres_factor = 4

    def __init__(self) -> None:
        super().__init__()
        self.conds = []

    def forward(self, x, sigma, *, image_cond=None):
        self.conds.append(image_cond)
        return image_cond.expand_as(x)


def test_model_super_resolution():
    torch.manual_seed(0)
    low = torch.rand(3, 1, 2, 2) * 2 - 1
    oracle = LowresOracle()
    out = super_resolve(oracle, low, 4, solver="euler", nfe=5, generator=seeded_generators(range(3)))
    assert out.shape == (3, 1, 8, 8) and len(oracle.conds) == 5
    assert torch.equal(oracle.conds[0], lowres_condition(low, 4))
    assert torch.allclose(Downsample(4)(out), low, atol=1e-5)  # this oracle is consistent: so is the result


def test_super_resolution_errors_name_the_problem():
    low = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="trained for factor 4.*factor 2 was asked"):
        super_resolve(LowresOracle(), low, 2)
    with pytest.raises(ValueError, match="zero-shot method 'dps' needs a denoiser without an image condition"):
        super_resolve(LowresOracle(), low, 4, method="dps")
    with pytest.raises(ValueError, match="needs a low-res-conditioned denoiser.*no image condition"):
        super_resolve(Plain(), low, 4, method="model")
    with pytest.raises(ValueError, match="needs a low-res-conditioned denoiser.*mask condition"):
        super_resolve(MaskOracle(), low, 4, method="model")
    with pytest.raises(ValueError, match="sigma_y=0.1 applies to the zero-shot methods only"):
        super_resolve(LowresOracle(), low, 4, sigma_y=0.1)
    with pytest.raises(ValueError, match="unknown super-resolution method 'bicubic'"):
        super_resolve(Plain(), low, 4, method="bicubic")
