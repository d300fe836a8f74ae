"""Dimension-generic nets: the U-Net and the DiT on audio (B, C, L), images (B, C, H, W) and
video (B, C, T, H, W), the factorized space-time attention of the video U-Net, and the errors."""

from __future__ import annotations

import json

import pytest
import torch

from noisecraft.nets import DiT, UNet, build_net, build_net_from_config
from noisecraft.nets.dit import sincos_pos_embed
from noisecraft.nets.layers import ConditionedNet
from noisecraft.nets.unet import AttentionLayer

PRESETS = ["unet-tiny", "dit-tiny"]
RES = 8


def spatial(dims: int, res: int = RES, frames: int = 3) -> tuple[int, ...]:
    return {1: (res,), 2: (res, res), 3: (frames, res, res)}[dims]


def make(name: str, dims: int, nudge=None, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_net(name, in_channels=2, resolution=RES, dims=dims, **overrides)
    return (nudge(net) if nudge else net).eval()


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_shapes_with_every_condition(name: str, dims: int, nudge) -> None:
    net = make(name, dims, nudge, num_classes=3, context_dim=4, pooled_context=True, cond_channels=1, out_channels=3)
    assert net.cfg.dims == dims
    x = torch.randn(2, 2, *spatial(dims))
    out = net(x, torch.randn(2), torch.tensor([0, 2]), torch.randn(2, 5, 4),
              context_mask=torch.tensor([[True] * 5, [True, False, False, False, False]]),
              image_cond=torch.randn(2, 1, *spatial(dims)))
    assert out.shape == (2, 3, *spatial(dims)) and torch.isfinite(out).all()
    # Changing any condition of sample 0 changes sample 0's output and leaves sample 1's alone.
    cond = dict(class_labels=torch.tensor([0, 2]), context=torch.randn(2, 5, 4),
                image_cond=torch.randn(2, 1, *spatial(dims)))
    base = net(x, torch.zeros(2), **cond)
    for key in cond:
        other = {k: v.clone() for k, v in cond.items()}
        other[key][0] = 1 if key == "class_labels" else other[key][0] + 1
        out = net(x, torch.zeros(2), **other)
        assert (out[0] - base[0]).abs().max() > 1e-6, key
        assert torch.equal(out[1], base[1]), key


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_untrained_output_is_exactly_zero(name: str, dims: int) -> None:
    net = make(name, dims, num_classes=3, context_dim=4)
    out = net(torch.randn(2, 2, *spatial(dims)), torch.randn(2), torch.tensor([0, 1]), torch.randn(2, 3, 4))
    assert out.shape == (2, 2, *spatial(dims)) and out.abs().max() == 0


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_gradients_reach_every_parameter(name: str, dims: int, nudge) -> None:
    net = make(name, dims, nudge, num_classes=3, context_dim=4, pooled_context=True, cond_channels=1).train()
    x = torch.randn(2, 2, *spatial(dims))
    out = net(x, torch.randn(2), torch.tensor([0, 2]), torch.randn(2, 3, 4), image_cond=torch.randn(2, 1, *spatial(dims)))
    out.square().mean().backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert dead == [], dead


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", PRESETS)
def test_config_round_trip(name: str, dims: int, nudge) -> None:
    net = make(name, dims, nudge, num_classes=2, context_dim=4, cond_channels=1)
    config = json.loads(json.dumps(net.config))
    assert config["dims"] == dims
    twin = build_net_from_config(config).eval()
    assert twin.cfg == net.cfg and twin.config == net.config
    twin.load_state_dict(net.state_dict(), strict=True)
    x, c, ic = torch.randn(2, 2, *spatial(dims)), torch.randn(2), torch.randn(2, 1, *spatial(dims))
    assert torch.equal(twin(x, c, torch.tensor([1, 0]), image_cond=ic), net(x, c, torch.tensor([1, 0]), image_cond=ic))


@pytest.mark.parametrize("name", PRESETS)
def test_video_net_takes_one_frame_and_any_number_of_frames(name: str, nudge) -> None:
    # Joint image/video training feeds images as one-frame videos: the number of frames is free
    # (U-Net) or a multiple of temporal_patch (DiT), one frame included, and a one-frame batch trains.
    net = make(name, 3, nudge)
    for frames in (1, 2, 5):
        x = torch.randn(2, 2, frames, RES, RES)
        assert net(x, torch.zeros(2)).shape == x.shape
    net(torch.randn(2, 2, 1, RES, RES), torch.zeros(2)).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_factorized_attention_mixes_frames_only_in_time() -> None:
    """Spatial attention (Ho et al. 2022) keeps frames apart; temporal attention mixes them, and only
    along each pixel's own time line."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 3, 3)  # (B, C, T, H, W)
    bumped = x.clone()
    bumped[:, :, 0, 1, 1] += 1.0  # one pixel of frame 0
    space, time = AttentionLayer(8, 2, axes="space"), AttentionLayer(8, 2, axes="time")
    for layer in (space, time):
        torch.nn.init.normal_(layer.attn.out.weight)  # zero-initialised: give the attention a voice
    d_space = (space(bumped) - space(x)).abs().amax(dim=(0, 1))  # (T, H, W)
    d_time = (time(bumped) - time(x)).abs().amax(dim=(0, 1))
    assert d_space[0].min() > 0 and d_space[1:].max() == 0  # all of frame 0, nothing else
    assert d_time[:, 1, 1].min() > 0  # every frame at the bumped pixel
    d_time[:, 1, 1] = 0
    assert d_time.max() == 0  # and no other pixel


def test_video_unet_has_temporal_attention_where_it_has_spatial_attention() -> None:
    net = build_net("unet-tiny", in_channels=1, resolution=RES, dims=3, context_dim=4)
    blocks = [m for m in net.modules() if hasattr(m, "temporal_attn")]
    with_space = [b for b in blocks if b.self_attn is not None]
    assert with_space and all(b.temporal_attn is not None and b.temporal_attn.axes == "time" for b in with_space)
    assert all(b.self_attn.axes == "space" and b.cross_attn.axes == "all" for b in with_space)
    flat = build_net("unet-tiny", in_channels=1, resolution=RES, dims=2)
    assert not any("temporal" in k for k in flat.state_dict())


def test_temporal_attention_sees_frame_order() -> None:
    # Sin-cos frame positions: reversing the frames is not just reversing the output.
    torch.manual_seed(0)
    layer = AttentionLayer(8, 2, axes="time")
    torch.nn.init.normal_(layer.attn.out.weight)
    x = torch.randn(1, 8, 4, 2, 2)
    assert not torch.allclose(layer(x.flip(2)), layer(x).flip(2), atol=1e-5)


def test_joint_attention_mixes_every_frame_and_place_and_keeps_space_equivariance() -> None:
    """video_attention="joint": one layer carries a bump at one pixel of frame 0 to every pixel of
    every frame (neither factorized layer alone does); it is equivariant to one permutation of the
    pixels applied to all frames, and it sees frame order."""
    torch.manual_seed(0)
    layer = AttentionLayer(8, 2, axes="spacetime")
    torch.nn.init.normal_(layer.attn.out.weight)
    x = torch.randn(2, 8, 4, 3, 3)
    bumped = x.clone()
    bumped[:, :, 0, 1, 1] += 1.0
    assert (layer(bumped) - layer(x)).abs().amax(dim=(0, 1)).min() > 0  # all (T, H, W)
    perm = torch.randperm(9)
    shuffle = lambda v: v.flatten(3)[..., perm].reshape(v.shape)  # noqa: E731 - same pixel permutation per frame
    torch.testing.assert_close(layer(shuffle(x)), shuffle(layer(x)), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(layer(x.flip(2)), layer(x).flip(2), atol=1e-5)


def test_joint_video_unet_has_one_spacetime_attention_per_attention_block() -> None:
    net = build_net("unet-tiny", in_channels=1, resolution=RES, dims=3, video_attention="joint")
    blocks = [b for b in net.modules() if hasattr(b, "temporal_attn") and b.self_attn is not None]
    assert blocks and all(b.self_attn.axes == "spacetime" and b.temporal_attn is None for b in blocks)
    twin = build_net_from_config(json.loads(json.dumps(net.config)))
    assert twin.config["video_attention"] == "joint"
    assert set(twin.state_dict()) == set(net.state_dict())
    x = torch.randn(2, 1, 1, RES, RES)  # one-frame videos still work (joint image/video training)
    assert net(x, torch.zeros(2)).shape == x.shape
    with pytest.raises(ValueError, match=r"video_attention 'full' is not valid; valid: factorized, joint"):
        build_net("unet-tiny", in_channels=1, resolution=RES, dims=3, video_attention="full")
    with pytest.raises(ValueError, match=r"video_attention applies to video \(dims=3\) only.*dims=2"):
        build_net("unet-tiny", in_channels=1, resolution=RES, dims=2, video_attention="joint")


def test_both_nets_share_one_condition_embedding() -> None:
    for name in PRESETS:
        net = build_net(name, in_channels=1, resolution=RES, num_classes=3, context_dim=4, pooled_context=True)
        assert isinstance(net, ConditionedNet) and isinstance(net, (UNet, DiT))
        emb = net.embed_condition(torch.zeros(2), torch.tensor([0, 1]), torch.randn(2, 3, 4), None, torch.float32)
        assert emb.shape == (2, net.noise_emb.mlp[2].out_features)
        assert {"noise_emb.mlp.0.weight", "class_emb.weight", "context_emb.weight"} <= set(net.state_dict())


def test_preset_placement_and_sizes_for_every_rank() -> None:
    audio = build_net("unet-tiny", in_channels=1, resolution=32, dims=1)
    assert audio.cfg.attn_resolutions == (16,)  # the lower of two levels, as for images
    assert audio(torch.randn(1, 1, 32), torch.zeros(1)).shape == (1, 1, 32)
    video = build_net("unet-small", in_channels=3, resolution=16, dims=3)
    assert video.cfg.attn_resolutions == (4, 2)
    counts = {d: sum(p.numel() for p in build_net("unet-tiny", in_channels=1, resolution=16, dims=d).parameters())
              for d in (1, 2, 3)}
    assert counts[1] < counts[2] < counts[3]  # same widths, kernels of 3, 3x3, 3x3x3


def test_dit_patches_and_positions_in_nd() -> None:
    net = build_net("dit-tiny", in_channels=2, resolution=4, dims=3, patch_size=2, temporal_patch=2)
    assert tuple(net.patch_embed.weight.shape) == (64, 2, 2, 2, 2)
    x = torch.randn(1, 2, 6, 4, 4)
    # Token layout of unpatchify: grid (T/2, H/2, W/2), each token (2, 2, 2, C).
    tokens = x.reshape(1, 2, 3, 2, 2, 2, 2, 2).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(1, 12, 16)
    assert torch.equal(net.unpatchify(tokens, (3, 2, 2)), x)
    for grid in [(7,), (3, 4), (2, 3, 4)]:
        pe = sincos_pos_embed(64, grid)
        assert pe.shape == (torch.tensor(grid).prod(), 64)
        dists = torch.cdist(pe, pe) + torch.eye(pe.shape[0]) * 1e3
        assert dists.min() > 0.1  # every token has its own position


@pytest.mark.parametrize("dims, shape", [(1, (8, 1, 16)), (3, (8, 1, 2, 8, 8))])
def test_training_steps_reduce_the_loss(dims: int, shape: tuple[int, ...]) -> None:
    # Denoise a fixed toy batch of smooth signals: 40 Adam steps must cut the loss by more than 20x.
    torch.manual_seed(0)
    net = build_net("unet-tiny", in_channels=1, resolution=shape[-1], dims=dims)
    t = torch.linspace(-1, 1, shape[-1])
    freqs = torch.rand(shape[0], 1) * 2 + 1
    wave = torch.sin(freqs * 3 * t)  # (B, L)
    x0 = wave.reshape(shape[0], 1, *([1] * (dims - 1)), shape[-1]).expand(shape).contiguous()
    if dims == 3:
        x0 = x0 * torch.linspace(0.5, 1, shape[2])[:, None, None]  # frames differ in brightness
    sigma = torch.exp(torch.linspace(-1.5, 0.5, shape[0]))
    x = x0 + sigma.reshape(-1, *[1] * (len(shape) - 1)) * torch.randn(shape)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = (net(x, sigma.log() / 4) - x0).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])  # typically 50-100x


def test_errors_name_the_expected_shape() -> None:
    audio = build_net("unet-tiny", in_channels=1, resolution=8, dims=1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, L\) for a 1-D net, got \(2, 1, 8, 8\)"):
        audio(torch.randn(2, 1, 8, 8), torch.zeros(2))
    video = build_net("unet-tiny", in_channels=1, resolution=8, dims=3)
    with pytest.raises(ValueError, match=r"\(B, 1, T, H, W\) for a 3-D net, got \(2, 1, 8, 8\)"):
        video(torch.randn(2, 1, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match=r"input size 9 \(L\) is not divisible by 2.*L a multiple of 2"):
        audio(torch.randn(2, 1, 9), torch.zeros(2))
    with pytest.raises(ValueError, match=r"3x8x7 \(T, H, W\).*H and W multiples of 2 \(T free\)"):
        video(torch.randn(2, 1, 3, 8, 7), torch.zeros(2))
    with pytest.raises(ValueError, match=r"image_cond of shape \(B, cond_channels, L\) = \(2, 1, 8\), got \(2, 1, 4\)"):
        build_net("unet-tiny", in_channels=1, resolution=8, dims=1, cond_channels=1)(
            torch.randn(2, 1, 8), torch.zeros(2), image_cond=torch.randn(2, 1, 4))
    dit = build_net("dit-tiny", in_channels=1, resolution=8, dims=3, temporal_patch=4)
    with pytest.raises(ValueError, match=r"3x8x8 \(T, H, W\) is not divisible by the patch 4x2x2.*T a multiple of 4; "
                                         r"H and W multiples of 2"):
        dit(torch.randn(1, 1, 3, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match=r"frame size 4x4 \(H, W\) does not match this DiT's resolution 8x8"):
        dit(torch.randn(1, 1, 4, 4, 4), torch.zeros(1))
    with pytest.raises(ValueError, match=r"length 16 \(L\) does not match this DiT's resolution 8"):
        build_net("dit-tiny", in_channels=1, resolution=8, dims=1)(torch.randn(1, 1, 16), torch.zeros(1))
    for name in PRESETS:
        with pytest.raises(ValueError, match=r"dims must be 1 .* got 4"):
            build_net(name, in_channels=1, resolution=8, dims=4)
    with pytest.raises(ValueError, match="temporal_patch applies to video"):
        build_net("dit-tiny", in_channels=1, resolution=8, temporal_patch=2)
