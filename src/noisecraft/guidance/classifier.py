"""Classifier guidance (Dhariwal & Nichol 2021, Sec. 4) with a noise-aware classifier
`classifier(x, sigma) -> logits (B, num_classes)` trained on noisy inputs x = x0 + σ·ε.

Bayes' rule on the noisy marginal: ∇ log p_σ(x | y) = ∇ log p_σ(x) + ∇ log p_σ(y | x). By Tweedie,
D(x, σ) = x + σ²·∇ log p_σ(x), so shifting the score shifts the denoiser:

    D_w(x, σ, y) = D(x, σ) + w·σ²·∇_x log p_σ(y | x).

With an exact classifier and w = 1 this is the exact class-conditional denoiser, and for any w it
equals classifier-free guidance with weight w (σ²·∇ log p(y|x) = D(x|y) - D(x)).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..core.losses import NoiseLevels
from ..core.precond import expand_sigma
from .combine import check_weight

__all__ = ["classifier_guidance", "class_log_likelihood", "NoisyClassifierLoss"]


def class_log_likelihood(logits: Tensor, labels: Tensor) -> Tensor:
    """log p(y | x) per sample (B,) for integer labels (B,) or float one-hot/soft rows (B, K).
    An all-zero row ("no label") gives 0, i.e. no guidance for that sample."""
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"classifier must return logits (B, num_classes) for B = {labels.shape[0]}, got shape {tuple(logits.shape)}"
        )
    logp = torch.log_softmax(logits, dim=-1)
    if labels.is_floating_point():
        if labels.shape != logits.shape:
            raise ValueError(f"one-hot labels {tuple(labels.shape)} do not match the classifier's logits {tuple(logits.shape)}")
        return (labels.to(logp.dtype) * logp).sum(-1)
    if labels.ndim != 1:
        raise ValueError(f"integer labels must have shape (B,), got {tuple(labels.shape)}")
    k = logits.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"labels must be in 0..{k - 1} for a classifier with {k} classes, got {labels.tolist()}")
    return logp.gather(1, labels.long().unsqueeze(1)).squeeze(1)


def classifier_guidance(
    denoiser: Callable[..., Tensor],
    classifier: Callable[[Tensor, Tensor], Tensor],
    weight: float,
    *,
    key: str = "class_labels",
    pass_labels: bool = False,
) -> Callable[..., Tensor]:
    """Guide `denoiser` towards the labels given as `key=...` with classifier gradients.

    weight: w >= 0 (0 = the unguided denoiser). pass_labels: also give the labels to the denoiser
    (a conditional model guided further, as in Dhariwal & Nichol); by default the denoiser is
    unconditional and sees the other conditioning only.
    """
    weight = check_weight(weight, "classifier guidance weight")

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        labels = cond.get(key)
        if labels is None:
            raise ValueError(f"classifier guidance needs {key}=... in the conditioning; got keys {sorted(cond)}")
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sig = sig.expand(x.shape[0]) if sig.ndim == 0 else sig.reshape(x.shape[0])
        den_cond = cond if pass_labels else {k: v for k, v in cond.items() if k != key}
        d = denoiser(x, sig, **den_cond)
        if weight == 0.0:
            return d
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            ll = class_log_likelihood(classifier(xg, sig), labels)
            (grad,) = torch.autograd.grad(ll.sum(), xg)  # samples are independent: per-sample gradients
        return d + weight * expand_sigma(sig, x) ** 2 * grad.to(d.dtype)

    return guided


class NoisyClassifierLoss:
    """`loss(classifier, x0, labels) -> scalar`: draws σ ~ levels like the denoising losses, noises
    x = x0 + σ·ε and returns the cross-entropy of classifier(x, σ) against the labels (integer (B,)
    or one-hot/soft float (B, K); all-zero rows contribute nothing). `generator` makes it
    reproducible. Train the classifier on the σ range the sampler visits."""

    def __init__(self, levels: NoiseLevels):
        if not isinstance(levels, NoiseLevels):
            raise ValueError(f"levels must be a NoiseLevels distribution (e.g. LogNormal()), got {type(levels).__name__}")
        self.levels = levels

    def __call__(self, classifier: Callable[[Tensor, Tensor], Tensor], x0: Tensor, labels: Tensor, *,
                 generator: torch.Generator | None = None) -> Tensor:
        if labels.shape[0] != x0.shape[0]:
            raise ValueError(f"got {labels.shape[0]} labels for a batch of {x0.shape[0]}")
        sigma = self.levels.sample(x0.shape[0], generator=generator, device=x0.device).to(x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        logits = classifier(x0 + expand_sigma(sigma, x0) * noise, sigma)
        return -class_log_likelihood(logits, labels).mean()
