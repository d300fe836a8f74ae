"""Pieces shared by the denoiser networks: the conditioning embedding, attention, checks.

Every network in `noisecraft.nets` has the same call:

    net(x, c_noise, class_labels=None, context=None) -> Tensor of x's shape

* `x` (B, C, *spatial) has `dims` spatial axes: (B, C, L) audio (dims=1), (B, C, H, W) images
  (dims=2), (B, C, T, H, W) video (dims=3). `SPATIAL_AXES` names them in error messages.

* `c_noise` (B,) is whatever scalar the training process feeds the net: ¼·ln σ (EDM, about
  [-2, 2]), a time t in [0, 1] (flow matching, continuous VP) or a DDPM step in [0, 999].
  `NoiseEmbedding` covers all three with sinusoids whose periods are log-spaced over six decades.
* `class_labels` is None, class indices (B,) or a float (B, num_classes) one-hot / soft label.
  An all-zero row means "no label": with a bias-free linear class embedding it adds exactly
  nothing, which is how classifier-free guidance drops labels without a magic null class.
* `context` (B, L, context_dim) is a token sequence (e.g. text-encoder output) read by
  cross-attention; None means "no context" and skips the cross-attention layers.
  `context_mask` (B, L) bool, keyword-only, marks its real tokens (True) so that padded keys are
  ignored; a row with no real token makes the cross-attention add nothing for that sample.
* `guidance` (B,) float, keyword-only, is a classifier-free guidance weight w fed to a net built
  with `guidance_embedding=True` (a guidance-distilled student, Meng et al. 2023): required exactly
  then. Its embedding is added to the noise embedding and starts at zero (`GuidanceEmbedding`).
* `params` (B, num_params) float, keyword-only, are continuous physical parameters (e.g. a length
  scale), each normalized to about [-1, 1] by its conditioner, fed to a net built with
  `num_params > 0`: required exactly then. NaN marks a parameter as "not given" for that sample (it
  then adds exactly nothing), which is how classifier-free guidance drops it (`ParamEmbedding`).
* `image_cond` (B, cond_channels, *spatial), keyword-only, is a signal of x's spatial size
  concatenated to x along the channels at the input (SR3 / Palette-style conditioning: a low-res image, a masked image and its
  mask); required exactly when the net was built with `cond_channels > 0`.

Nothing here knows about diffusion processes; this module imports only torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Attention",
    "CONV",
    "ConditionedNet",
    "GuidanceEmbedding",
    "ParamEmbedding",
    "SPATIAL_AXES",
    "ArchConfig",
    "check_positive",
    "NoiseEmbedding",
    "check_context",
    "check_dims",
    "check_divisible",
    "pool_context",
    "sincos_code",
    "check_image_cond",
    "check_guidance",
    "check_params",
    "check_inputs",
    "class_onehot",
    "group_norm",
    "num_groups",
]


class NoiseEmbedding(nn.Module):
    """c_noise (B,) -> (B, dim): log-spaced sinusoidal features, then a two-layer MLP.

    The periods run geometrically from `min_period` to `max_period` so that one embedding serves
    every noise conditioning in use: ¼·ln σ varies on scales of ~0.1-5, t in [0, 1] on ~0.01-1,
    and DDPM steps on ~1-1000. Features far too fast or too slow for a given range are (nearly)
    constant or aliased, and the MLP learns to ignore them. The transformer-style embedding
    (Vaswani et al. 2017; Ho et al. 2020) is the special case of periods 2π..2π·10⁴.
    """

    def __init__(
        self,
        dim: int,
        num_frequencies: int = 128,
        min_period: float = 1e-2,
        max_period: float = 1e4,
    ) -> None:
        super().__init__()
        periods = torch.logspace(math.log10(min_period), math.log10(max_period), num_frequencies, dtype=torch.float64)
        # A derived constant, not state: kept out of the state dict.
        self.register_buffer("freqs", (2 * math.pi / periods).float(), persistent=False)  # (F,)
        self.mlp = nn.Sequential(nn.Linear(2 * num_frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        # Phases in float32 even under autocast: c·2π/1e-2 reaches ~6e5 rad for DDPM steps.
        phase = c_noise.float()[:, None] * self.freqs[None, :]  # (B, F)
        feats = torch.cat([phase.cos(), phase.sin()], dim=1)  # (B, 2F)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))  # (B, dim)


class GuidanceEmbedding(NoiseEmbedding):
    """A guidance weight w (B,) -> (B, dim): sinusoidal features of w (periods 0.1..1000, so slow
    ones are ~linear over the usual w in [0, 10]) through a two-layer MLP whose output layer starts
    at zero. Added to the noise embedding of a guidance-distilled student (Meng et al. 2023, "On
    Distillation of Guided Diffusion Models", Sec. 4: w is embedded like the time step); the zero
    start makes a student built from its teacher's weights compute exactly the teacher's function."""

    def __init__(self, dim: int, num_frequencies: int = 32, min_period: float = 0.1, max_period: float = 1e3) -> None:
        super().__init__(dim, num_frequencies, min_period, max_period)
        self.reset_output()

    def reset_output(self) -> None:
        """Zero the output layer (w adds nothing until trained)."""
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)


class ParamEmbedding(nn.Module):
    """Continuous parameters p (B, P), each about in [-1, 1], -> (B, dim): per parameter, sinusoidal
    features (periods 0.25..100, so the slow ones are ~linear over [-1, 1] and the fast ones resolve
    ~0.05 steps) through its own two-layer MLP, summed over the parameters that are given. A NaN entry
    means "not given" and contributes exactly zero, so classifier-free guidance can drop any subset of
    the parameters (as an all-zero class row drops a label). Embedding a scalar like the time step is
    the usual treatment of continuous conditions (e.g. the guidance weight, Meng et al. 2023, Sec. 4)."""

    def __init__(self, num_params: int, dim: int, num_frequencies: int = 32) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(NoiseEmbedding(dim, num_frequencies, 0.25, 100.0) for _ in range(num_params))

    def forward(self, params: Tensor) -> Tensor:
        out = None
        for i, mlp in enumerate(self.mlps):
            p = params[:, i].float()
            given = ~torch.isnan(p)
            e = mlp(torch.where(given, p, torch.zeros_like(p)))
            e = e * given[:, None].to(e.dtype)
            out = e if out is None else out + e
        assert out is not None  # num_params >= 1
        return out


class ConditionedNet(nn.Module):
    """Base of the denoiser nets: the one conditioning embedding they all share.

        emb = SiLU(MLP(Fourier(c_noise)) + W_class·onehot(label) [+ W_ctx·pool(context) + b])   (B, dim)

    `add_condition_embedding` creates the layers as the net's own attributes `noise_emb`,
    `class_emb` (bias-free, so an all-zero label row adds exactly nothing) and `context_emb`
    (only with `pooled_context`). They sit on the net itself rather than in a submodule so that
    the parameter names (`noise_emb.mlp.0.weight`, ...) stay those of the runs saved before this
    class existed; nets call it where they always built these layers, so seeded inits and the
    parameter order are unchanged too.

    With `guidance=True` a `guidance_emb` (`GuidanceEmbedding`, zero output at init) adds an
    embedding of the guidance weight w; with `num_params > 0` a `params_emb` (`ParamEmbedding`) adds
    one of continuous parameters. Both draw their init from a forked RNG, so the other layers' seeded
    inits are those of the same net without them.
    """

    noise_emb: NoiseEmbedding
    class_emb: nn.Linear | None
    context_emb: nn.Linear | None
    guidance_emb: GuidanceEmbedding | None
    params_emb: ParamEmbedding | None

    def add_condition_embedding(self, dim: int, num_classes: int, context_dim: int, pooled_context: bool,
                                guidance: bool = False, num_params: int = 0) -> None:
        self.noise_emb = NoiseEmbedding(dim)
        self.class_emb = nn.Linear(num_classes, dim, bias=False) if num_classes else None
        self.context_emb = nn.Linear(context_dim, dim) if context_dim and pooled_context else None
        self.guidance_emb = None
        self.params_emb = None
        if guidance:
            with torch.random.fork_rng(devices=[]):  # leave the global stream to the layers built next
                self.guidance_emb = GuidanceEmbedding(dim)
        if num_params:
            with torch.random.fork_rng(devices=[]):
                self.params_emb = ParamEmbedding(num_params, dim)

    def embed_condition(
        self,
        c_noise: Tensor,
        class_labels: Tensor | None,
        context: Tensor | None,
        context_mask: Tensor | None,
        dtype: torch.dtype,
        guidance: Tensor | None = None,
        params: Tensor | None = None,
    ) -> Tensor:
        """c_noise (B,), labels, context, guidance weight, parameters -> the conditioning vector (B, dim),
        already through SiLU.

        The class labels, the guidance weight and the parameters are checked here (`class_onehot`,
        `check_guidance`, `check_params`); c_noise and the context by the caller (`check_inputs`, `check_context`).
        """
        w = check_guidance(guidance, self.guidance_emb is not None, c_noise.shape[0])
        num_params = 0 if self.params_emb is None else len(self.params_emb.mlps)
        p = check_params(params, num_params, c_noise.shape[0])
        num_classes = 0 if self.class_emb is None else self.class_emb.in_features
        onehot = class_onehot(class_labels, num_classes, c_noise.shape[0], dtype)
        emb = self.noise_emb(c_noise)  # (B, dim)
        if onehot is not None:
            assert self.class_emb is not None
            emb = emb + self.class_emb(onehot)  # a zero row adds exactly nothing
        if self.context_emb is not None and context is not None:
            emb = emb + self.context_emb(pool_context(context, context_mask))  # the prompt as a whole (B, dim)
        if w is not None:
            assert self.guidance_emb is not None
            emb = emb + self.guidance_emb(w.to(c_noise.device))  # zero until trained
        if p is not None:
            assert self.params_emb is not None
            emb = emb + self.params_emb(p.to(c_noise.device)).to(emb.dtype)  # a NaN (not given) adds nothing
        return F.silu(emb)  # shared by every block's modulation


class Attention(nn.Module):
    """Multi-head scaled dot-product attention on tokens x (B, N, dim).

    Self-attention when `context_dim` is None; otherwise cross-attention whose keys and values
    come from `context` (B, L, context_dim). The output projection is zero-initialised by the
    caller where a residual branch should start as the identity.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.is_cross = context_dim is not None
        if self.is_cross:
            self.q = nn.Linear(dim, dim, bias=bias)
            self.kv = nn.Linear(context_dim, 2 * dim, bias=bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        """context_mask (B, L) bool (True = real token): padded keys get no attention weight. A row
        with no real token at all attends to nothing, and its output is exactly zero (not NaN)."""
        B, N, D = x.shape
        H = self.num_heads
        if self.is_cross:
            if context is None:
                raise ValueError("cross-attention needs a context tensor (B, L, context_dim), got None")
            q = self.q(x)  # (B, N, D)
            k, v = self.kv(context).chunk(2, dim=-1)  # (B, L, D) each
        else:
            if context_mask is not None:
                raise ValueError("context_mask is only valid for cross-attention (built with context_dim)")
            q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, N, D) each

        def heads(t: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, D/H)
            return t.unflatten(-1, (H, D // H)).transpose(1, 2)

        attn_mask, empty = None, None
        if context_mask is not None:
            keep = context_mask.to(device=x.device, dtype=torch.bool)  # (B, L)
            empty = ~keep.any(dim=1)  # (B,) rows with nothing to attend to
            # SDPA gives NaN for a fully masked row; let such rows attend everywhere, then zero them.
            attn_mask = (keep | empty[:, None])[:, None, None, :]  # (B, 1, 1, L), broadcast over heads and queries
        h = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=attn_mask)  # (B, H, N, D/H)
        out = self.out(h.transpose(1, 2).reshape(B, N, D))  # (B, N, D)
        if empty is not None:
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out


def num_groups(channels: int, max_groups: int = 32, min_group_channels: int = 4) -> int:
    """The number of GroupNorm groups for `channels`: the largest divisor of `channels` that is
    at most `max_groups` and leaves at least `min_group_channels` channels per group (or 1)."""
    for g in range(min(max_groups, channels // min_group_channels), 1, -1):
        if channels % g == 0:
            return g
    return 1


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups(channels), channels, eps=1e-6, affine=affine)


def class_onehot(class_labels: Tensor | None, num_classes: int, batch_size: int, dtype: torch.dtype) -> Tensor | None:
    """Validate `class_labels` and return them as a (B, num_classes) float tensor, or None.

    Accepts None, integer indices (B,), or a float (B, num_classes) one-hot / soft label whose
    all-zero rows mean "no label".
    """
    if class_labels is None:
        return None
    shape = tuple(class_labels.shape)
    if num_classes == 0:
        raise ValueError(
            f"this network is unconditional (num_classes=0) but class_labels of shape {shape} were given; "
            "pass class_labels=None or build the net with num_classes > 0"
        )
    is_int = not class_labels.is_floating_point() and not class_labels.is_complex() and class_labels.dtype != torch.bool
    if not (class_labels.is_floating_point() or is_int):
        raise ValueError(f"class_labels must be integer indices or float one-hot rows, got dtype {class_labels.dtype}")
    if class_labels.is_floating_point():
        if shape != (batch_size, num_classes):
            raise ValueError(
                f"float class_labels must have shape (B, num_classes) = ({batch_size}, {num_classes}), got {shape}"
            )
        return class_labels.to(dtype)
    if shape != (batch_size,):
        raise ValueError(f"integer class_labels must have shape (B,) = ({batch_size},), got {shape}")
    # F.one_hot would also reject bad indices, but without naming them. The check reads two
    # numbers back from the device; it is skipped inside torch.compile graphs.
    if class_labels.numel() > 0 and not torch.compiler.is_compiling():
        lo, hi = int(class_labels.min()), int(class_labels.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"class label {bad} is out of range for num_classes={num_classes}: valid indices are 0..{num_classes - 1} "
                "(use an all-zero float row, not an index, for 'no label')"
            )
    return F.one_hot(class_labels.long(), num_classes).to(dtype)


# The names of the spatial axes of x (B, C, *spatial) for a net of each rank, for error messages.
SPATIAL_AXES: dict[int, tuple[str, ...]] = {1: ("L",), 2: ("H", "W"), 3: ("T", "H", "W")}

# The convolution for each spatial rank.
CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def check_dims(owner: str, dims: Any) -> None:
    """Raise ValueError unless `dims` (the number of spatial axes) is 1, 2 or 3."""
    if not isinstance(dims, int) or isinstance(dims, bool) or dims not in SPATIAL_AXES:
        raise ValueError(f"{owner}.dims must be 1 (audio, (C, L)), 2 (images, (C, H, W)) or 3 (video, (C, T, H, W)), "
                         f"got {dims!r}")


def shape_str(*names: Any) -> str:
    return "(" + ", ".join(str(n) for n in names) + ")"


def check_inputs(x: Tensor, c_noise: Tensor, in_channels: int, dims: int = 2) -> Tensor:
    """Check x (B, in_channels, *spatial) with `dims` spatial axes and c_noise; return c_noise as (B,).

    A 0-d c_noise is broadcast to the batch; any other shape than (B,) is an error.
    """
    if x.ndim != dims + 2 or x.shape[1] != in_channels:
        raise ValueError(f"x must have shape {shape_str('B', in_channels, *SPATIAL_AXES[dims])} for a {dims}-D net, "
                         f"got {tuple(x.shape)}")
    c_noise = torch.as_tensor(c_noise, device=x.device)
    if c_noise.ndim == 0:
        c_noise = c_noise.expand(x.shape[0])
    if tuple(c_noise.shape) != (x.shape[0],):
        raise ValueError(f"expected c_noise of shape (B,) = ({x.shape[0]},), got {tuple(c_noise.shape)}")
    return c_noise


def pool_context(context: Tensor, context_mask: Tensor | None = None) -> Tensor:
    """Masked mean of the context tokens: (B, L, D) -> (B, D); a row without real tokens gives zeros.

    Added to the noise embedding of a net built with `pooled_context=True`, as Imagen adds its
    pooled text embedding to the timestep embedding (Saharia et al. 2022, Sec. 2.2 and App. F):
    a direct, global path for the prompt next to cross-attention, which alone learns slowly.
    """
    if context_mask is None:
        return context.mean(dim=1)
    w = context_mask.to(context.dtype)[..., None]  # (B, L, 1)
    return (context * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


def check_context(context: Tensor | None, context_dim: int, batch_size: int, context_mask: Tensor | None = None) -> None:
    """Check a cross-attention context (B, L, context_dim) and its optional mask (B, L) bool;
    context None is always allowed (then the mask must be None too)."""
    if context is None:
        if context_mask is not None:
            raise ValueError(f"context_mask of shape {tuple(context_mask.shape)} was given without a context; "
                             "pass both or neither")
        return
    shape = tuple(context.shape)
    if context_dim == 0:
        raise ValueError(
            f"this network has no cross-attention (context_dim=0) but a context of shape {shape} was given; "
            "build it with context_dim > 0 or pass context=None"
        )
    if context.ndim != 3 or shape[0] != batch_size or shape[2] != context_dim:
        raise ValueError(f"expected context of shape (B, L, context_dim) = ({batch_size}, L, {context_dim}), got {shape}")
    if context_mask is not None:
        if context_mask.dtype != torch.bool or tuple(context_mask.shape) != shape[:2]:
            raise ValueError(f"expected context_mask as a bool tensor of shape (B, L) = {shape[:2]} (True = real token), "
                             f"got {context_mask.dtype} {tuple(context_mask.shape)}")


def check_guidance(guidance: Tensor | float | None, takes_guidance: bool, batch_size: int) -> Tensor | None:
    """Check a guidance-weight input against the net: required (B,) or a scalar (broadcast) for a net
    built with guidance_embedding, refused otherwise; returns it as a float (B,) tensor or None."""
    if not takes_guidance:
        if guidance is not None:
            raise ValueError("this network takes no guidance weight (built with guidance_embedding=False); "
                             "pass guidance=None, or guide it with classifier-free guidance")
        return None
    if guidance is None:
        raise ValueError("this network takes the guidance weight as an input (built with guidance_embedding=True, "
                         f"a guidance-distilled student); give guidance of shape (B,) = ({batch_size},)")
    w = torch.as_tensor(guidance, dtype=torch.float32)
    if w.ndim == 0:
        w = w.expand(batch_size)
    if tuple(w.shape) != (batch_size,):
        raise ValueError(f"expected guidance of shape (B,) = ({batch_size},), got {tuple(w.shape)}")
    return w


def check_params(params: Tensor | None, num_params: int, batch_size: int) -> Tensor | None:
    """Check a continuous-parameter input against the net: a float (B, num_params) tensor for a net built
    with num_params > 0 (finite values, or NaN for "not given"), refused otherwise; returns it or None."""
    if num_params == 0:
        if params is not None:
            raise ValueError(f"this network takes no continuous parameters (num_params=0) but params of shape "
                             f"{tuple(params.shape)} were given; pass params=None or build it with num_params > 0")
        return None
    if params is None:
        raise ValueError(f"this network takes {num_params} continuous parameter(s) (num_params={num_params}); give params "
                         f"of shape (B, num_params) = ({batch_size}, {num_params}), NaN for a parameter not given")
    if not isinstance(params, Tensor) or not params.is_floating_point() or tuple(params.shape) != (batch_size, num_params):
        got = f"{params.dtype} {tuple(params.shape)}" if isinstance(params, Tensor) else type(params).__name__
        raise ValueError(f"expected params as a float tensor of shape (B, num_params) = ({batch_size}, {num_params}), got {got}")
    if not torch.compiler.is_compiling() and bool(torch.isinf(params).any()):
        raise ValueError("params hold an infinite value; valid: finite normalized values, or NaN for a parameter not given")
    return params


def check_image_cond(image_cond: Tensor | None, cond_channels: int, x: Tensor) -> None:
    """Check a concatenation condition (B, cond_channels, *spatial) against x (B, C, *spatial).

    Required when the net was built with cond_channels > 0, refused otherwise.
    """
    if cond_channels == 0:
        if image_cond is not None:
            raise ValueError(
                f"this network takes no image condition (cond_channels=0) but image_cond of shape "
                f"{tuple(image_cond.shape)} was given; pass image_cond=None or build it with cond_channels > 0"
            )
        return
    axes = SPATIAL_AXES.get(x.ndim - 2, ("*spatial",))
    want = (x.shape[0], cond_channels, *x.shape[2:])
    pattern = shape_str("B", "cond_channels", *axes)
    if image_cond is None:
        raise ValueError(f"this network needs image_cond of shape {pattern} = {want} "
                         f"(it was built with cond_channels={cond_channels}), got None")
    if tuple(image_cond.shape) != want:
        raise ValueError(f"expected image_cond of shape {pattern} = {want}, got {tuple(image_cond.shape)}")


def check_divisible(x: Tensor, factors: tuple[int, ...], what: str) -> None:
    """Check that each spatial size of x (B, C, *spatial) is divisible by its entry of `factors`
    (1 = free); the error names the sizes, the factors and the axes."""
    sizes = tuple(x.shape[2:])
    if all(n % f == 0 for n, f in zip(sizes, factors)):
        return
    axes = SPATIAL_AXES[len(sizes)]
    by_factor: dict[int, list[str]] = {}
    for axis, f in zip(axes, factors):
        by_factor.setdefault(f, []).append(axis)

    def join(names: list[str]) -> str:  # "T", "H and W", "T, H and W"
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    need = "; ".join(f"{join(names)} {'multiples' if len(names) > 1 else 'a multiple'} of {f}"
                     for f, names in by_factor.items() if f > 1)
    free = by_factor.get(1)
    raise ValueError(f"input size {'x'.join(map(str, sizes))} ({', '.join(axes)}) is not divisible by {what}; "
                     f"this net needs {need}" + (f" ({join(free)} free)" if free else ""))


class ArchConfig:
    """Mixin for the frozen dataclass configs of the networks: a JSON-ready dict and back.

    `to_dict()` adds the architecture `name` ("unet", "dit") that `build_net_from_config` uses
    to pick the class from a fixed table; tuples become lists. `from_dict` rejects unknown keys.
    """

    name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "ArchConfig":
        config = dict(config)
        name = config.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"config name {name!r} does not match {cls.__name__} (expected {cls.name!r})")
        valid = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; valid keys: {valid}")
        return cls(**config)


def check_positive(owner: str, **values: int) -> None:
    """Raise ValueError naming the first of the integer `values` that is not an int >= 1."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{key} must be an integer >= 1, got {value!r}")


def sincos_code(coords: "list[Tensor] | tuple[Tensor, ...]", omegas: "list[Tensor] | tuple[Tensor, ...]",
                dim: int) -> Tensor:
    """Per-axis sin-cos position code (Vaswani et al. 2017), float64 (N, dim): for each axis in order,
    [sin, cos] of its coordinates (any shape, N values, row-major) times its frequencies (k,); channels
    left over are zero. `dit.sincos_pos_embed` (token indices) and the U-Net's cross-attention code
    (fractions of the side) are this with their own coordinates and frequencies."""
    parts = []
    for c, omega in zip(coords, omegas):
        phase = c.reshape(-1, 1) * omega[None, :]  # (N, k)
        parts += [phase.sin(), phase.cos()]
    pe = torch.cat(parts, dim=1)  # (N, 2·Σk)
    if pe.shape[1] < dim:
        pe = torch.cat([pe, pe.new_zeros(pe.shape[0], dim - pe.shape[1])], dim=1)
    return pe
