from __future__ import annotations

import json

import pytest
import torch

from noisecraft.nets import DiT, DiTConfig, build_net, build_net_from_config
from noisecraft.nets.dit import sincos_pos_embed_2d


@pytest.mark.parametrize(
    "in_ch, res, num_classes, overrides",
    [
        (1, 16, 0, {}),
        (1, 16, 10, {}),
        (3, 32, 10, {}),
        (3, 12, 0, {"patch_size": 4, "out_channels": 6}),
        (2, 8, 0, {"patch_size": 1}),
    ],
)
def test_output_shape(in_ch: int, res: int, num_classes: int, overrides: dict) -> None:
    torch.manual_seed(0)
    net = build_net("dit-tiny", in_channels=in_ch, resolution=res, num_classes=num_classes, **overrides)
    x = torch.randn(3, in_ch, res, res)
    labels = torch.tensor([0, 1, 2]) if num_classes else None
    out = net(x, torch.randn(3), labels)
    assert out.shape == (3, overrides.get("out_channels", in_ch), res, res)
    assert torch.isfinite(out).all()


def test_untrained_output_is_zero() -> None:
    # adaLN-Zero: the final layer starts at zero.
    net = build_net("dit-tiny", in_channels=1, resolution=16, num_classes=10)
    assert net(torch.randn(2, 1, 16, 16), torch.randn(2), torch.tensor([1, 2])).abs().max() == 0


def test_patchify_round_trip() -> None:
    # The final linear maps token i to the pixels of patch i: with an identity-like final layer,
    # unpatchify must put every token's values back where patch_embed read them.
    net = build_net("dit-tiny", in_channels=3, resolution=8, patch_size=2)
    x = torch.randn(2, 3, 8, 8)
    tokens = x.reshape(2, 3, 4, 2, 4, 2).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 12)  # (B, N, p·p·C)
    torch.testing.assert_close(net.unpatchify(tokens), x, rtol=0, atol=0)


def test_pos_embed_is_distinct_per_token() -> None:
    pe = sincos_pos_embed_2d(64, 4, 4)  # (16, 64)
    assert pe.shape == (16, 64)
    dists = torch.cdist(pe, pe) + torch.eye(16) * 1e3
    assert dists.min() > 0.1


def test_class_conditioning_changes_output_and_gets_gradients(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("dit-tiny", in_channels=1, resolution=16, num_classes=10))
    x, c = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1), torch.full((2,), 0.3)
    out = net(x, c, torch.tensor([0, 1]))
    assert (out[0] - out[1]).abs().max() > 1e-4
    out.square().mean().backward()
    used = net.class_emb.weight.grad.abs().sum(0) > 0  # (num_classes,)
    assert used.tolist() == [i in (0, 1) for i in range(10)]


def test_zero_label_row_equals_no_label(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("dit-tiny", in_channels=1, resolution=16, num_classes=10)).eval()
    x, c = torch.randn(3, 1, 16, 16), torch.randn(3)
    torch.testing.assert_close(net(x, c, torch.zeros(3, 10)), net(x, c, None), rtol=0, atol=0)
    soft = torch.full((3, 10), 0.1)
    assert not torch.equal(net(x, c, soft), net(x, c, None))


def test_config_round_trip(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("dit-tiny", in_channels=3, resolution=8, num_classes=4, context_dim=6)).eval()
    config = json.loads(json.dumps(net.config))
    assert config["name"] == "dit"
    twin = build_net_from_config(config).eval()
    assert isinstance(twin, DiT) and twin.cfg == net.cfg
    assert [(k, v.shape) for k, v in twin.state_dict().items()] == [(k, v.shape) for k, v in net.state_dict().items()]
    twin.load_state_dict(net.state_dict(), strict=True)
    x, c, y, ctx = torch.randn(2, 3, 8, 8), torch.randn(2), torch.tensor([0, 3]), torch.randn(2, 5, 6)
    torch.testing.assert_close(twin(x, c, y, ctx), net(x, c, y, ctx), rtol=0, atol=0)


def test_cross_attention_context(nudge) -> None:
    torch.manual_seed(0)
    assert not any("cross" in k for k in build_net("dit-tiny", in_channels=1, resolution=8).state_dict())
    net = nudge(build_net("dit-tiny", in_channels=1, resolution=8, context_dim=6))
    x, c = torch.randn(1, 1, 8, 8).expand(2, -1, -1, -1), torch.zeros(2)
    out = net(x, c, context=torch.randn(2, 3, 6))
    assert out.shape == x.shape
    assert (out[0] - out[1]).abs().max() > 1e-5
    out.square().mean().backward()
    assert net.blocks[0].cross_attn.kv.weight.grad.abs().sum() > 0
    assert net(x, c).shape == x.shape  # context=None skips cross-attention


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=1, resolution=15), "resolution 15 .*patch_size 2"),
        (dict(in_channels=0, resolution=16), "in_channels.*0"),
        (dict(in_channels=1, resolution=16, hidden_size=65), "hidden_size 65 must be even"),
        (dict(in_channels=1, resolution=16, depth=0), "depth.*0"),
        (dict(in_channels=1, resolution=16, dropout=-0.1), "dropout.*-0.1"),
        (dict(in_channels=1, resolution=16, channel_mult=(1, 2)), "channel_mult.*valid keys"),
    ],
)
def test_bad_config_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_net("dit-tiny", **kwargs)


def test_bad_inputs_raise() -> None:
    net = build_net("dit-tiny", in_channels=1, resolution=16, num_classes=3)
    x, c = torch.randn(2, 1, 16, 16), torch.randn(2)
    with pytest.raises(ValueError, match="class label 3 .*0..2"):
        net(x, c, torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="8x8 .*16x16"):
        net(torch.randn(2, 1, 8, 8), c)
    with pytest.raises(ValueError, match="unconditional"):
        build_net("dit-tiny", in_channels=1, resolution=16)(x, c, torch.tensor([0, 0]))


def test_direct_construction() -> None:
    cfg = DiTConfig(in_channels=2, resolution=8, hidden_size=32, depth=1, num_heads=2)
    assert cfg.out_channels == 2
    assert DiT(cfg)(torch.randn(1, 2, 8, 8), torch.zeros(1)).shape == (1, 2, 8, 8)


@pytest.mark.parametrize("name, lo, hi", [("dit-tiny", 0.1e6, 0.3e6), ("dit-small", 25e6, 40e6)])
def test_preset_sizes(name: str, lo: float, hi: float) -> None:
    n = sum(p.numel() for p in build_net(name, in_channels=3, resolution=32, num_classes=10).parameters())
    print(f"{name} at 3x32x32, 10 classes: {n:,} parameters")
    assert lo <= n <= hi, n
