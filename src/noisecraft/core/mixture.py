"""A Gaussian mixture whose denoiser, score and density are exact: the test oracle for samplers,
guidance, inverse problems and likelihoods (the idea of EDM2's toy example).

p0 = Σ_k w_k N(μ_k, diag(c_k²)). Under x = x0 + σ·ε every component stays Gaussian,
p_σ = Σ_k w_k N(μ_k, diag(c_k² + σ²)), and the posterior mean is

    E[x0 | x] = Σ_k r_k(x) (μ_k + c_k²/(c_k² + σ²)·(x - μ_k)),   r_k = posterior component weight.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["GaussianMixture"]


class GaussianMixture:
    """Exact σ-space quantities for a diagonal Gaussian mixture over vectors of dimension D.

    means (K, D), stds (K,) or (K, D), weights (K,) (normalized here). Inputs x may have any shape
    (B, ...) with prod(...) = D; outputs keep x's shape and dtype (math in float64).
    """

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor | None = None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2:
            raise ValueError(f"means must be (K, D), got shape {tuple(means.shape)}")
        k, d = means.shape
        stds = torch.as_tensor(stds, dtype=torch.float64)
        stds = stds.reshape(k, 1).expand(k, d) if stds.ndim <= 1 else stds
        if stds.shape != (k, d) or not (stds > 0).all():
            raise ValueError("stds must be positive, shaped (K,) or (K, D)")
        weights = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,) or not (weights > 0).all():
            raise ValueError("weights must be positive, shaped (K,)")
        self.means, self.vars, self.weights = means, stds.clone() ** 2, weights / weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _flat(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        if flat.shape[1] != self.dim:
            raise ValueError(f"x has {flat.shape[1]} values per sample, the mixture has dimension {self.dim}")
        return flat

    def _sigma2(self, sigma: Tensor | float, b: int) -> Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64)
        return (s.expand(b) if s.ndim == 0 else s.reshape(b)).reshape(b, 1, 1) ** 2

    def component_log_probs(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """log(w_k N(x; μ_k, c_k² + σ²)) for each sample and component: (B, K)."""
        xf = self._flat(x)
        var = self.vars.unsqueeze(0) + self._sigma2(sigma, xf.shape[0])  # (B, K, D)
        diff = xf.unsqueeze(1) - self.means.unsqueeze(0)
        logn = -0.5 * ((diff**2) / var + torch.log(2 * math.pi * var)).sum(-1)
        return logn + torch.log(self.weights)

    def log_prob(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """log p_σ(x) in nats per sample: (B,)."""
        return torch.logsumexp(self.component_log_probs(x, sigma), dim=1)

    def posterior_weights(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        return torch.softmax(self.component_log_probs(x, sigma), dim=1)

    def _shared_sigma(self, sigma: Tensor | float) -> float | None:
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        return float(s[0]) if s.numel() == 1 or bool((s == s[0]).all()) else None

    def _denoise_shared(self, xf: Tensor, sig: float) -> Tensor:
        """Same math when the batch shares one σ (every solver call): per-component terms are (K, D)
        and the sums over D are matrix products,
            Σ_d (x - μ)²/v = x²·(1/v) - 2x·(μ/v) + Σ μ²/v."""
        var = self.vars + sig**2  # (K, D)
        inv = 1 / var
        quad = (xf**2) @ inv.T - 2 * xf @ (self.means * inv).T + (self.means**2 * inv).sum(1)  # (B, K)
        logp = -0.5 * (quad + torch.log(2 * math.pi * var).sum(1)) + torch.log(self.weights)
        r = torch.softmax(logp, dim=1)  # (B, K)
        shrink = self.vars * inv  # (K, D)
        return r @ ((1 - shrink) * self.means) + xf * (r @ shrink)

    def denoise(self, x: Tensor, sigma: Tensor | float, **_: object) -> Tensor:
        """E[x0 | x] at noise level σ (shape (B,) or scalar)."""
        xf = self._flat(x)
        shared = self._shared_sigma(sigma)
        if shared is not None:
            return self._denoise_shared(xf, shared).reshape(x.shape).to(x.dtype)
        s2 = self._sigma2(sigma, xf.shape[0])
        r = self.posterior_weights(x, sigma).unsqueeze(-1)  # (B, K, 1)
        shrink = self.vars.unsqueeze(0) / (self.vars.unsqueeze(0) + s2)
        comp = self.means.unsqueeze(0) + shrink * (xf.unsqueeze(1) - self.means.unsqueeze(0))
        return (r * comp).sum(1).reshape(x.shape).to(x.dtype)

    __call__ = denoise

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """∇_x log p_σ(x) = (E[x0|x] - x)/σ² (Tweedie)."""
        xf = self._flat(x)
        s2 = self._sigma2(sigma, xf.shape[0])
        r = self.posterior_weights(x, sigma).unsqueeze(-1)
        comp = -(xf.unsqueeze(1) - self.means.unsqueeze(0)) / (self.vars.unsqueeze(0) + s2)
        return (r * comp).sum(1).reshape(x.shape).to(x.dtype)

    def sample(self, n: int, *, generator: torch.Generator | None = None, sigma: float = 0.0) -> Tensor:
        """n draws from p_σ (float64, shape (n, D))."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[comp] + torch.sqrt(self.vars[comp] + sigma**2) * z

    def mean(self) -> Tensor:
        return (self.weights.unsqueeze(1) * self.means).sum(0)
