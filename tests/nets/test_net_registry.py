from __future__ import annotations

import json

import pytest
import torch

from noisecraft.nets import NET_PRESETS, build_net, build_net_from_config
from noisecraft.nets.layers import NoiseEmbedding, class_onehot, num_groups


def test_presets_exist() -> None:
    assert {"unet-tiny", "unet-small", "unet-base", "dit-tiny", "dit-small"} <= set(NET_PRESETS)


@pytest.mark.parametrize("name", ["unet-tiny", "unet-small", "dit-tiny"])
def test_every_preset_round_trips(name: str) -> None:
    net = build_net(name, in_channels=1, resolution=16, num_classes=10)
    twin = build_net_from_config(json.loads(json.dumps(net.config)))
    twin.load_state_dict(net.state_dict(), strict=True)
    assert twin.config == net.config


def test_unknown_names_and_keys() -> None:
    with pytest.raises(ValueError, match="'unet-huge'.*unet-small"):
        build_net("unet-huge", in_channels=1, resolution=16)
    with pytest.raises(ValueError, match="'colour'.*valid keys.*model_channels"):
        build_net("unet-small", in_channels=1, resolution=16, colour=3)
    with pytest.raises(ValueError, match="'vae'.*valid names"):
        build_net_from_config({"name": "vae", "in_channels": 1})
    with pytest.raises(ValueError, match="'name'"):
        build_net_from_config({"in_channels": 1, "resolution": 16})
    config = build_net("unet-tiny", in_channels=1, resolution=16).config
    with pytest.raises(ValueError, match="'extra'.*valid keys"):
        build_net_from_config({**config, "extra": 1})


def test_resolution_error_names_value_and_valid_choice() -> None:
    with pytest.raises(ValueError, match="resolution 20 is not divisible by 8.*multiple of 8"):
        build_net("unet-base", in_channels=3, resolution=20)
    with pytest.raises(ValueError, match="resolution must be an integer >= 1, got 0"):
        build_net("unet-small", in_channels=3, resolution=0)


def test_noise_embedding_separates_values_in_every_range() -> None:
    # Raw features (before the MLP) must move measurably for small steps in each c_noise range.
    emb = NoiseEmbedding(8)
    freqs = emb.freqs
    for a, b in [(-1.5, -1.45), (0.50, 0.505), (500.0, 501.0)]:
        fa = torch.cat([(a * freqs).cos(), (a * freqs).sin()])
        fb = torch.cat([(b * freqs).cos(), (b * freqs).sin()])
        assert (fa - fb).norm() > 0.5, (a, b)
    assert emb(torch.tensor([0.0, 999.0])).shape == (2, 8)
    assert "freqs" not in emb.state_dict()


def test_class_onehot() -> None:
    out = class_onehot(torch.tensor([2, 0]), 3, 2, torch.float32)
    assert out.tolist() == [[0, 0, 1], [1, 0, 0]]
    assert class_onehot(None, 3, 2, torch.float32) is None
    with pytest.raises(ValueError, match="dtype"):
        class_onehot(torch.tensor([True, False]), 3, 2, torch.float32)


def test_num_groups() -> None:
    assert [num_groups(c) for c in (1, 4, 16, 32, 48, 64, 128, 96, 100)] == [1, 1, 4, 8, 12, 16, 32, 24, 25]
