"""A diffusion transformer, DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers").

    x (B, C, H, W) --patchify--> tokens (B, N, D), N = (H/p)·(W/p), + fixed 2-D sin-cos positions
        --depth x DiTBlock(tokens, c [, context])--> final adaLN + Linear --> (B, N, p·p·C_out)
        --unpatchify--> (B, C_out, H, W)

* c = SiLU(MLP(Fourier(c_noise)) + W_class·onehot(label)) conditions every block through
  adaLN-Zero (paper Sec. 3.2): per block a zero-initialised linear map of c gives the shift and
  scale of both (affine-free) LayerNorms and a gate on each residual branch, so every block
  starts as the identity.
* With `context_dim > 0` each block also has a cross-attention sublayer between self-attention
  and the MLP (as in PixArt-α), its output projection zero-initialised; context=None skips it.
* With `cond_channels > 0` an `image_cond` (B, cond_channels, H, W) is concatenated to x along the
  channels before patchify, so each token also embeds its patch of the condition image.
* The final layer is adaLN + a zero-initialised linear, so the untrained net outputs zero.

Unlike the U-Net, the positional embedding ties a DiT to its configured resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (Attention, NetConfig, NoiseEmbedding, check_context, pool_context, check_image_cond, check_inputs, check_positive,
                     class_onehot)

__all__ = ["DiT", "DiTConfig", "sincos_pos_embed_2d"]


@dataclass(frozen=True)
class DiTConfig(NetConfig):
    """Everything that decides the DiT's architecture; saved next to the weights as JSON."""

    in_channels: int
    resolution: int
    out_channels: int | None = None  # None: same as in_channels
    num_classes: int = 0  # 0: unconditional
    patch_size: int = 2
    hidden_size: int = 384  # token width D; must be divisible by 4 (2-D sin-cos positions) and num_heads
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    dropout: float = 0.0  # on the MLP's hidden activations
    context_dim: int = 0  # > 0: a cross-attention sublayer per block reading (B, L, context_dim)
    pooled_context: bool = False  # also add Linear(masked mean of the context) to the conditioning vector (Imagen)
    cond_channels: int = 0  # > 0: an image_cond (B, cond_channels, H, W) is concatenated to x before patchify

    name = "dit"

    def __post_init__(self) -> None:
        if self.out_channels is None:
            object.__setattr__(self, "out_channels", self.in_channels)
        self._validate()

    @property
    def factor(self) -> int:
        """The resolution must be divisible by this: the patch size."""
        return self.patch_size

    def _validate(self) -> None:
        check_positive(
            "DiTConfig",
            in_channels=self.in_channels,
            out_channels=self.out_channels,  # type: ignore[arg-type]
            resolution=self.resolution,
            patch_size=self.patch_size,
            hidden_size=self.hidden_size,
            depth=self.depth,
            num_heads=self.num_heads,
        )
        for key in ("num_classes", "context_dim", "cond_channels"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"DiTConfig.{key} must be an integer >= 0, got {value!r}")
        if self.resolution % self.patch_size != 0:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by patch_size {self.patch_size}; "
                f"use a multiple of {self.patch_size} or another patch size"
            )
        if self.hidden_size % 4 != 0 or self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by 4 and by num_heads={self.num_heads}"
            )
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"DiTConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"DiTConfig.dropout must be in [0, 1), got {self.dropout!r}")


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> Tensor:
    """Fixed 2-D sin-cos position embedding (Vaswani et al. 2017, per axis): (grid_h·grid_w, dim).

    The first dim/2 channels encode the row, the rest the column, each as [sin, cos] of the
    coordinate times frequencies 1/10000**(k/(dim/4)), k = 0..dim/4-1. Tokens are row-major.
    """
    assert dim % 4 == 0
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (dim/4,)

    def axis(n: int) -> Tensor:  # (n, dim/2)
        phase = torch.arange(n, dtype=torch.float64)[:, None] * omega[None, :]
        return torch.cat([phase.sin(), phase.cos()], dim=1)

    rows = axis(grid_h)[:, None, :].expand(grid_h, grid_w, dim // 2)  # (h, w, dim/2)
    cols = axis(grid_w)[None, :, :].expand(grid_h, grid_w, dim // 2)  # (h, w, dim/2)
    return torch.cat([rows, cols], dim=-1).reshape(grid_h * grid_w, dim).float()


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
    """adaLN then a linear map of each token to its patch: (B, N, D) -> (B, N, p·p·C_out)."""

    def __init__(self, dim: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.ada(c)[:, None, :].chunk(2, dim=-1)  # (B, 1, D) each
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """Diffusion transformer: `net(x, c_noise, class_labels=None, context=None, *, context_mask=None, image_cond=None) -> (B, C_out, H, W)`."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        cfg = self.cfg = config
        D, p = cfg.hidden_size, cfg.patch_size
        assert cfg.out_channels is not None  # resolved by DiTConfig
        self.grid = cfg.resolution // p

        # (B, C + cond_channels, H, W) -> (B, D, H/p, W/p): x and image_cond are patchified together
        self.patch_embed = nn.Conv2d(cfg.in_channels + cfg.cond_channels, D, kernel_size=p, stride=p)
        # Fixed positions are derived from the config, so they stay out of the state dict.
        self.register_buffer("pos_embed", sincos_pos_embed_2d(D, self.grid, self.grid)[None], persistent=False)
        self.noise_emb = NoiseEmbedding(D)
        self.class_emb = nn.Linear(cfg.num_classes, D, bias=False) if cfg.num_classes else None
        self.context_emb = nn.Linear(cfg.context_dim, D) if cfg.context_dim and cfg.pooled_context else None
        self.blocks = nn.ModuleList(
            DiTBlock(D, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.context_dim) for _ in range(cfg.depth)
        )
        self.final = FinalLayer(D, p * p * cfg.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # As in the DiT paper: Xavier-uniform linears and patch embedding, N(0, 0.02) embeddings,
        # and zeros for every adaLN modulation and the output layer (the "-Zero" in adaLN-Zero).
        for m in self.modules():
            if isinstance(m, nn.Linear):
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
        B, _, H, W = x.shape
        if H != cfg.resolution or W != cfg.resolution:
            raise ValueError(
                f"input size {H}x{W} does not match this DiT's resolution {cfg.resolution}x{cfg.resolution} "
                "(its position embedding is fixed); rebuild it with another resolution"
            )
        check_context(context, cfg.context_dim, B, context_mask)
        check_image_cond(image_cond, cfg.cond_channels, x)
        onehot = class_onehot(class_labels, cfg.num_classes, B, x.dtype)

        c = self.noise_emb(c_noise)  # (B, D)
        if onehot is not None:
            assert self.class_emb is not None
            c = c + self.class_emb(onehot)  # a zero row adds exactly nothing
        if self.context_emb is not None and context is not None:
            c = c + self.context_emb(pool_context(context, context_mask))  # the prompt as a whole (B, D)
        c = F.silu(c)

        if image_cond is not None:  # concatenation conditioning: the condition is never scaled by c_in
            x = torch.cat([x, image_cond.to(x.dtype)], dim=1)  # (B, C + cond_channels, H, W)
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, D), N = grid²
        for block in self.blocks:
            h = block(h, c, context, context_mask)  # (B, N, D)
        h = self.final(h, c)  # (B, N, p·p·C_out)
        return self.unpatchify(h)

    def unpatchify(self, h: Tensor) -> Tensor:
        """(B, N, p·p·C) with tokens row-major and each token laid out as (p, p, C) -> (B, C, H, W)."""
        B, g, p = h.shape[0], self.grid, self.cfg.patch_size
        h = h.reshape(B, g, g, p, p, -1)  # (B, gh, gw, p, p, C)
        h = h.permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, p, gw, p)
        return h.reshape(B, -1, g * p, g * p)  # (B, C, H, W)
