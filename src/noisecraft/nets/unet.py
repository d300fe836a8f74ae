"""A U-Net denoiser in the ADM / EDM style (Dhariwal & Nichol 2021; Karras et al. 2022), for
signals of 1, 2 or 3 spatial axes (`dims`): audio (B, C, L), images (B, C, H, W), video (B, C, T, H, W).

    x (B, C_in, *spatial) ──conv_in──> encoder ──> middle ──> decoder ──norm, SiLU, conv_out──> (B, C_out, *spatial)
                                            └──── skip connections (concatenated) ───┘

* The encoder has one level per entry of `channel_mult`; level l works at resolution side / 2**l
  with `model_channels * channel_mult[l]` channels and holds `num_blocks` residual blocks, then a
  stride-2 convolution down to the next level. The decoder mirrors it with `num_blocks + 1`
  blocks per level, each reading one skip tensor, and nearest-neighbour upsampling + conv.
  Convolutions and group norms have the rank of the input.
* Video (dims=3) is factorized in space and time: only H and W are down-/upsampled (the number
  of frames T is the same at every level and free at run time, T=1 included), convolutions are
  full 3x3x3, and every attention place holds spatial self-attention within each frame followed
  by temporal self-attention across frames at each pixel (Video Diffusion Models, Ho et al. 2022).
* Residual blocks condition on the noise level (and class) through adaptive group norm,
  AdaGN(h, e) = (1 + s(e))·GroupNorm(h) + b(e) (ADM Sec. 3, "scale-shift norm"); the
  conditioning vector e comes from the shared `ConditionedNet` embedding.
* Self-attention runs after the blocks of the levels listed in `attn_resolutions` and in the
  middle; with `context_dim > 0` a cross-attention layer follows every self-attention layer
  (for video it reads the context from every position of every frame). With
  `cross_attention_positions` (1-D and 2-D) its queries also carry a fixed sin-cos code of their place,
  so that place words ("left", "top") can be read by place and not only inferred from the zero padding.
* With `cond_channels > 0` an `image_cond` (B, cond_channels, *spatial) is concatenated to x before
  `conv_in` (SR3, Saharia et al. 2021; Palette, Saharia et al. 2022): the net sees [x, image].
* With `patch_size` p > 1 the input is cut into non-overlapping patches of p samples (p x p pixels;
  for video p x p pixels of each frame, never across frames) that become channels ("space-to-depth", as the patch embedding of ViT/DiT and
  the pixel-unshuffle of sub-pixel convolution, Shi et al. 2016) before `conv_in`, and `conv_out`
  predicts p (p²) values per position that are put back in place: level 0 works at side / p, so
  no convolution runs at the full rate (a cheap stem for long waveforms and for 32x32 video, whose
  3x3x3 convolutions would otherwise run on every pixel of every frame). Default 1: no patches.
* `padding_mode = "circular"` pads every convolution periodically (wrap-around) instead of with
  zeros: for data on a periodic domain (the `grf` and `navier-stokes` fields live on a torus), the
  net then sees no edges and is equivariant to circular shifts by multiples of patch_size *
  2**(levels-1), so it can generate fields whose opposite edges match. Default "zeros".
* The last conv of every block, the attention output projections and `conv_out` start at zero,
  so every block starts as the identity and the untrained net outputs exactly zero.

Any input size whose spatial sides (L; H, W) are divisible by patch_size * 2**(levels-1) works; `resolution`
in the config is that side (L for audio, the frame side for video) at which the checkpoint was
trained, and decides where the attention layers sit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (CONV, Attention, ConditionedNet, ArchConfig, check_context, check_dims, check_divisible,
                     check_image_cond, check_inputs, check_positive, group_norm, sincos_code)

__all__ = ["UNet", "UNetConfig", "PADDING_MODES", "VIDEO_ATTENTION"]

PADDING_MODES = ("zeros", "circular")
VIDEO_ATTENTION = ("factorized", "joint")


@dataclass(frozen=True)
class UNetConfig(ArchConfig):
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
    guidance_embedding: bool = False  # True: a guidance weight w (B,) is an input (a guidance-distilled student)
    num_params: int = 0  # > 0: continuous parameters (B, num_params) are an input (`params`; NaN = not given)
    cond_channels: int = 0  # > 0: an image_cond (B, cond_channels, *spatial) is concatenated to x before conv_in
    dims: int = 2  # spatial axes: 1 (C, L), 2 (C, H, W) or 3 (C, T, H, W); configs saved without it are 2-D
    patch_size: int = 1  # > 1 (dims 1 or 2): level 0 works on patches of this many samples per axis
    padding_mode: str = "zeros"  # "circular": periodic padding of every conv, for data on a torus
    video_attention: str = "factorized"  # video: "factorized" (space, then time per pixel) or "joint" (all T*H*W)
    cross_attention_positions: bool = False  # True: cross-attention queries carry a fixed sin-cos code of where they are

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
        """The input resolution must be divisible by this: patch_size * 2**(levels - 1)."""
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)

    @property
    def spatial_factors(self) -> tuple[int, ...]:
        """What each spatial size of the input must be a multiple of (video: frames are free)."""
        f = self.factor
        return (1, f, f) if self.dims == 3 else (f,) * self.dims

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        return tuple(self.resolution // self.patch_size // 2**level for level in range(len(self.channel_mult)))

    def _validate(self) -> None:
        check_dims("UNetConfig", self.dims)
        check_positive(
            "UNetConfig",
            in_channels=self.in_channels,
            out_channels=self.out_channels,  # type: ignore[arg-type]
            resolution=self.resolution,
            model_channels=self.model_channels,
            num_blocks=self.num_blocks,
            attn_head_channels=self.attn_head_channels,
            emb_channels=self.emb_channels,  # type: ignore[arg-type]
            patch_size=self.patch_size,
        )
        for key in ("num_classes", "context_dim", "cond_channels", "num_params"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"UNetConfig.{key} must be an integer >= 0, got {value!r}")
        if not self.channel_mult or not all(isinstance(m, int) and m >= 1 for m in self.channel_mult):
            raise ValueError(f"UNetConfig.channel_mult must be a non-empty list of integers >= 1, got {self.channel_mult!r}")
        if not isinstance(self.cross_attention_positions, bool):
            raise ValueError(f"UNetConfig.cross_attention_positions must be true or false, "
                             f"got {self.cross_attention_positions!r}")
        if self.cross_attention_positions and self.dims == 3:
            raise ValueError("UNetConfig.cross_attention_positions is for 1-D and 2-D nets (dims 1 or 2), got dims 3")
        if self.resolution % self.factor != 0:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by {self.factor} = patch_size * 2**(levels-1) "
                f"for patch_size {self.patch_size} and {len(self.channel_mult)} levels; use a multiple of "
                f"{self.factor}, fewer levels or a smaller patch_size"
            )
        bad = [r for r in self.attn_resolutions if r not in self.level_resolutions]
        if bad:
            raise ValueError(
                f"attn_resolutions {bad} are not resolutions of this U-Net; valid: {list(self.level_resolutions)}"
            )
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.video_attention not in VIDEO_ATTENTION:
            raise ValueError(f"UNetConfig.video_attention {self.video_attention!r} is not valid; valid: "
                             f"{', '.join(VIDEO_ATTENTION)}")
        if self.video_attention != "factorized" and self.dims != 3:
            raise ValueError(f"UNetConfig.video_attention applies to video (dims=3) only; got "
                             f"video_attention={self.video_attention!r} with dims={self.dims} (use 'factorized')")
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"UNetConfig.padding_mode {self.padding_mode!r} is not valid; valid: {', '.join(PADDING_MODES)}")


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _conv(dims: int, in_channels: int, out_channels: int, kernel: int, stride: int | tuple[int, ...] = 1) -> nn.Module:
    """A 'same'-padded conv of the rank. For video (dims=3) the kernel is a full 3x3x3: one conv
    per place keeps the module tree (and parameter names) of the 1-D/2-D nets, every block sees
    motion over neighbouring frames (not only the levels with temporal attention), and with
    zero padding a single frame (T=1) reads only the centre 3x3 slice, so the same net takes
    images as one-frame videos (joint image/video training, Ho et al. 2022). A factorized
    1x3x3 + 3x1x1 pair would save ~2/3 of the conv cost; at our sizes simplicity wins."""
    return CONV[dims](in_channels, out_channels, kernel, stride=stride, padding=kernel // 2)


def _patch_values(dims: int, p: int) -> int:
    """Values per patch and channel: p samples (1-D), p x p pixels (2-D and, per frame, video)."""
    return p ** min(dims, 2)


def _to_patches(x: Tensor, p: int) -> Tensor:
    """Space-to-depth: (B, C, L) -> (B, C*p, L/p), (B, C, H, W) -> (B, C*p*p, H/p, W/p),
    (B, C, T, H, W) -> (B, C*p*p, T, H/p, W/p) (each frame on its own); p = 1: x."""
    if p == 1:
        return x
    if x.ndim == 5:
        B, C, T, H, W = x.shape
        frames = F.pixel_unshuffle(x.transpose(1, 2).reshape(B * T, C, H, W), p)
        return frames.reshape(B, T, C * p * p, H // p, W // p).transpose(1, 2)
    if x.ndim == 4:
        return F.pixel_unshuffle(x, p)
    B, C, L = x.shape
    return x.reshape(B, C, L // p, p).transpose(2, 3).reshape(B, C * p, L // p)  # channel c*p + offset


def _from_patches(x: Tensor, p: int) -> Tensor:
    """Depth-to-space, the inverse of `_to_patches`."""
    if p == 1:
        return x
    if x.ndim == 5:
        B, Cp, T, h, w = x.shape
        frames = F.pixel_shuffle(x.transpose(1, 2).reshape(B * T, Cp, h, w), p)
        return frames.reshape(B, T, Cp // (p * p), h * p, w * p).transpose(1, 2)
    if x.ndim == 4:
        return F.pixel_shuffle(x, p)
    B, Cp, M = x.shape
    return x.reshape(B, Cp // p, p, M).transpose(2, 3).reshape(B, Cp // p, M * p)


def _frame_pos_embed(num_frames: int, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Sin-cos embedding of the frame index, (T, channels): temporal attention is otherwise blind to
    frame order. Computed for the T at hand, so any number of frames works."""
    half = channels // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / max(half, 1))  # (C/2,)
    frames = torch.arange(num_frames, dtype=torch.float64)
    return sincos_code([frames], [omega], channels).to(device=device, dtype=dtype)


def _grid_pos_embed(spatial: tuple[int, ...], channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Fixed sin-cos code of where each position lies in the image, (prod(spatial), channels), row-major.

    Per axis, channels // (2·n) frequencies ω_k = π·(size/2)^(k/(K-1)), from one half-period across
    the image to the grid's Nyquist frequency, of the coordinate u = (i + 0.5) / size in (0, 1); the
    channels left over are zero. A convolution only learns where it is from the zero padding; a
    cross-attention query that carries this code can pick "left" or "top" words by place (the DiT /
    Transformer position code, Vaswani et al. 2017, on the image's own coordinates)."""
    k = channels // (2 * len(spatial))
    steps = torch.arange(k, dtype=torch.float64) / max(k - 1, 1)
    coords = torch.meshgrid(*((torch.arange(s, dtype=torch.float64) + 0.5) / s for s in spatial), indexing="ij")
    omegas = [math.pi * (max(size, 2) / 2) ** steps for size in spatial]  # (K,) per axis
    return sincos_code(coords, omegas, channels).to(device=device, dtype=dtype)


class AttentionLayer(nn.Module):
    """Residual (cross-)attention on x (B, C, *spatial): x + Attn(GroupNorm(x)), over a choice of axes.

    * axes="all": every position attends to every other (1-D, 2-D and cross-attention).
    * axes="space": (B, C, T, H, W) attends within each frame, normalised per frame: frames never mix.
    * axes="time": each pixel attends over the frames at its place, normalised per pixel, with a
      sin-cos frame index added to the normalised input: pixels never mix.
    * axes="spacetime": (B, C, T, H, W) every position of every frame attends to all T·H·W positions,
      with the frame index added as for "time": a frame reads an object wherever it is in another frame.
    positions=True (cross-attention, axes "all"): the queries get a fixed code of their place in the
    image (`_grid_pos_embed`), so that words such as "left" or "top" can be read by place.
    The pair space-then-time is the factorized space-time attention of Video Diffusion Models
    (Ho et al. 2022, Sec. 3), which costs O(T·(HW)² + HW·T²) instead of the joint O((THW)²); at the
    low levels of a small video net (e.g. 4x4 x 16 frames = 256 tokens) the joint form is cheap.
    """

    def __init__(self, channels: int, num_heads: int, context_dim: int | None = None, axes: str = "all",
                 positions: bool = False) -> None:
        super().__init__()
        assert axes in ("all", "space", "time", "spacetime")
        assert not positions or (axes == "all" and context_dim is not None)
        self.axes = axes
        self.positions = positions
        self.norm = group_norm(channels)
        self.attn = Attention(channels, num_heads, context_dim=context_dim)
        _zero(self.attn.out)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        if self.attn.is_cross and context is None:  # "no context": the layer is skipped
            return x
        if self.axes == "all":
            tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
            if self.positions:
                tokens = tokens + _grid_pos_embed(tuple(x.shape[2:]), x.shape[1], x.device, tokens.dtype)
            out = self.attn(tokens, context, context_mask).transpose(1, 2)  # (B, C, N)
            return x + out.reshape(x.shape)
        # The norm sees only the sequence being attended over, so that nothing outside it leaks in.
        B, C, T, H, W = x.shape
        if self.axes == "spacetime":
            tokens = self.norm(x).permute(0, 2, 3, 4, 1)  # (B, T, H, W, C)
            tokens = tokens + _frame_pos_embed(T, C, x.device, tokens.dtype)[:, None, None, :]
            out = self.attn(tokens.reshape(B, T * H * W, C))  # (B, THW, C)
            return x + out.reshape(B, T, H, W, C).permute(0, 4, 1, 2, 3)
        if self.axes == "space":
            frames = x.transpose(1, 2).reshape(B * T, C, H, W)  # one sequence per frame
            tokens = self.norm(frames).flatten(2).transpose(1, 2)  # (BT, HW, C)
            out = self.attn(tokens).reshape(B, T, H, W, C).permute(0, 4, 1, 2, 3)
        else:
            pixels = x.permute(0, 3, 4, 1, 2).reshape(B * H * W, C, T)  # one sequence per pixel
            tokens = self.norm(pixels).transpose(1, 2)  # (BHW, T, C)
            tokens = tokens + _frame_pos_embed(T, C, x.device, tokens.dtype)  # (T, C) broadcast
            out = self.attn(tokens).reshape(B, H, W, T, C).permute(0, 4, 3, 1, 2)
        return x + out  # (B, C, T, H, W)


class UNetBlock(nn.Module):
    """Residual block with adaptive group norm, optionally followed by self- and cross-attention.

        h = conv1(SiLU(GroupNorm(x)))
        h = conv2(Dropout(SiLU((1 + scale)·GroupNorm(h) + shift)))      scale, shift = Linear(emb)
        out = skip(x) + h       then   out = out + SelfAttn(out) [+ TemporalAttn(out)] [+ CrossAttn(out, context)]

    For video (dims=3) SelfAttn works within each frame and TemporalAttn across the frames of
    each pixel (Ho et al. 2022), or with video_attention="joint" one SelfAttn spans all frames and
    positions (no TemporalAttn); cross-attention reads the context from every position.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        dropout: float,
        num_heads: int = 0,  # 0: no attention
        context_dim: int = 0,
        dims: int = 2,
        video_attention: str = "factorized",
        cross_positions: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = _conv(dims, in_channels, out_channels, 3)
        self.emb = nn.Linear(emb_channels, 2 * out_channels)
        self.norm2 = group_norm(out_channels, affine=False)  # the affine part comes from `emb`
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(_conv(dims, out_channels, out_channels, 3))
        self.skip = _conv(dims, in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        factorized = dims == 3 and video_attention == "factorized"
        self_axes = "all" if dims != 3 else "space" if factorized else "spacetime"
        self.self_attn = AttentionLayer(out_channels, num_heads, axes=self_axes) if num_heads else None
        self.temporal_attn = AttentionLayer(out_channels, num_heads, axes="time") if num_heads and factorized else None
        self.cross_attn = (AttentionLayer(out_channels, num_heads, context_dim, positions=cross_positions)
                           if num_heads and context_dim else None)

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        # x: (B, C_in, *spatial), emb: (B, E) already passed through SiLU
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, *spatial)
        ones = (None,) * (x.ndim - 2)
        scale, shift = self.emb(emb)[(slice(None), slice(None), *ones)].chunk(2, dim=1)  # (B, C_out, 1, ...) each
        h = F.silu(torch.addcmul(shift, self.norm2(h), scale + 1))
        h = self.conv2(self.dropout(h))  # (B, C_out, *spatial)
        x = self.skip(x) + h
        if self.self_attn is not None:
            x = self.self_attn(x)
        if self.temporal_attn is not None:
            x = self.temporal_attn(x)
        if self.cross_attn is not None:
            x = self.cross_attn(x, context, context_mask)
        return x


def _spatial_stride(dims: int) -> int | tuple[int, ...]:
    """2 along every axis, except time for video: frames are never down-/upsampled, so T is free
    at run time (any number of frames, T=1 included) and temporal detail is kept at every level."""
    return (1, 2, 2) if dims == 3 else 2


class Downsample(nn.Module):
    """(B, C, *spatial) -> (B, C, *spatial/2) with a stride-2 3x3 conv (video: (T, H/2, W/2))."""

    def __init__(self, channels: int, dims: int = 2) -> None:
        super().__init__()
        self.conv = _conv(dims, channels, channels, 3, stride=_spatial_stride(dims))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """(B, C, *spatial) -> (B, C, *spatial·2): nearest-neighbour, then a 3x3 conv (video: (T, 2H, 2W))."""

    def __init__(self, channels: int, dims: int = 2) -> None:
        super().__init__()
        self.conv = _conv(dims, channels, channels, 3)
        self.scale: float | tuple[float, ...] = (1.0, 2.0, 2.0) if dims == 3 else 2.0

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class UNet(ConditionedNet):
    """ADM/EDM-style U-Net: `net(x, c_noise, class_labels=None, context=None, *, context_mask=None, image_cond=None) -> (B, C_out, *spatial)`."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        cfg = self.cfg = config
        E, d = cfg.emb_channels, cfg.dims
        assert E is not None and cfg.out_channels is not None  # resolved by UNetConfig

        def heads(channels: int) -> int:  # about channels / attn_head_channels, and a divisor of channels
            n = max(1, channels // cfg.attn_head_channels)
            while channels % n:
                n -= 1
            return n

        # Conditioning: emb = MLP(Fourier(c_noise)) + W_class·onehot(label)   (B, E)
        self.add_condition_embedding(E, cfg.num_classes, cfg.context_dim, cfg.pooled_context,
                                     cfg.guidance_embedding, cfg.num_params)

        ch = cfg.model_channels
        p_in = _patch_values(d, cfg.patch_size)  # values per patch and input channel
        self.conv_in = _conv(d, (cfg.in_channels + cfg.cond_channels) * p_in, ch, 3)  # x and image_cond
        skips = [ch]  # channels of every tensor the encoder hands to the decoder

        # Encoder: level l at resolution / patch_size / 2**l (`level_resolutions`).
        self.enc = nn.ModuleDict()
        for level, mult in enumerate(cfg.channel_mult):
            attn = cfg.level_resolutions[level] in cfg.attn_resolutions  # in units of level 0 (patches)
            if level > 0:
                self.enc[f"l{level}_down"] = Downsample(ch, d)
                skips.append(ch)
            for i in range(cfg.num_blocks):
                out = cfg.model_channels * mult
                self.enc[f"l{level}_block{i}"] = UNetBlock(
                    ch, out, E, cfg.dropout, heads(out) if attn else 0, cfg.context_dim, d, cfg.video_attention,
                    cfg.cross_attention_positions,
                )
                ch = out
                skips.append(ch)

        # Middle, at the lowest resolution.
        self.mid = nn.ModuleList([
            UNetBlock(ch, ch, E, cfg.dropout, heads(ch) if cfg.mid_attention else 0, cfg.context_dim, d,
                      cfg.video_attention, cfg.cross_attention_positions),
            UNetBlock(ch, ch, E, cfg.dropout, dims=d),
        ])

        # Decoder: mirror image, each block concatenates one skip tensor.
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            attn = cfg.level_resolutions[level] in cfg.attn_resolutions  # in units of level 0 (patches)
            for i in range(cfg.num_blocks + 1):
                out = cfg.model_channels * mult
                self.dec[f"l{level}_block{i}"] = UNetBlock(
                    ch + skips.pop(), out, E, cfg.dropout, heads(out) if attn else 0, cfg.context_dim, d,
                    cfg.video_attention, cfg.cross_attention_positions,
                )
                ch = out
            if level > 0:
                self.dec[f"l{level}_up"] = Upsample(ch, d)
        assert not skips

        self.norm_out = group_norm(ch)
        self.conv_out = _zero(_conv(d, ch, cfg.out_channels * p_in, 3))
        if cfg.padding_mode != "zeros":  # torch pads by padding_mode at call time (same weights, same names)
            for m in self.modules():
                if isinstance(m, nn.modules.conv._ConvNd) and any(p > 0 for p in m.padding):
                    m.padding_mode = cfg.padding_mode

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
        guidance: Tensor | None = None,
        params: Tensor | None = None,
    ) -> Tensor:
        cfg = self.cfg
        c_noise = check_inputs(x, c_noise, cfg.in_channels, cfg.dims)
        check_image_cond(image_cond, cfg.cond_channels, x)
        check_divisible(x, cfg.spatial_factors, f"{cfg.factor} = 2**(levels-1) (the U-Net's down-sampling factor)")
        check_context(context, cfg.context_dim, x.shape[0], context_mask)
        emb = self.embed_condition(c_noise, class_labels, context, context_mask, x.dtype, guidance, params)  # (B, E)

        if image_cond is not None:  # concatenation conditioning: the condition is never scaled by c_in
            x = torch.cat([x, image_cond.to(x.dtype)], dim=1)  # (B, C_in + cond_channels, *spatial)
        h = self.conv_in(_to_patches(x, cfg.patch_size))  # (B, model_channels, *spatial/p)
        skips = [h]
        for block in self.enc.values():
            h = block(h) if isinstance(block, Downsample) else block(h, emb, context, context_mask)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb, context, context_mask)  # (B, C_low, *spatial/f)   (video: (T, H/f, W/f))
        for block in self.dec.values():
            if isinstance(block, Upsample):
                h = block(h)
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask)
        out = self.conv_out(F.silu(self.norm_out(h)))  # (B, C_out * p**min(dims, 2), *spatial/p)
        return _from_patches(out, cfg.patch_size)  # (B, C_out, *spatial)
