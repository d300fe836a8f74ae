"""A U-Net denoiser in the ADM / EDM style (Dhariwal & Nichol 2021; Karras et al. 2022).

    x (B, C_in, H, W) ──conv_in──> encoder ──> middle ──> decoder ──norm, SiLU, conv_out──> (B, C_out, H, W)
                                       └──── skip connections (concatenated) ───┘

* The encoder has one level per entry of `channel_mult`; level l works at resolution H / 2**l
  with `model_channels * channel_mult[l]` channels and holds `num_blocks` residual blocks, then a
  stride-2 convolution down to the next level. The decoder mirrors it with `num_blocks + 1`
  blocks per level, each reading one skip tensor, and nearest-neighbour upsampling + conv.
* Residual blocks condition on the noise level (and class) through adaptive group norm,
  AdaGN(h, e) = (1 + s(e))·GroupNorm(h) + b(e) (ADM Sec. 3, "scale-shift norm").
* Self-attention runs after the blocks of the levels listed in `attn_resolutions` and in the
  middle; with `context_dim > 0` a cross-attention layer follows every self-attention layer.
* With `cond_channels > 0` an `image_cond` (B, cond_channels, H, W) is concatenated to x before
  `conv_in` (SR3, Saharia et al. 2021; Palette, Saharia et al. 2022): the net sees [x, image].
* The last conv of every block, the attention output projections and `conv_out` start at zero,
  so every block starts as the identity and the untrained net outputs exactly zero.

Any input resolution divisible by 2**(levels-1) works; `resolution` in the config decides where
the attention layers sit (and is what a checkpoint was trained at).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (Attention, NetConfig, NoiseEmbedding, check_context, pool_context, check_image_cond, check_inputs, check_positive,
                     class_onehot, group_norm)

__all__ = ["UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig(NetConfig):
    """Everything that decides the U-Net's architecture; saved next to the weights as JSON."""

    in_channels: int
    resolution: int
    out_channels: int | None = None  # None: same as in_channels
    num_classes: int = 0  # 0: unconditional
    model_channels: int = 64  # channels at level 0
    channel_mult: tuple[int, ...] = (1, 2, 2)  # channels per level, as multiples of model_channels
    num_blocks: int = 2  # residual blocks per encoder level (decoder: num_blocks + 1)
    attn_resolutions: tuple[int, ...] = ()  # resolutions (of the config's `resolution`) with self-attention
    mid_attention: bool = True  # self-attention between the two middle blocks
    attn_head_channels: int = 64  # channels per attention head; one head if the level is narrower
    emb_channels: int | None = None  # width of the conditioning embedding; None: 4 * model_channels
    dropout: float = 0.0  # in every residual block, before its last conv
    context_dim: int = 0  # > 0: cross-attention to a (B, L, context_dim) context after each self-attention
    pooled_context: bool = False  # also add Linear(masked mean of the context) to the noise embedding (Imagen)
    cond_channels: int = 0  # > 0: an image_cond (B, cond_channels, H, W) is concatenated to x before conv_in

    name = "unet"

    def __post_init__(self) -> None:
        # Normalise so that a config read back from JSON (lists, missing optionals) compares equal.
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(sorted(set(self.attn_resolutions), reverse=True)))
        if self.out_channels is None:
            object.__setattr__(self, "out_channels", self.in_channels)
        if self.emb_channels is None and isinstance(self.model_channels, int):
            object.__setattr__(self, "emb_channels", 4 * self.model_channels)
        self._validate()

    @property
    def factor(self) -> int:
        """The input resolution must be divisible by this: 2**(levels - 1)."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        return tuple(self.resolution // 2**level for level in range(len(self.channel_mult)))

    def _validate(self) -> None:
        check_positive(
            "UNetConfig",
            in_channels=self.in_channels,
            out_channels=self.out_channels,  # type: ignore[arg-type]
            resolution=self.resolution,
            model_channels=self.model_channels,
            num_blocks=self.num_blocks,
            attn_head_channels=self.attn_head_channels,
            emb_channels=self.emb_channels,  # type: ignore[arg-type]
        )
        for key in ("num_classes", "context_dim", "cond_channels"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"UNetConfig.{key} must be an integer >= 0, got {value!r}")
        if not self.channel_mult or not all(isinstance(m, int) and m >= 1 for m in self.channel_mult):
            raise ValueError(f"UNetConfig.channel_mult must be a non-empty list of integers >= 1, got {self.channel_mult!r}")
        if self.resolution % self.factor != 0:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by {self.factor} = 2**(levels-1) for "
                f"{len(self.channel_mult)} levels; use a multiple of {self.factor} or fewer levels"
            )
        bad = [r for r in self.attn_resolutions if r not in self.level_resolutions]
        if bad:
            raise ValueError(
                f"attn_resolutions {bad} are not resolutions of this U-Net; valid: {list(self.level_resolutions)}"
            )
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout!r}")


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class AttentionLayer(nn.Module):
    """Residual (cross-)attention over the pixels of x (B, C, H, W): x + Attn(GroupNorm(x))."""

    def __init__(self, channels: int, num_heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.attn = Attention(channels, num_heads, context_dim=context_dim)
        _zero(self.attn.out)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        if self.attn.is_cross and context is None:  # "no context": the layer is skipped
            return x
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        h = self.attn(h, context, context_mask)  # (B, HW, C)
        return x + h.transpose(1, 2).reshape(B, C, H, W)


class UNetBlock(nn.Module):
    """Residual block with adaptive group norm, optionally followed by self- and cross-attention.

        h = conv1(SiLU(GroupNorm(x)))
        h = conv2(Dropout(SiLU((1 + scale)·GroupNorm(h) + shift)))      scale, shift = Linear(emb)
        out = skip(x) + h       then   out = out + SelfAttn(out) [+ CrossAttn(out, context)]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float,
        num_heads: int = 0,  # 0: no attention
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_channels, 2 * out_channels)
        self.norm2 = group_norm(out_channels, affine=False)  # the affine part comes from `emb`
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.self_attn = AttentionLayer(out_channels, num_heads) if num_heads else None
        self.cross_attn = AttentionLayer(out_channels, num_heads, context_dim) if num_heads and context_dim else None

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        # x: (B, C_in, H, W), emb: (B, E) already passed through SiLU
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1) each
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1))
        h = self.conv2(self.dropout(h))  # (B, C_out, H, W)
        x = self.skip(x) + h
        if self.self_attn is not None:
            x = self.self_attn(x)
        if self.cross_attn is not None:
            x = self.cross_attn(x, context, context_mask)
        return x


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, C, H/2, W/2) with a stride-2 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C, 2H, 2W): nearest-neighbour, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """ADM/EDM-style U-Net: `net(x, c_noise, class_labels=None, context=None, *, context_mask=None, image_cond=None) -> (B, C_out, H, W)`."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        cfg = self.cfg = config
        E = cfg.emb_channels
        assert E is not None and cfg.out_channels is not None  # resolved by UNetConfig

        def heads(channels: int) -> int:  # about channels / attn_head_channels, and a divisor of channels
            n = max(1, channels // cfg.attn_head_channels)
            while channels % n:
                n -= 1
            return n

        # Conditioning: emb = MLP(Fourier(c_noise)) + W_class·onehot(label)   (B, E)
        self.noise_emb = NoiseEmbedding(E)
        self.class_emb = nn.Linear(cfg.num_classes, E, bias=False) if cfg.num_classes else None
        self.context_emb = nn.Linear(cfg.context_dim, E) if cfg.context_dim and cfg.pooled_context else None

        ch = cfg.model_channels
        self.conv_in = nn.Conv2d(cfg.in_channels + cfg.cond_channels, ch, 3, padding=1)  # x and image_cond
        skips = [ch]  # channels of every tensor the encoder hands to the decoder

        # Encoder: level l at resolution/2**l.
        self.enc = nn.ModuleDict()
        for level, mult in enumerate(cfg.channel_mult):
            attn = cfg.resolution // 2**level in cfg.attn_resolutions
            if level > 0:
                self.enc[f"l{level}_down"] = Downsample(ch)
                skips.append(ch)
            for i in range(cfg.num_blocks):
                out = cfg.model_channels * mult
                self.enc[f"l{level}_block{i}"] = UNetBlock(
                    ch, out, E, cfg.dropout, heads(out) if attn else 0, cfg.context_dim
                )
                ch = out
                skips.append(ch)

        # Middle, at the lowest resolution.
        self.mid = nn.ModuleList([
            UNetBlock(ch, ch, E, cfg.dropout, heads(ch) if cfg.mid_attention else 0, cfg.context_dim),
            UNetBlock(ch, ch, E, cfg.dropout),
        ])

        # Decoder: mirror image, each block concatenates one skip tensor.
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            attn = cfg.resolution // 2**level in cfg.attn_resolutions
            for i in range(cfg.num_blocks + 1):
                out = cfg.model_channels * mult
                self.dec[f"l{level}_block{i}"] = UNetBlock(
                    ch + skips.pop(), out, E, cfg.dropout, heads(out) if attn else 0, cfg.context_dim
                )
                ch = out
            if level > 0:
                self.dec[f"l{level}_up"] = Upsample(ch)
        assert not skips

        self.norm_out = group_norm(ch)
        self.conv_out = _zero(nn.Conv2d(ch, cfg.out_channels, 3, padding=1))

    @property
    def config(self) -> dict:
        """JSON-ready architecture description; `build_net_from_config(net.config)` rebuilds it."""
        return self.cfg.to_dict()

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        class_labels: Tensor | None = None,
        context: Tensor | None = None,
        *,
        context_mask: Tensor | None = None,
        image_cond: Tensor | None = None,
    ) -> Tensor:
        cfg = self.cfg
        c_noise = check_inputs(x, c_noise, cfg.in_channels)
        check_image_cond(image_cond, cfg.cond_channels, x)
        B, _, H, W = x.shape
        if H % cfg.factor or W % cfg.factor:
            raise ValueError(
                f"input size {H}x{W} is not divisible by {cfg.factor} = 2**(levels-1); "
                f"this U-Net needs height and width that are multiples of {cfg.factor}"
            )
        check_context(context, cfg.context_dim, B, context_mask)
        onehot = class_onehot(class_labels, cfg.num_classes, B, x.dtype)

        emb = self.noise_emb(c_noise)  # (B, E)
        if onehot is not None:
            assert self.class_emb is not None
            emb = emb + self.class_emb(onehot)  # a zero row adds exactly nothing
        if self.context_emb is not None and context is not None:
            emb = emb + self.context_emb(pool_context(context, context_mask))  # the prompt as a whole (B, E)
        emb = F.silu(emb)  # shared by every block's scale/shift projection

        if image_cond is not None:  # concatenation conditioning: the condition is never scaled by c_in
            x = torch.cat([x, image_cond.to(x.dtype)], dim=1)  # (B, C_in + cond_channels, H, W)
        h = self.conv_in(x)  # (B, model_channels, H, W)
        skips = [h]
        for block in self.enc.values():
            h = block(h) if isinstance(block, Downsample) else block(h, emb, context, context_mask)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb, context, context_mask)  # (B, C_low, H/f, W/f)
        for block in self.dec.values():
            if isinstance(block, Upsample):
                h = block(h)
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C_out, H, W)
