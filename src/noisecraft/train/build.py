"""What a config builds: the dataset, the network and the loss (public so tests and notebooks can
use them one by one)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..config import Config, ConfigError
from ..core import DenoisingLoss, LogitNormal, LogNormal, LogUniform, UniformTime, get_process
from ..distill.losses import ConsistencyTrainingLoss

__all__ = ["mix_seed", "build_dataset", "build_net", "make_loss"]


def mix_seed(*parts: int) -> int:
    """A 64-bit seed from integer parts (numpy's SeedSequence), so streams of one seed never overlap."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])


def build_dataset(cfg: Config):
    """The training dataset the config names (DataError for a bad source)."""
    from ..data import BUILTIN_DATASETS, load_dataset

    d = cfg.data
    rate = {"sample_rate": d.sample_rate} if d.sample_rate else {}  # audio only (validated by DataConfig)
    if d.options and d.source in BUILTIN_DATASETS:  # extra keywords of a built-in loader (validated by DataConfig)
        return BUILTIN_DATASETS[d.source](resolution=d.resolution or None, split="train", channels=d.channels or None,
                                          labels=d.conditional, hflip=d.hflip, **rate, **d.options)
    video = {"video": dict(d.options)} if d.options else {}  # a folder with options is read as videos
    return load_dataset(d.source, resolution=d.resolution or None, split="train", channels=d.channels or None,
                        labels=d.conditional, hflip=d.hflip, on_error=d.on_error, **rate, **video)


def _check_overrides(cfg: Config, needed: dict[str, Any]) -> dict[str, Any]:
    """net.overrides plus what the conditioners need; a contradicting override is a ConfigError."""
    overrides = dict(cfg.net.overrides)
    for key, value in needed.items():
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"net.overrides.{key} = {overrides[key]!r} contradicts the conditioning, which needs "
                              f"{value!r}; drop the override")
        overrides[key] = value
    return overrides


def build_net(cfg: Config, sample_shape: Sequence[int], conditioners: Sequence[Any] = (), *,
              net_config: dict | None = None) -> nn.Module:
    """The network the config names for samples of `sample_shape` (C, *spatial), with what each
    conditioner needs (classes, cross-attention, condition channels) - or exactly `net_config`, a
    saved `net.config`, when resuming - initialised from a generator seeded by train.seed and
    wrapped by the conditioners (a text encoder rides along)."""
    from ..nets import build_net as _build
    from ..nets import build_net_from_config

    needed: dict[str, Any] = {}
    for c in conditioners:
        needed.update(c.net_overrides())
    overrides = _check_overrides(cfg, needed)
    channels, spatial = int(sample_shape[0]), tuple(int(s) for s in sample_shape[1:])
    if len(spatial) != 2:
        overrides.setdefault("dims", len(spatial))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mix_seed(cfg.train.seed, 0x1417))
        if net_config:
            net = build_net_from_config(net_config)
        else:
            num_classes = overrides.pop("num_classes", 0)
            net = _build(cfg.net.name, in_channels=channels, resolution=spatial[-1], num_classes=num_classes, **overrides)
    for c in conditioners:
        net = c.wrap_net(net)
    return net


def make_loss(cfg: Config) -> Callable[..., Tensor]:
    """The training loss `(denoiser, x0, generator=, **cond) -> loss` of the [loss] and [process] sections."""
    lc, pc = cfg.loss, cfg.process
    if lc.objective == "consistency":  # iCT: ln σ ~ N(p_mean, p_std²) over the curriculum's levels in [σ_min, σ_max]
        return ConsistencyTrainingLoss(cfg.train.steps, s0=lc.ct_s0, s1=lc.ct_s1, sigma_min=lc.sigma_min,
                                       sigma_max=lc.sigma_max, sigma_data=pc.sigma_data, p_mean=lc.p_mean, p_std=lc.p_std)
    if lc.levels == "lognormal":
        levels = LogNormal(lc.p_mean, lc.p_std)
    elif lc.levels == "loguniform":
        levels = LogUniform(lc.sigma_min, lc.sigma_max)
    elif lc.levels == "logitnormal":
        levels = LogitNormal(lc.p_mean, lc.p_std)
    else:
        levels = UniformTime(get_process(pc.name, **pc.options))
    return DenoisingLoss(levels, lc.weighting, pc.sigma_data, lc.gamma)
