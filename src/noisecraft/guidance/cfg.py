"""Classifier-free guidance (Ho & Salimans 2022) as a Denoiser -> Denoiser wrapper.

    D_w(x, σ, c) = D(x, σ, ∅) + w·(D(x, σ, c) - D(x, σ, ∅))

∅ is "no condition". For class labels it is an all-zero row of the one-hot class input, which is
what a model trained with class dropout saw when its label was dropped (no magic null index). For
other conditioning (e.g. an empty text context) pass `uncond=`, a function that turns the
conditional keyword arguments into the unconditional ones.

w = 1 is the plain conditional model (the wrapper returns the denoiser itself), w = 0 the
unconditional one, w > 1 trades diversity for fidelity. Options:

* `interval=(σ_lo, σ_hi)`: guide only for σ ∈ (σ_lo, σ_hi] and return the conditional output
  elsewhere (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample
  and distribution quality"); guidance at high σ mostly removes diversity, at low σ it does little.
* `rescale=φ`: rescale the guided output to the conditional output's std (Lin et al. 2024,
  "Common diffusion noise schedules and sample steps are flawed", Sec. 3.4), against
  over-saturation at large w.

Both branches run as one batch of 2B when their conditioning can be stacked along the batch;
otherwise as two calls. For a denoiser that treats samples independently the results are the
same either way.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .combine import check_interval, check_rescale, check_weight, extrapolate, in_interval

__all__ = ["cfg", "cfg_weight_input", "classifier_free_guidance", "null_labels", "zero_class_labels"]

Cond = dict[str, Any]


def null_labels(class_labels: Tensor, num_classes: int | None = None) -> Tensor:
    """All-zero one-hot rows shaped like the (one-hot) labels; integer labels need num_classes."""
    if class_labels.is_floating_point():
        return torch.zeros_like(class_labels)
    if num_classes is None:
        raise ValueError("integer class labels need num_classes to build the unconditional (all-zero) rows")
    return torch.zeros(class_labels.shape[0], num_classes, dtype=torch.float32, device=class_labels.device)


def _as_onehot(class_labels: Tensor, num_classes: int | None, dtype: torch.dtype) -> Tensor:
    if not isinstance(class_labels, Tensor):
        raise ValueError(
            f"class labels must be a tensor (B,) of indices or (B, num_classes) one-hot rows, got {type(class_labels).__name__}"
        )
    if class_labels.is_floating_point():
        if class_labels.ndim != 2:
            raise ValueError(f"float class labels must be one-hot rows (B, num_classes), got shape {tuple(class_labels.shape)}")
        return class_labels.to(dtype)
    if num_classes is None:
        raise ValueError(
            "integer class labels need num_classes=... for classifier-free guidance (the unconditional "
            "input is an all-zero one-hot row); pass num_classes or one-hot float labels"
        )
    if class_labels.ndim != 1:
        raise ValueError(f"integer class labels must have shape (B,), got {tuple(class_labels.shape)}")
    if class_labels.numel() and (int(class_labels.min()) < 0 or int(class_labels.max()) >= num_classes):
        raise ValueError(f"class labels must be in 0..{num_classes - 1}, got {class_labels.tolist()}")
    return torch.nn.functional.one_hot(class_labels.long(), num_classes).to(dtype)


def zero_class_labels(
    num_classes: int | None = None, key: str = "class_labels"
) -> Callable[[Cond, Tensor], tuple[Cond, Cond]]:
    """The default (conditional, unconditional) conditioning pair: labels as one-hot rows, and the
    same with all-zero rows. Integer labels are turned into one-hot rows (the same network input)
    so both halves can be stacked into one batch."""

    def pair(cond: Cond, x: Tensor) -> tuple[Cond, Cond]:
        if cond.get(key) is None:
            raise ValueError(
                f"classifier-free guidance needs {key}=... in the conditioning (or uncond=... for other "
                f"conditioning); got keys {sorted(cond)}"
            )
        onehot = _as_onehot(cond[key], num_classes, x.dtype)
        return {**cond, key: onehot}, {**cond, key: torch.zeros_like(onehot)}

    return pair


def _stack_conds(pos: Cond, neg: Cond, batch: int) -> Cond | None:
    """One conditioning dict for the 2B batch [positive; negative], or None if they can't be stacked."""
    if pos.keys() != neg.keys():
        return None
    out: Cond = {}
    for k, a in pos.items():
        b = neg[k]
        if isinstance(a, Tensor) and isinstance(b, Tensor) and a.ndim >= 1 and a.shape[0] == batch:
            if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
                return None
            out[k] = torch.cat([a, b])
        elif a is b and not (isinstance(a, Tensor) and a.ndim >= 1):
            out[k] = a  # shared, batch-free (None, a scalar, a flag)
        else:
            return None
    return out


def evaluate_pair(
    denoiser: Callable[..., Tensor], x: Tensor, sigma: Tensor, pos: Cond, neg: Cond, batch: bool = True
) -> tuple[Tensor, Tensor]:
    """(D(x, σ, pos), D(x, σ, neg)), as one 2B call when possible."""
    b = x.shape[0]
    stacked = _stack_conds(pos, neg, b) if batch else None
    if stacked is None:
        return denoiser(x, sigma, **pos), denoiser(x, sigma, **neg)
    both = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), **stacked)  # (2B, ...)
    return both[:b], both[b:]


def _sigma_vector(sigma: Tensor | float, x: Tensor) -> Tensor:
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return s.expand(x.shape[0]) if s.ndim == 0 else s.reshape(x.shape[0])


def cfg(
    denoiser: Callable[..., Tensor],
    weight: float,
    *,
    interval: Sequence[float] | None = None,
    rescale: float = 0.0,
    uncond: Callable[[Cond], Cond] | None = None,
    num_classes: int | None = None,
    key: str = "class_labels",
    batch: bool = True,
) -> Callable[..., Tensor]:
    """Classifier-free guidance with weight `weight` (>= 0; 1 returns `denoiser` itself).

    uncond: cond -> unconditional cond, e.g. `lambda c: {**c, "context": empty}`. Default: the
        class labels under `key` replaced by all-zero rows (integer labels need `num_classes`).
    interval: (σ_lo, σ_hi): guide only for σ_lo < σ <= σ_hi; outside, the conditional output as is.
    rescale: φ ∈ [0, 1] of Lin et al. 2024 (0 = off).
    batch: evaluate both branches as one 2B batch where the conditioning allows it.
    """
    weight = check_weight(weight, "classifier-free guidance weight")
    interval = check_interval(interval)
    rescale = check_rescale(rescale)
    if weight == 1.0:
        return denoiser

    def pair(cond: Cond, x: Tensor) -> tuple[Cond, Cond]:
        if uncond is None:
            return zero_class_labels(num_classes, key)(cond, x)
        neg = uncond(dict(cond))
        if not isinstance(neg, dict):
            raise ValueError(f"uncond must return a dict of conditioning keywords, got {type(neg).__name__}")
        return cond, neg

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sigma = _sigma_vector(sigma, x)
        inside = in_interval(sigma, interval)
        if not bool(inside.any()):
            return denoiser(x, sigma, **cond)
        pos, neg = pair(cond, x)
        if weight == 0.0 and rescale == 0.0 and bool(inside.all()):
            return denoiser(x, sigma, **neg)
        d_pos, d_neg = evaluate_pair(denoiser, x, sigma, pos, neg, batch)
        out = extrapolate(d_pos, d_neg, weight, rescale)
        if not bool(inside.all()):
            out = torch.where(inside.reshape((-1,) + (1,) * (x.ndim - 1)), out, d_pos)
        return out

    return guided


def cfg_weight_input(
    denoiser: Callable[..., Tensor],
    *,
    interval: Sequence[float] | None = None,
    uncond: Callable[[Cond], Cond] | None = None,
    num_classes: int | None = None,
    key: str = "guidance",
) -> Callable[..., Tensor]:
    """Classifier-free guidance whose weight is read per sample from the keyword `key` (a (B,) tensor
    of weights >= 0), which `denoiser` does not see: D_w(x, σ, c) with a different w per row. The
    teacher of a guidance-distilled student (Meng et al. 2023, Sec. 4), whose w is drawn per sample.
    Outside `interval` the conditional output is returned; both branches run as one 2B batch."""
    interval = check_interval(interval)

    def pair(cond: Cond, x: Tensor) -> tuple[Cond, Cond]:
        if uncond is None:
            return zero_class_labels(num_classes)(cond, x)
        return cond, uncond(dict(cond))

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        if key not in cond:
            raise ValueError(f"cfg_weight_input needs the per-sample weights as {key}=... (B,), got keys {sorted(cond)}")
        w = torch.as_tensor(cond.pop(key), dtype=x.dtype, device=x.device).reshape(-1)
        if w.shape[0] != x.shape[0] or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"{key} must be {x.shape[0]} finite weights >= 0, got {w.tolist()}")
        sigma = _sigma_vector(sigma, x)
        inside = in_interval(sigma, interval)
        if not bool(inside.any()):
            return denoiser(x, sigma, **cond)
        d_pos, d_neg = evaluate_pair(denoiser, x, sigma, *pair(cond, x))
        out = extrapolate(d_pos, d_neg, w.reshape((-1,) + (1,) * (x.ndim - 1)))  # type: ignore[arg-type]
        return torch.where(inside.reshape((-1,) + (1,) * (x.ndim - 1)), out, d_pos)

    return guided


def classifier_free_guidance(
    denoiser: Callable[..., Tensor], weight: float, *, num_classes: int | None = None, key: str = "class_labels"
) -> Callable[..., Tensor]:
    """Wrap `denoiser` so calls with `key=labels` are guided with weight `weight` (1 = unchanged).
    The class-label form of `cfg` (kept for `noisecraft sample --guidance`)."""
    return cfg(denoiser, weight, num_classes=num_classes, key=key)
