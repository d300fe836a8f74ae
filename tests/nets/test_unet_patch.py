"""The U-Net's patch stem (`patch_size` > 1): space-to-depth before conv_in, depth-to-space after
conv_out, so level 0 runs at side / p (used by the spoken-digits preset for 8192-sample waveforms)."""

from __future__ import annotations

import pytest
import torch

from noisecraft.nets import build_net, build_net_from_config
from noisecraft.nets.unet import _from_patches, _to_patches


def test_patches_are_contiguous_runs_and_invert() -> None:
    x = torch.arange(2 * 3 * 12, dtype=torch.float32).reshape(2, 3, 12)
    p = _to_patches(x, 4)  # (2, 12, 3): channel c*4 + j at position m is x[c, 4m + j]
    assert p.shape == (2, 12, 3)
    for c in range(3):
        for m in range(3):
            torch.testing.assert_close(p[:, c * 4:(c + 1) * 4, m], x[:, c, 4 * m:4 * m + 4])
    torch.testing.assert_close(_from_patches(p, 4), x)
    img = torch.randn(2, 3, 8, 12)
    assert _to_patches(img, 2).shape == (2, 12, 4, 6)
    torch.testing.assert_close(_from_patches(_to_patches(img, 2), 2), img)
    assert _to_patches(x, 1) is x and _from_patches(x, 1) is x


def test_video_patches_stay_within_their_frame() -> None:
    # (B, C, T, H, W) -> (B, C*p*p, T, H/p, W/p): frame t of the patches is frame t's pixel_unshuffle
    video = torch.randn(2, 3, 5, 8, 12)
    p = _to_patches(video, 2)
    assert p.shape == (2, 12, 5, 4, 6)
    for t in range(5):
        torch.testing.assert_close(p[:, :, t], torch.nn.functional.pixel_unshuffle(video[:, :, t], 2))
    torch.testing.assert_close(_from_patches(p, 2), video)


@pytest.mark.parametrize("dims, shape", [(1, (2, 1, 64)), (2, (2, 2, 16, 24)), (3, (2, 1, 3, 16, 16))])
def test_patched_net_shapes_levels_and_round_trip(nudge, dims: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = nudge(build_net("unet-tiny", in_channels=shape[1], resolution=shape[-1] if dims == 1 else 16,
                          num_classes=10, dims=dims, patch_size=4))
    cfg = net.cfg
    assert cfg.factor == 8 and cfg.level_resolutions[0] == cfg.resolution // 4
    assert cfg.attn_resolutions == (cfg.resolution // 8,)  # the preset's "lowest level" follows the patches
    per_patch = 4 ** min(dims, 2)  # video: 4 x 4 pixels of one frame
    assert net.conv_in.in_channels == shape[1] * per_patch and net.conv_out.out_channels == shape[1] * per_patch
    x = torch.randn(shape)
    out = net(x, torch.rand(2), torch.tensor([1, 2]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    twin = build_net_from_config(net.config)
    twin.load_state_dict(net.state_dict())
    torch.testing.assert_close(twin(x, torch.full((2,), 0.3)), net(x, torch.full((2,), 0.3)))


@pytest.mark.parametrize("dims, resolution", [(1, 16), (2, 16), (3, 16)])
def test_attention_sits_at_the_levels_named_in_patch_units(dims: int, resolution: int) -> None:
    # attn_resolutions counts positions of the patched grid (level_resolutions), for validation and
    # for building alike: with patch 2 at side 16 the levels are 8, 4, 2, and [4] means level 1 only.
    net = build_net("unet-tiny", in_channels=1, resolution=resolution, dims=dims, patch_size=2,
                    channel_mult=(1, 1, 1), attn_resolutions=(4,))
    assert net.cfg.level_resolutions == (resolution // 2, resolution // 4, resolution // 8)
    attending = {name.split("_")[0] for name, block in [*net.enc.items(), *net.dec.items()]
                 if getattr(block, "self_attn", None) is not None}
    assert attending == {"l1"}
    if dims == 3:  # video: the spatial layer is followed by the temporal one at the same places
        assert all((getattr(b, "self_attn", None) is None) == (getattr(b, "temporal_attn", None) is None)
                   for b in [*net.enc.values(), *net.dec.values()])


def test_patch_size_one_is_the_default_net() -> None:
    plain = build_net("unet-small", in_channels=1, resolution=256, dims=1)
    same = build_net("unet-small", in_channels=1, resolution=256, dims=1, patch_size=1)
    assert plain.cfg.patch_size == 1 and plain.config == same.config
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in same.state_dict().items()}


def test_patched_net_learns_per_sample_detail() -> None:
    # conv_out predicts every sample of a patch separately: denoising a fixed batch of signals that
    # change within a patch (period 6 samples, patch 4) must still cut the loss by more than 10x.
    torch.manual_seed(0)
    net = build_net("unet-tiny", in_channels=1, resolution=64, dims=1, patch_size=4)
    t = torch.arange(64, dtype=torch.float32)
    x0 = torch.sin(2 * torch.pi * t / 6 + torch.rand(8, 1, 1) * 6)  # (8, 1, 64)
    sigma = torch.exp(torch.linspace(-1.5, 0.5, 8))
    x = x0 + sigma[:, None, None] * torch.randn_like(x0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = (net(x, sigma.log() / 4) - x0).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(resolution=64, dims=1, patch_size=0), "patch_size must be an integer >= 1, got 0"),
        (dict(resolution=60, dims=1, patch_size=4), "resolution 60 .* 8 = patch_size .*patch_size 4"),
        (dict(resolution=12, dims=3, patch_size=4), "resolution 12 .* 8 = patch_size .*patch_size 4"),
    ],
)
def test_bad_patch_size_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_net("unet-tiny", in_channels=1, **kwargs)
