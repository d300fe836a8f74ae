"""Cross-attention padding mask: padded context tokens are ignored, fully masked rows add nothing."""

from __future__ import annotations

import pytest
import torch

from noisecraft.nets import build_net
from noisecraft.nets.layers import Attention

MASK = torch.tensor([[1, 1, 1, 0, 0, 0],
                     [1, 1, 1, 1, 1, 1],
                     [1, 0, 0, 0, 0, 0],
                     [0, 0, 0, 0, 0, 0]], dtype=torch.bool)  # (B, L): real tokens, all real, one, none


def _random_net(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_net(name, in_channels=3, resolution=8, context_dim=12)
    with torch.no_grad():  # zero-initialised output projections would hide the cross-attention
        for p in net.parameters():
            p.normal_(0, 0.15)
    return net.eval()


@pytest.fixture(params=["unet-tiny", "dit-tiny"])
def net(request):
    return _random_net(request.param)


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, generator=g), torch.randn(4, 6, 12, generator=g)


@torch.no_grad()
def test_padding_values_do_not_matter(net):
    x, c, ctx = _inputs()
    out = net(x, c, context=ctx, context_mask=MASK)
    garbage = ctx.clone()
    garbage[~MASK] = 1e3 * torch.randn(int((~MASK).sum()), 12)
    assert torch.equal(net(x, c, context=garbage, context_mask=MASK), out)
    # ...while without the mask the padding changes the output: the test can see a difference
    assert not torch.allclose(net(x, c, context=garbage), out, atol=1e-3)
    assert torch.isfinite(out).all()


@torch.no_grad()
def test_equals_running_on_the_unpadded_context(net):
    x, c, ctx = _inputs()
    out = net(x, c, context=ctx, context_mask=MASK)
    for i in range(3):
        real = int(MASK[i].sum())
        alone = net(x[i : i + 1], c[i : i + 1], context=ctx[i : i + 1, :real])
        assert torch.allclose(out[i : i + 1], alone, atol=1e-5), i


@torch.no_grad()
def test_fully_masked_row_adds_nothing(net):
    """A row without a real token skips cross-attention for that sample: no NaN, same as context=None."""
    x, c, ctx = _inputs()
    out = net(x, c, context=ctx, context_mask=MASK)
    no_context = net(x, c)[3:]
    assert torch.isfinite(out[3]).all()
    assert torch.allclose(out[3:], no_context, atol=1e-5)


def test_attention_layer_mask_and_gradients():
    torch.manual_seed(0)
    attn = Attention(8, 2, context_dim=5)
    x = torch.randn(4, 3, 8)
    ctx = torch.randn(4, 6, 5, requires_grad=True)
    out = attn(x, ctx, MASK)
    assert out.shape == (4, 3, 8) and torch.equal(out[3], torch.zeros(3, 8))
    out.sum().backward()
    assert torch.isfinite(ctx.grad).all()
    assert torch.equal(ctx.grad[~MASK], torch.zeros_like(ctx.grad[~MASK]))  # no gradient reaches padding


@pytest.mark.parametrize("bad, match", [
    (MASK.float(), "bool tensor of shape"),
    (MASK[:, :5], r"\(B, L\) = \(4, 6\)"),
    (MASK[:3], r"\(B, L\) = \(4, 6\)"),
])
def test_bad_masks_are_named(net, bad, match):
    x, c, ctx = _inputs()
    with pytest.raises(ValueError, match=match):
        net(x, c, context=ctx, context_mask=bad)


def test_mask_without_context_is_an_error(net):
    x, c, _ = _inputs()
    with pytest.raises(ValueError, match="without a context"):
        net(x, c, context_mask=MASK)
