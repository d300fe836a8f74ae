"""A diffusion transformer, DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"),
with N-D patches for signals of 1, 2 or 3 spatial axes (`dims`).

    x (B, C, *spatial) --patchify--> tokens (B, N, D), N = ∏ size_i / patch_i, + fixed sin-cos positions
        --depth x DiTBlock(tokens, c [, context])--> final adaLN + Linear --> (B, N, ∏patch·C_out)
        --unpatchify--> (B, C_out, *spatial)

* Patches are `patch_size` long along every spatial axis; for video (dims=3, x (B, C, T, H, W))
  they are `temporal_patch` frames deep (default 1: one token per frame patch). Tokens are in
  row-major order over the patch grid, and every block attends over all of them (space and
  time jointly for video).
* Positions: per axis the Transformer sin-cos code (Vaswani et al. 2017) of the patch index,
  concatenated over the axes (`sincos_pos_embed`); for 2-D this is DiT's fixed 2-D embedding.
* c = SiLU(MLP(Fourier(c_noise)) + W_class·onehot(label)), the shared `ConditionedNet` embedding,
  conditions every block through adaLN-Zero (paper Sec. 3.2): per block a zero-initialised
  linear map of c gives the shift and scale of both (affine-free) LayerNorms and a gate on each
  residual branch, so every block starts as the identity.
* With `context_dim > 0` each block also has a cross-attention sublayer between self-attention
  and the MLP (as in PixArt-α), its output projection zero-initialised; context=None skips it.
* With `cond_channels > 0` an `image_cond` (B, cond_channels, *spatial) is concatenated to x along
  the channels before patchify, so each token also embeds its patch of the condition.
* The final layer is adaLN + a zero-initialised linear, so the untrained net outputs zero.

Unlike the U-Net, a DiT is tied to its configured `resolution` along the spatial axes (L for
audio, H = W for images and video frames): inputs of another size are refused. The number of
frames of a video is free (a multiple of `temporal_patch`); its positions are computed per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import (CONV, SPATIAL_AXES, Attention, ConditionedNet, ArchConfig, check_context, check_dims, check_divisible,
                     check_image_cond, check_inputs, check_positive, sincos_code)

__all__ = ["DiT", "DiTConfig", "sincos_pos_embed", "sincos_pos_embed_2d"]


@dataclass(frozen=True)
class DiTConfig(ArchConfig):
    """Everything that decides the DiT's architecture; saved next to the weights as JSON."""

    in_channels: int
    resolution: int
    out_channels: int | None = None  # None: same as in_channels
    num_classes: int = 0  # 0: unconditional
    patch_size: int = 2
    hidden_size: int = 384  # token width D; must be even, >= 2·dims and divisible by num_heads
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    dropout: float = 0.0  # on the MLP's hidden activations
    context_dim: int = 0  # > 0: a cross-attention sublayer per block reading (B, L, context_dim)
    pooled_context: bool = False  # also add Linear(masked mean of the context) to the conditioning vector (Imagen)
    guidance_embedding: bool = False  # True: a guidance weight w (B,) is an input (a guidance-distilled student)
    num_params: int = 0  # > 0: continuous parameters (B, num_params) are an input (`params`; NaN = not given)
    cond_channels: int = 0  # > 0: an image_cond (B, cond_channels, *spatial) is concatenated to x before patchify
    dims: int = 2  # spatial axes: 1 (C, L), 2 (C, H, W) or 3 (C, T, H, W); configs saved without it are 2-D
    temporal_patch: int = 1  # video only: frames per patch (the input's T must be a multiple of it)

    name = "dit"

    def __post_init__(self) -> None:
        if self.out_channels is None:
            object.__setattr__(self, "out_channels", self.in_channels)
        self._validate()

    @property
    def factor(self) -> int:
        """The resolution must be divisible by this: the patch size."""
        return self.patch_size

    @property
    def patch(self) -> tuple[int, ...]:
        """The patch extent along each spatial axis: (p,), (p, p) or (temporal_patch, p, p)."""
        p = self.patch_size
        return (self.temporal_patch, p, p) if self.dims == 3 else (p,) * self.dims

    def _validate(self) -> None:
        check_dims("DiTConfig", self.dims)
        check_positive(
            "DiTConfig",
            temporal_patch=self.temporal_patch,
            in_channels=self.in_channels,
            out_channels=self.out_channels,  # type: ignore[arg-type]
            resolution=self.resolution,
            patch_size=self.patch_size,
            hidden_size=self.hidden_size,
            depth=self.depth,
            num_heads=self.num_heads,
        )
        for key in ("num_classes", "context_dim", "cond_channels", "num_params"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"DiTConfig.{key} must be an integer >= 0, got {value!r}")
        if self.resolution % self.patch_size != 0:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by patch_size {self.patch_size}; "
                f"use a multiple of {self.patch_size} or another patch size"
            )
        if self.temporal_patch != 1 and self.dims != 3:
            raise ValueError(f"DiTConfig.temporal_patch applies to video (dims=3) only; got temporal_patch="
                             f"{self.temporal_patch} with dims={self.dims} (use 1)")
        if self.hidden_size % 2 or self.hidden_size < 2 * self.dims or self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be even, at least 2·dims = {2 * self.dims} "
                f"and divisible by num_heads={self.num_heads}"
            )
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"DiTConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"DiTConfig.dropout must be in [0, 1), got {self.dropout!r}")


def sincos_pos_embed(dim: int, grid: tuple[int, ...]) -> Tensor:
    """Fixed N-D sin-cos position embedding (Vaswani et al. 2017, per axis): (∏grid, dim).

    Each of the n axes gets 2k channels, k = dim // (2n): [sin, cos] of its coordinate times the
    frequencies 1/10000**(j/k), j = 0..k-1; the axes are concatenated in order and any channels
    left over (dim not a multiple of 2n) are zero. Tokens are in row-major order over `grid`.
    For 2-D and dim divisible by 4 this is exactly DiT's 2-D embedding (rows first, then columns).
    """
    n = len(grid)
    k = dim // (2 * n)
    assert k >= 1, f"dim {dim} is too small for {n} axes"
    omega = 1.0 / 10000 ** (torch.arange(k, dtype=torch.float64) / k)  # (k,)
    coords = torch.meshgrid(*(torch.arange(g, dtype=torch.float64) for g in grid), indexing="ij")
    return sincos_code(coords, [omega] * n, dim).float()


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> Tensor:
    """DiT's fixed 2-D sin-cos embedding, (grid_h·grid_w, dim): `sincos_pos_embed(dim, (grid_h, grid_w))`."""
    return sincos_pos_embed(dim, (grid_h, grid_w))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x (B, N, D) with per-sample shift/scale (B, 1, D): x·(1 + scale) + shift."""
    return torch.addcmul(shift, x, scale + 1)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning and an optional cross-attention sublayer.

        x = x + g1·SelfAttn(modulate(LN(x), b1, s1))
        x = x + CrossAttn(LN_c(x), context)                    (only with context_dim > 0)
        x = x + g2·MLP(modulate(LN(x), b2, s2))                (b1, s1, g1, b2, s2, g2) = Linear(c)
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, context_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        if context_dim:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attn = Attention(dim, num_heads, context_dim=context_dim)
        else:
            self.norm_cross = self.cross_attn = None
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.ada = nn.Linear(dim, 6 * dim)

    def forward(self, x: Tensor, c: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        # x: (B, N, D); c: (B, D) already passed through SiLU
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, None, :].chunk(6, dim=-1)  # (B, 1, D) each
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))
        if self.cross_attn is not None and context is not None:
            x = x + self.cross_attn(self.norm_cross(x), context, context_mask)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)


class FinalLayer(nn.Module):
    """adaLN then a linear map of each token to its patch: (B, N, D) -> (B, N, ∏patch·C_out)."""

    def __init__(self, dim: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.ada(c)[:, None, :].chunk(2, dim=-1)  # (B, 1, D) each
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(ConditionedNet):
    """Diffusion transformer: `net(x, c_noise, class_labels=None, context=None, *, context_mask=None, image_cond=None) -> (B, C_out, *spatial)`."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        cfg = self.cfg = config
        D, patch = cfg.hidden_size, cfg.patch
        assert cfg.out_channels is not None  # resolved by DiTConfig
        self.grid = cfg.resolution // cfg.patch_size  # patches per spatial side (not time)

        # (B, C + cond_channels, *spatial) -> (B, D, *grid): x and image_cond are patchified together
        self.patch_embed = CONV[cfg.dims](cfg.in_channels + cfg.cond_channels, D, kernel_size=patch, stride=patch)
        if cfg.dims < 3:  # fixed positions, derived from the config: kept out of the state dict
            self.register_buffer("pos_embed", sincos_pos_embed(D, (self.grid,) * cfg.dims)[None], persistent=False)
        self.add_condition_embedding(D, cfg.num_classes, cfg.context_dim, cfg.pooled_context,
                                     cfg.guidance_embedding, cfg.num_params)
        self.blocks = nn.ModuleList(
            DiTBlock(D, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.context_dim) for _ in range(cfg.depth)
        )
        self.final = FinalLayer(D, math.prod(patch) * cfg.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # As in the DiT paper: Xavier-uniform linears and patch embedding, N(0, 0.02) embeddings,
        # and zeros for every adaLN modulation and the output layer (the "-Zero" in adaLN-Zero).
        own = {m for e in (self.guidance_emb, self.params_emb) if e is not None for m in e.modules()}  # keep their own init
        for m in self.modules():
            if isinstance(m, nn.Linear) and m not in own:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for lin in (self.noise_emb.mlp[0], self.noise_emb.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        if self.class_emb is not None:
            nn.init.normal_(self.class_emb.weight, std=0.02)
        zero = [self.final.ada, self.final.linear]
        for block in self.blocks:
            zero.append(block.ada)
            if block.cross_attn is not None:
                zero.append(block.cross_attn.out)
        for m in zero:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def config(self) -> dict:
        """JSON-ready architecture description; `build_net_from_config(net.config)` rebuilds it."""
        return self.cfg.to_dict()

    def _check_size(self, x: Tensor) -> tuple[int, ...]:
        """Check the spatial size of x against the config; return the patch grid (video: (T/tp, g, g))."""
        cfg = self.cfg
        sizes = tuple(x.shape[2:])
        side = sizes[1:] if cfg.dims == 3 else sizes  # the axes tied to `resolution`
        if any(n != cfg.resolution for n in side):
            what = {1: "length", 2: "size", 3: "frame size"}[cfg.dims]
            axes = ", ".join(SPATIAL_AXES[cfg.dims][-len(side):])
            raise ValueError(
                f"input {what} {'x'.join(map(str, side))} ({axes}) does not match this DiT's resolution "
                f"{'x'.join([str(cfg.resolution)] * len(side))} (its position embedding is fixed); "
                "rebuild it with another resolution"
            )
        check_divisible(x, cfg.patch, f"the patch {'x'.join(map(str, cfg.patch))}")
        return tuple(n // p for n, p in zip(sizes, cfg.patch))

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
        grid = self._check_size(x)
        check_context(context, cfg.context_dim, x.shape[0], context_mask)
        check_image_cond(image_cond, cfg.cond_channels, x)
        c = self.embed_condition(c_noise, class_labels, context, context_mask, x.dtype, guidance, params)  # (B, D)

        if image_cond is not None:  # concatenation conditioning: the condition is never scaled by c_in
            x = torch.cat([x, image_cond.to(x.dtype)], dim=1)  # (B, C + cond_channels, *spatial)
        if cfg.dims < 3:
            pos = self.pos_embed  # (1, N, D)
        else:  # the number of frames is only known now
            pos = sincos_pos_embed(cfg.hidden_size, grid)[None].to(device=x.device)
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + pos  # (B, N, D), N = ∏grid
        for block in self.blocks:
            h = block(h, c, context, context_mask)  # (B, N, D)
        h = self.final(h, c)  # (B, N, ∏patch·C_out)
        return self.unpatchify(h, grid)

    def unpatchify(self, h: Tensor, grid: tuple[int, ...] | None = None) -> Tensor:
        """(B, N, ∏patch·C), tokens row-major over `grid` and each laid out as (*patch, C) -> (B, C, *spatial).

        `grid` defaults to the configured one (1-D and 2-D; video needs it, since T is free)."""
        patch = self.cfg.patch
        if grid is None:
            if self.cfg.dims == 3:
                raise ValueError("unpatchify of a video DiT needs the patch grid (T/temporal_patch, H/p, W/p)")
            grid = (self.grid,) * self.cfg.dims
        n = len(grid)
        h = h.reshape(h.shape[0], *grid, *patch, -1)  # (B, g_1..g_n, p_1..p_n, C)
        # -> (B, C, g_1, p_1, ..., g_n, p_n): each grid axis followed by its patch axis
        order = [0, 2 * n + 1] + [a for i in range(n) for a in (1 + i, 1 + n + i)]
        h = h.permute(*order)
        return h.reshape(h.shape[0], h.shape[1], *(g * p for g, p in zip(grid, patch)))  # (B, C, *spatial)
