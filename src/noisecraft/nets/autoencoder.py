"""A small KL autoencoder for latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis
with Latent Diffusion Models", Sec. 3.1 and App. G): a convolutional encoder maps x (C, H, W) to the
mean and log-variance of a diagonal Gaussian q(z | x) on a (c, H/f, W/f) grid, f = downsample (4 or
8); the decoder maps z back to x. Trained with L1 reconstruction plus a small KL(q(z|x) || N(0, I))
weight (`noisecraft.train.autoencoder`), which keeps the latent space smooth without forcing unit
variance; the diffusion model then sees latents rescaled to unit variance (`latent.Autoencoder`).

    net = KLAutoencoder(AutoencoderConfig(in_channels=3, latent_channels=4, downsample=4))
    mean, logvar = net.encode(x)        # x (B, 3, 32, 32) -> each (B, 4, 8, 8)
    x_hat = net.decode(mean)            # (B, 3, 32, 32)

Layout per level (encoder): residual block, then a stride-2 3x3 conv; the decoder mirrors it with
nearest-neighbour x2 upsampling + 3x3 conv. GroupNorm + SiLU everywhere, no attention (the images
this is meant for are small; LDM's f=4 models have none at the low levels either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .layers import ArchConfig

__all__ = ["AutoencoderConfig", "KLAutoencoder", "DOWNSAMPLE_FACTORS"]

DOWNSAMPLE_FACTORS = (2, 4, 8)


@dataclass(frozen=True)
class AutoencoderConfig(ArchConfig):
    """The autoencoder's architecture, saved next to its weights as JSON (`to_dict` / `from_dict` of ArchConfig)."""

    name: ClassVar[str] = "kl-autoencoder"
    in_channels: int = 3
    latent_channels: int = 4
    downsample: int = 4  # f: the latent grid is (H/f, W/f)
    channels: int = 32  # width at full resolution; level i has channels * channel_mult[i]
    channel_mult: tuple[int, ...] = ()  # () = (1, 2, 2, ...) with log2(downsample) + 1 entries
    num_blocks: int = 1  # residual blocks per level

    def __post_init__(self) -> None:
        for key in ("in_channels", "latent_channels", "channels", "num_blocks"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1024:
                raise ValueError(f"autoencoder {key} must be an integer in 1..1024, got {v!r}")
        if self.downsample not in DOWNSAMPLE_FACTORS:
            raise ValueError(f"autoencoder downsample must be one of {DOWNSAMPLE_FACTORS}, got {self.downsample!r}")
        mult = tuple(int(m) for m in self.channel_mult) or self.default_mult(self.downsample)
        if len(mult) != self.levels + 1 or min(mult) < 1:
            raise ValueError(f"autoencoder channel_mult must hold {self.levels + 1} positive integers for downsample "
                             f"{self.downsample}, got {list(self.channel_mult)}")
        object.__setattr__(self, "channel_mult", mult)

    @staticmethod
    def default_mult(downsample: int) -> tuple[int, ...]:
        return (1,) + (2,) * int(math.log2(downsample))

    @property
    def levels(self) -> int:
        return int(math.log2(self.downsample))


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch) if ch % min(8, ch) == 0 else 1, ch)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


class KLAutoencoder(nn.Module):
    """Encoder -> (mean, logvar) of q(z | x); decoder z -> x. Image side must be a multiple of `downsample`."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = config
        widths = [config.channels * m for m in config.channel_mult]  # one per level, full resolution first
        enc: list[nn.Module] = [nn.Conv2d(config.in_channels, widths[0], 3, padding=1)]
        for i in range(config.levels):
            enc += [_ResBlock(widths[i], widths[i]) for _ in range(config.num_blocks)]
            enc.append(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1))  # H -> H/2
        enc += [_ResBlock(widths[-1], widths[-1]) for _ in range(config.num_blocks)]
        enc += [_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], 2 * config.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1)]
        dec += [_ResBlock(widths[-1], widths[-1]) for _ in range(config.num_blocks)]
        for i in reversed(range(config.levels)):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[i + 1], widths[i], 3, padding=1)]
            dec += [_ResBlock(widths[i], widths[i]) for _ in range(config.num_blocks)]
        dec += [_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], config.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, C, H, W) -> mean, logvar (B, c, H/f, W/f); logvar clamped to [-30, 20] as in LDM."""
        h = self.encoder(x)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """z (B, c, h, w) -> x (B, C, h*f, w*f)."""
        return self.decoder(z)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction through a reparameterised sample z = mean + exp(logvar/2)·ε, and (mean, logvar)."""
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar
