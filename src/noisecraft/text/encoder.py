"""`SmallTextEncoder`: a small transformer text encoder trained from scratch with the diffusion model.

    ids (B, L), mask (B, L) --token + learned position embeddings--> (B, L, dim)
        --depth x [x + SelfAttn(LN(x), mask); x + MLP(LN(x))]--> final LN --> context (B, L, dim)

Pre-norm blocks as in GPT-2 / ViT (Xiong et al. 2020, "On Layer Normalization in the Transformer
Architecture"), bidirectional attention with padded keys masked out, each block's output projections
zero-initialised so that it starts as the identity. Outputs at padded positions
are set to exactly zero, so a network that reads the context without the mask sees the same
(zero) padding for every prompt.

`SmallTextConditioner` pairs it with a `WordTokenizer` and implements `TextConditioner`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.layers import ArchConfig, check_positive
from .tokenizer import WordTokenizer

__all__ = ["SmallTextEncoderConfig", "SmallTextEncoder", "SmallTextConditioner"]


@dataclass(frozen=True)
class SmallTextEncoderConfig(ArchConfig):
    """Everything that decides the encoder's architecture; saved next to the weights as JSON."""

    vocab_size: int
    dim: int = 128
    depth: int = 2
    heads: int = 4
    max_length: int = 32  # longest token sequence (bos + words + eos); sets the learned positions
    mlp_ratio: float = 4.0
    dropout: float = 0.0  # on attention weights and the MLP's hidden activations

    name = "small-text-encoder"

    def __post_init__(self) -> None:
        check_positive("SmallTextEncoderConfig", vocab_size=self.vocab_size, dim=self.dim, depth=self.depth,
                       heads=self.heads, max_length=self.max_length)
        if self.dim % self.heads != 0:
            raise ValueError(f"SmallTextEncoderConfig.dim {self.dim} is not divisible by heads={self.heads}")
        if self.max_length < 2:
            raise ValueError(f"SmallTextEncoderConfig.max_length must be >= 2 (bos and eos), got {self.max_length}")
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"SmallTextEncoderConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"SmallTextEncoderConfig.dropout must be in [0, 1), got {self.dropout!r}")


class _Block(nn.Module):
    """x + SelfAttn(LN(x)) with padded keys masked; then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, D // self.heads)).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, H, L, D/H); key_mask (B, 1, 1, L): True = attend
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(h.transpose(1, 2).reshape(B, L, D))
        return x + self.mlp(self.norm2(x))


class SmallTextEncoder(nn.Module):
    """`encoder(ids, mask) -> (context (B, L, dim), mask)`; ids (B, L) long, mask (B, L) bool, L <= max_length."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        depth: int = 2,
        heads: int = 4,
        max_length: int = 32,
        *,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        cfg = self.cfg = SmallTextEncoderConfig(vocab_size, dim, depth, heads, max_length, mlp_ratio, dropout)
        self.token_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.max_length, cfg.dim))  # (max_length, dim), learned
        self.blocks = nn.ModuleList(_Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        # Unit-scale embeddings (N(0, 1), nn.Embedding's own default). Adam moves every weight by about
        # lr per step whatever its gradient's size, so a weight changes by ~lr/|w| of itself per step.
        # At GPT-2's std 0.02 and the net's lr 3e-3 that is ~15% of each word vector per step, and the
        # blocks' output projections (fed by a unit-scale LN) soon outweighed the 0.02-scale residual
        # stream: every position then carried the same prompt-wide mix and the words became one
        # vector (the collapse of joint training, docs/benchmarks.md "Why joint training collapsed").
        # Unit scale keeps them apart at text.lr_scale <= 0.3; at 1 the blocks still outgrow them.
        nn.init.normal_(self.token_emb.weight, std=1.0)
        nn.init.normal_(self.pos_emb, std=1.0)
        # Every block starts as the identity (zero output projections, as the U-Net's blocks do), so
        # the initial context of a token is LN(word + position embedding): all words are told apart
        # from the first step. With randomly initialised blocks a large shared component swamped
        # most words, and jointly training such an encoder on shapes ended up reading only colours.
        for block in self.blocks:
            for layer in (block.proj, block.mlp[-1]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | SmallTextEncoderConfig) -> "SmallTextEncoder":
        cfg = config if isinstance(config, SmallTextEncoderConfig) else SmallTextEncoderConfig.from_dict(config)
        return cls(cfg.vocab_size, cfg.dim, cfg.depth, cfg.heads, cfg.max_length, mlp_ratio=cfg.mlp_ratio,
                   dropout=cfg.dropout)

    @property
    def config(self) -> dict:
        """JSON-ready architecture description; `SmallTextEncoder.from_config(enc.config)` rebuilds it."""
        return self.cfg.to_dict()

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be a long tensor (B, L), got {ids.dtype} {tuple(ids.shape)}")
        B, L = ids.shape
        if L > cfg.max_length:
            raise ValueError(f"sequence length {L} exceeds this encoder's max_length={cfg.max_length}")
        if tuple(mask.shape) != (B, L) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of the ids' shape ({B}, {L}), got {mask.dtype} {tuple(mask.shape)}")
        if B and not bool(mask.any(dim=1).all()):
            raise ValueError("every row of mask needs at least one True (real) token; encode '' as [bos][eos]")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= cfg.vocab_size):
            raise ValueError(f"token ids must lie in [0, {cfg.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
        x = self.token_emb(ids) + self.pos_emb[:L]  # (B, L, dim)
        key_mask = mask[:, None, None, :]  # (B, 1, 1, L)
        for block in self.blocks:
            x = block(x, key_mask)
        x = self.norm(x) * mask[..., None].to(x.dtype)  # (B, L, dim), exactly zero at padding
        return x, mask


class SmallTextConditioner(nn.Module):
    """`TextConditioner` of a `WordTokenizer` + `SmallTextEncoder`, trained jointly with the denoiser.

    `encode` keeps gradients (the encoder learns with the diffusion loss); the empty prompt "" is
    encoded as [bos][eos] like any other prompt, so its context is learned through caption
    dropout - this is the null condition for classifier-free guidance.
    """

    def __init__(self, tokenizer: WordTokenizer, encoder: SmallTextEncoder | None = None, **encoder_kwargs: Any) -> None:
        super().__init__()
        if encoder is None:
            encoder = SmallTextEncoder(tokenizer.vocab_size, **encoder_kwargs)
        elif encoder_kwargs:
            raise TypeError(f"pass either an encoder or encoder keyword arguments, not both (got {sorted(encoder_kwargs)})")
        if encoder.cfg.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"encoder vocab_size {encoder.cfg.vocab_size} != tokenizer vocab_size {tokenizer.vocab_size}")
        self.tokenizer = tokenizer
        self.encoder = encoder

    @property
    def context_dim(self) -> int:
        return self.encoder.cfg.dim

    @property
    def max_length(self) -> int:
        return self.encoder.cfg.max_length

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """prompts -> (context (B, max_length, context_dim), mask (B, max_length) bool) on the encoder's device."""
        ids, mask = self.tokenizer.encode(prompts, self.max_length)
        device = self.encoder.pos_emb.device
        return self.encoder(ids.to(device), mask.to(device))

    def encode_empty(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The null condition: `encode([""] * batch_size)`."""
        return self.encode([""] * batch_size)

    @property
    def config(self) -> dict:
        """JSON-ready: tokenizer vocabulary and encoder architecture (weights are in `state_dict()`)."""
        return {"name": "small", "tokenizer": self.tokenizer.to_dict(), "encoder": self.encoder.config}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SmallTextConditioner":
        if config.get("name") != "small":
            raise ValueError(f"not a small text conditioner config (name {config.get('name')!r}, expected 'small')")
        return cls(WordTokenizer.from_dict(config["tokenizer"]), SmallTextEncoder.from_config(config["encoder"]))
