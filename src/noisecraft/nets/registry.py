"""Size presets for the networks, and rebuilding a network from its saved config.

    net = build_net("unet-small", in_channels=1, resolution=16, num_classes=10, dropout=0.1)
    audio = build_net("unet-tiny", in_channels=1, resolution=256, dims=1)    # x (B, 1, L)
    video = build_net("unet-tiny", in_channels=3, resolution=32, dims=3)     # x (B, 3, T, 32, 32)
    json.dump(net.config, f)                      # saved next to the weights
    twin = build_net_from_config(json.load(f))    # same architecture, same parameter names

A preset is a plain factory `(*, in_channels, resolution, num_classes=0, **overrides) -> nn.Module`
in `NET_PRESETS`; overrides are fields of the architecture's config dataclass, `dims` (1, 2 or 3
spatial axes; default 2) among them. `resolution` is the spatial side: the length L of audio, the
side of square images, the frame side H = W of video (whose number of frames is free). Presets have
the same widths and depths for every rank. Architectures are looked up in one fixed table keyed by
the config's "name" - never by class-name strings; configs saved before `dims` existed are 2-D.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from torch import nn

from .dit import DiT, DiTConfig
from .unet import UNet, UNetConfig

__all__ = ["ARCHITECTURES", "NET_PRESETS", "build_net", "build_net_from_config"]

# config "name" -> (config dataclass, network class)
ARCHITECTURES: dict[str, tuple[type, type[nn.Module]]] = {
    "unet": (UNetConfig, UNet),
    "dit": (DiTConfig, DiT),
}

_EXPLICIT = ("in_channels", "resolution", "num_classes")


def _make(
    preset: str,
    arch: str,
    defaults: Mapping[str, Any],
    in_channels: int,
    resolution: int,
    num_classes: int,
    overrides: Mapping[str, Any],
) -> nn.Module:
    config_cls, net_cls = ARCHITECTURES[arch]
    valid = [f.name for f in dataclasses.fields(config_cls) if f.name not in _EXPLICIT]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown} for preset {preset!r}; valid keys: {valid}")
    kwargs = {**defaults, **overrides}
    config = config_cls(in_channels=in_channels, resolution=resolution, num_classes=num_classes, **kwargs)
    return net_cls(config)


def _lowest_resolutions(resolution: int, levels: int, count: int) -> tuple[int, ...]:
    """The `count` lowest resolutions of a U-Net with `levels` levels (where attention is cheap)."""
    return tuple(resolution // 2**level for level in range(max(0, levels - count), levels))


def _unet_preset(preset: str, attn_levels: int, **defaults: Any) -> Callable[..., nn.Module]:
    """A U-Net factory; by default self-attention sits at the `attn_levels` lowest resolutions."""

    def factory(*, in_channels: int, resolution: int, num_classes: int = 0, **overrides: Any) -> nn.Module:
        if "attn_resolutions" not in overrides:
            levels = len(overrides.get("channel_mult", defaults["channel_mult"]))
            patch = overrides.get("patch_size", defaults.get("patch_size", 1))
            patch = patch if isinstance(patch, int) and patch >= 1 else 1  # a bad value: the config says why
            if isinstance(resolution, int) and resolution % (patch * 2 ** max(levels - 1, 0)) == 0:
                side = resolution // patch  # level 0 works on patches
                overrides = {**overrides, "attn_resolutions": _lowest_resolutions(side, levels, attn_levels)}
        return _make(preset, "unet", defaults, in_channels, resolution, num_classes, overrides)

    factory.__name__ = factory.__qualname__ = preset.replace("-", "_")
    factory.__doc__ = f"U-Net preset {preset!r}: {defaults}, self-attention at the {attn_levels} lowest resolution(s)."
    return factory


def _dit_preset(preset: str, **defaults: Any) -> Callable[..., nn.Module]:
    def factory(*, in_channels: int, resolution: int, num_classes: int = 0, **overrides: Any) -> nn.Module:
        return _make(preset, "dit", defaults, in_channels, resolution, num_classes, overrides)

    factory.__name__ = factory.__qualname__ = preset.replace("-", "_")
    factory.__doc__ = f"DiT preset {preset!r}: {defaults}."
    return factory


# Parameter counts are for 1 input channel at 16x16 with 10 classes unless noted.
NET_PRESETS: dict[str, Callable[..., nn.Module]] = {
    # ~0.2M: for tests. Two levels, one block each, attention at the lower level.
    "unet-tiny": _unet_preset("unet-tiny", 1, model_channels=16, channel_mult=(1, 2), num_blocks=1),
    # ~1M: the digits demo, sized for CPU training. A conv weight costs 4x more compute per level
    # up, so the net is narrow at full resolution and puts its parameters at the low levels:
    # 16/32/32/64 channels at 16/8/4/2 px for 16x16 input (resolution must be a multiple of 8),
    # one block per level, self-attention only at the two lowest levels (4x4 and 2x2) and the middle.
    "unet-small": _unet_preset(
        "unet-small", 2, model_channels=16, channel_mult=(1, 2, 2, 4), num_blocks=1, emb_channels=128
    ),
    # ~20M at 32x32x3: DDPM's CIFAR-10 layout at 96 channels; attention at the 3 lowest levels.
    "unet-base": _unet_preset("unet-base", 3, model_channels=96, channel_mult=(1, 2, 2, 2), num_blocks=2, dropout=0.1),
    # ~0.2M: for tests.
    "dit-tiny": _dit_preset("dit-tiny", patch_size=2, hidden_size=64, depth=2, num_heads=2),
    # DiT-S (Peebles & Xie 2023, Table 1): ~33M.
    "dit-small": _dit_preset("dit-small", patch_size=2, hidden_size=384, depth=12, num_heads=6),
}


def build_net(name: str, *, in_channels: int, resolution: int, num_classes: int = 0, **overrides: Any) -> nn.Module:
    """Build the preset `name` for samples of `in_channels` channels and spatial side `resolution`:
    (C, L) with `dims=1`, (C, H, W) with the default `dims=2`, (C, T, H, W) with `dims=3`.

    `overrides` replace fields of the architecture's config (`UNetConfig` / `DiTConfig`), e.g.
    `dims=1`, `dropout=0.1`, `out_channels=2`, `context_dim=256`, `cond_channels=2` (a signal
    concatenated at the input, `net(x, c, image_cond=...)`), `temporal_patch=2` (video DiT).
    Every net has `net.config`.
    """
    if name not in NET_PRESETS:
        raise ValueError(f"unknown network preset {name!r}; valid names: {sorted(NET_PRESETS)}")
    return NET_PRESETS[name](in_channels=in_channels, resolution=resolution, num_classes=num_classes, **overrides)


def build_net_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a network from `net.config` (e.g. read back from JSON): same architecture,
    same parameter names and shapes; load the weights with `load_state_dict(strict=True)`."""
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(f"a net config must be a mapping with a 'name' in {sorted(ARCHITECTURES)}, got {config!r}")
    arch = config["name"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} in net config; valid names: {sorted(ARCHITECTURES)}")
    config_cls, net_cls = ARCHITECTURES[arch]
    return net_cls(config_cls.from_dict(config))
