from __future__ import annotations

import json

import pytest
import torch

from noisecraft.nets import UNet, UNetConfig, build_net, build_net_from_config


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "in_ch, res, num_classes, overrides",
    [
        (1, 16, 0, {}),
        (1, 16, 10, {}),
        (3, 32, 10, {}),
        (2, 8, 0, {}),
        (3, 16, 0, {"out_channels": 6, "channel_mult": (1, 2, 2), "num_blocks": 2}),
    ],
)
def test_output_shape(in_ch: int, res: int, num_classes: int, overrides: dict) -> None:
    torch.manual_seed(0)
    net = build_net("unet-tiny", in_channels=in_ch, resolution=res, num_classes=num_classes, **overrides)
    x = torch.randn(3, in_ch, res, res)
    labels = torch.tensor([0, 1, 2]) if num_classes else None
    out = net(x, torch.randn(3), labels)
    out_ch = overrides.get("out_channels", in_ch)
    assert out.shape == (3, out_ch, res, res)
    assert torch.isfinite(out).all()


def test_unet_small_shape_and_other_input_sizes() -> None:
    torch.manual_seed(0)
    net = build_net("unet-small", in_channels=1, resolution=16, num_classes=10)
    assert net(torch.randn(2, 1, 16, 16), torch.rand(2), torch.tensor([3, 9])).shape == (2, 1, 16, 16)
    # Convolutional: any size divisible by 2**(levels-1) = 8 works, square or not.
    assert net(torch.randn(2, 1, 8, 24), torch.rand(2)).shape == (2, 1, 8, 24)


def test_untrained_output_is_zero() -> None:
    # conv_out is zero-initialised, as is the last conv of every block.
    net = build_net("unet-tiny", in_channels=1, resolution=16, num_classes=10)
    assert net(torch.randn(2, 1, 16, 16), torch.randn(2), torch.tensor([1, 2])).abs().max() == 0


def test_class_conditioning_changes_output(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("unet-tiny", in_channels=1, resolution=16, num_classes=10)).eval()
    x, c = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1), torch.full((2,), 0.3)
    out = net(x, c, torch.tensor([0, 1]))
    assert (out[0] - out[1]).abs().max() > 1e-4
    # Index labels and one-hot rows are the same thing.
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 1]), 10).float()
    torch.testing.assert_close(net(x, c, onehot), out)


def test_gradients_reach_class_embedding(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("unet-tiny", in_channels=1, resolution=16, num_classes=10))
    net(torch.randn(4, 1, 16, 16), torch.randn(4), torch.tensor([0, 3, 3, 7])).square().mean().backward()
    grad = net.class_emb.weight.grad  # (E, num_classes)
    used = grad.abs().sum(0) > 0
    assert used.tolist() == [i in (0, 3, 7) for i in range(10)]


def test_zero_label_row_equals_no_label(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("unet-tiny", in_channels=1, resolution=16, num_classes=10)).eval()
    x, c = torch.randn(3, 1, 16, 16), torch.randn(3)
    torch.testing.assert_close(net(x, c, torch.zeros(3, 10)), net(x, c, None), rtol=0, atol=0)


def test_noise_level_changes_output_in_every_range(nudge) -> None:
    # c_noise may be ¼ ln σ, t in [0, 1] or a DDPM step: nearby values must give different outputs.
    torch.manual_seed(0)
    net = nudge(build_net("unet-tiny", in_channels=1, resolution=16)).eval()
    x = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1)
    for a, b in [(-1.5, -1.4), (0.50, 0.51), (500.0, 501.0)]:
        out = net(x, torch.tensor([a, b]))
        assert (out[0] - out[1]).abs().max() > 1e-5, (a, b)


def test_config_round_trip(nudge) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("unet-tiny", in_channels=3, resolution=32, num_classes=5, dropout=0.1, context_dim=8)).eval()
    config = json.loads(json.dumps(net.config))
    assert config["name"] == "unet"
    twin = build_net_from_config(config).eval()
    assert isinstance(twin, UNet) and twin.cfg == net.cfg and twin.config == net.config
    assert [(k, v.shape) for k, v in twin.state_dict().items()] == [(k, v.shape) for k, v in net.state_dict().items()]
    twin.load_state_dict(net.state_dict(), strict=True)
    x, c, y, ctx = torch.randn(2, 3, 32, 32), torch.randn(2), torch.tensor([1, 4]), torch.randn(2, 3, 8)
    torch.testing.assert_close(twin(x, c, y, ctx), net(x, c, y, ctx), rtol=0, atol=0)


@pytest.mark.parametrize("patch_size", [1, 2])
def test_circular_padding_makes_the_net_equivariant_to_circular_shifts(nudge, patch_size) -> None:
    """Shifts by multiples of patch_size * 2**(levels-1) commute with a circular-padded net (it sees no
    edges), not with the default zero-padded one; the mode survives the config round trip."""
    kw = dict(in_channels=1, resolution=32, patch_size=patch_size, channel_mult=(1, 2, 2))
    x, c = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([0.3, 2.0])
    shift = (patch_size * 4, -2 * patch_size * 4)
    gaps = {}
    for mode in ("zeros", "circular"):
        torch.manual_seed(0)
        net = nudge(build_net("unet-small", padding_mode=mode, **kw)).eval()
        with torch.no_grad():
            a, b = net(torch.roll(x, shift, (-2, -1)), c), torch.roll(net(x, c), shift, (-2, -1))
        gaps[mode] = float((a - b).abs().max() / b.abs().max())
        twin = build_net_from_config(json.loads(json.dumps(net.config)))
        assert twin.cfg.padding_mode == mode
    assert gaps["circular"] < 1e-5 and gaps["zeros"] > 1e-2


def test_cross_attention_context(nudge) -> None:
    torch.manual_seed(0)
    plain = build_net("unet-tiny", in_channels=1, resolution=16)
    net = nudge(build_net("unet-tiny", in_channels=1, resolution=16, context_dim=8))
    assert not any("cross" in k for k in plain.state_dict())  # context_dim=0: no cross-attention at all
    assert any("cross_attn" in k for k in net.state_dict())
    x, c = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1), torch.zeros(2)
    ctx = torch.randn(2, 5, 8)
    out = net(x, c, context=ctx)
    assert out.shape == x.shape
    assert (out[0] - out[1]).abs().max() > 1e-5  # different contexts, different outputs
    out.square().mean().backward()
    kv = [p.grad for n, p in net.named_parameters() if "cross_attn.attn.kv" in n]
    assert kv and all(g is not None and g.abs().sum() > 0 for g in kv)
    assert net(x, c).shape == x.shape  # context=None skips cross-attention


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=0, resolution=16), "in_channels.*0"),
        (dict(in_channels=1, resolution=17), "resolution 17 .*multiple of 2"),
        (dict(in_channels=1, resolution=16, num_classes=-1), "num_classes.*-1"),
        (dict(in_channels=1, resolution=16, model_channels=0), "model_channels.*0"),
        (dict(in_channels=1, resolution=16, dropout=1.5), "dropout.*1.5"),
        (dict(in_channels=1, resolution=16, attn_resolutions=(5,)), r"\[5\].*valid: \[16, 8\]"),
        (dict(in_channels=1, resolution=16, channel_mult=()), "channel_mult"),
        (dict(in_channels=1, resolution=16, widht=3), "widht.*valid keys"),
        (dict(in_channels=1, resolution=16, padding_mode="reflect"), "padding_mode 'reflect' is not valid; valid: zeros, circular"),
    ],
)
def test_bad_config_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_net("unet-tiny", **kwargs)


def test_bad_inputs_raise() -> None:
    cond = build_net("unet-tiny", in_channels=1, resolution=16, num_classes=10)
    uncond = build_net("unet-tiny", in_channels=1, resolution=16)
    x, c = torch.randn(2, 1, 16, 16), torch.randn(2)
    with pytest.raises(ValueError, match="unconditional"):
        uncond(x, c, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class label 10 "):
        cond(x, c, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="class label -1 "):
        cond(x, c, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"\(2, 10\).*\(2, 9\)"):
        cond(x, c, torch.zeros(2, 9))
    with pytest.raises(ValueError, match=r"\(2, 3, 16, 16\)"):
        cond(torch.randn(2, 3, 16, 16), c)
    with pytest.raises(ValueError, match=r"c_noise.*\(3,\)"):
        cond(x, torch.randn(3))
    with pytest.raises(ValueError, match=r"15x16 \(H, W\) is not divisible by 2.*H and W multiples of 2"):
        cond(torch.randn(2, 1, 15, 16), c)
    with pytest.raises(ValueError, match="context_dim=0"):
        cond(x, c, context=torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"\(2, L, 8\).*\(2, 4, 7\)"):
        build_net("unet-tiny", in_channels=1, resolution=16, context_dim=8)(x, c, context=torch.randn(2, 4, 7))


def test_overfits_a_small_batch() -> None:
    # Denoise a fixed batch: the untrained net outputs 0 (loss = mean x0²); 60 Adam steps must cut
    # the loss by more than 20x (typically ~250x), which needs gradients to flow through the net.
    torch.manual_seed(0)
    net = build_net("unet-tiny", in_channels=1, resolution=8)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij")
    freqs = torch.rand(8, 2) * 2 + 1
    x0 = torch.sin(freqs[:, :1, None] * 2 * xx + freqs[:, 1:, None] * 2 * yy)[:, None]  # (8, 1, 8, 8)
    sigma = torch.exp(torch.linspace(-1.5, 0.5, 8))
    x = x0 + sigma[:, None, None, None] * torch.randn_like(x0)
    c_noise = sigma.log() / 4
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = (net(x, c_noise) - x0).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])


@pytest.mark.parametrize(
    "name, in_ch, res, num_classes, lo, hi",
    [
        ("unet-tiny", 1, 16, 10, 0.1e6, 0.3e6),
        ("unet-small", 1, 16, 10, 0.8e6, 1.3e6),
        ("unet-base", 3, 32, 10, 10e6, 30e6),
    ],
)
def test_preset_sizes(name: str, in_ch: int, res: int, num_classes: int, lo: float, hi: float) -> None:
    n = n_params(build_net(name, in_channels=in_ch, resolution=res, num_classes=num_classes))
    print(f"{name} at {in_ch}x{res}x{res}, {num_classes} classes: {n:,} parameters")
    assert lo <= n <= hi, n


def test_direct_construction_matches_preset() -> None:
    cfg = UNetConfig(in_channels=1, resolution=16, model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8])
    assert cfg.channel_mult == (1, 2) and cfg.out_channels == 1 and cfg.emb_channels == 64
    net = UNet(cfg)
    preset = build_net("unet-tiny", in_channels=1, resolution=16)
    assert net.config == preset.config


# --- cross-attention with a position code on the queries ------------------------------------------


def test_grid_position_code_tells_every_place_apart() -> None:
    from noisecraft.nets.unet import _grid_pos_embed

    for side, channels in [(4, 32), (8, 64), (2, 16)]:
        pe = _grid_pos_embed((side, side), channels, torch.device("cpu"), torch.float64)  # (side², C)
        assert pe.shape == (side * side, channels)
        gaps = torch.cdist(pe, pe) + torch.eye(side * side) * 1e9
        assert gaps.min() > 0.1, (side, channels)  # no two places share a code, left and right mirror images included
    one_d = _grid_pos_embed((8,), 8, torch.device("cpu"), torch.float64)
    assert one_d.shape == (8, 8) and torch.cdist(one_d, one_d).add(torch.eye(8) * 1e9).min() > 0.1


def _left_right_fit(positions: bool, steps: int = 150) -> float:
    """Train one cross-attention layer to paint the word's half of a featureless input: 1 on the left
    half for "left", on the right half for "right", 0 elsewhere (context: the word and a filler token).
    Without a position code the layer's output is the same at every place, so the best it can do is
    0.5 everywhere (loss 0.25); return the final loss."""
    from noisecraft.nets.unet import AttentionLayer

    torch.manual_seed(0)
    layer = AttentionLayer(16, 2, context_dim=8, positions=positions)
    tokens = torch.randn(3, 8)  # "left", "right", a filler word
    context = torch.stack([tokens[[0, 2]], tokens[[1, 2]]])  # (2, 2, 8)
    x = torch.randn(1, 16, 1, 1).expand(2, 16, 8, 8).contiguous()  # the same feature vector everywhere
    left = torch.zeros(8, 8)
    left[:, :4] = 1
    target = torch.stack([left, 1 - left])  # (2, 8, 8)
    opt = torch.optim.Adam(layer.parameters(), lr=3e-2)
    for _ in range(steps):
        loss = (layer(x, context)[:, 0] - x[:, 0] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_position_code_lets_cross_attention_place_words() -> None:
    assert _left_right_fit(positions=False) > 0.249  # constant over space: 0.5 everywhere at best
    assert _left_right_fit(positions=True) < 0.02


def test_cross_attention_positions_config(nudge) -> None:
    torch.manual_seed(0)
    kw = dict(in_channels=1, resolution=16, context_dim=8)
    plain = nudge(build_net("unet-tiny", **kw))
    placed = build_net("unet-tiny", cross_attention_positions=True, **kw)
    assert plain.config["cross_attention_positions"] is False  # the default: nets saved before it are unchanged
    assert placed.state_dict().keys() == plain.state_dict().keys()  # a fixed code: no new weights
    placed.load_state_dict(plain.state_dict())
    twin = build_net_from_config(json.loads(json.dumps(placed.config)))
    assert twin.cfg.cross_attention_positions is True
    twin.load_state_dict(placed.state_dict())
    x, c, ctx = torch.randn(2, 1, 16, 16), torch.randn(2), torch.randn(2, 3, 8)
    torch.testing.assert_close(twin(x, c, context=ctx), placed(x, c, context=ctx), rtol=0, atol=0)
    assert (placed(x, c, context=ctx) - plain(x, c, context=ctx)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cross_attention_positions must be true or false, got 'yes'"):
        build_net("unet-tiny", cross_attention_positions="yes", **kw)
    with pytest.raises(ValueError, match="cross_attention_positions is for 1-D and 2-D nets"):
        build_net("unet-tiny", in_channels=1, resolution=16, context_dim=8, dims=3, cross_attention_positions=True)
