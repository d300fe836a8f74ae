"""Oracles for inference tasks: exact posteriors of Gaussian mixtures under linear measurements.
(A plain module, not conftest, so that test files can import it by a unique name.)"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from noisecraft import GaussianMixture


def dense_matrix(operator, shape) -> Tensor:
    """The operator as a dense (M, D) matrix, by applying it to the basis of x's (1, *shape) space."""
    d = math.prod(shape)
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return operator.forward(basis).reshape(d, -1).T


def linear_posterior(mix: GaussianMixture, A: Tensor, y: Tensor, sigma_y: float) -> tuple[Tensor, Tensor]:
    """Exact p(x0 | y) for x0 ~ mixture, y = A·x0 + σ_y·n (A dense (M, D), y (M,)): it is again a
    Gaussian mixture with weights w_k·N(y; A·μ_k, A·C_k·Aᵀ + σ_y²) (renormalized) and component
    means μ_k + C_k·Aᵀ·S_k⁻¹·(y - A·μ_k). Returns (posterior weights (K,), posterior mean (D,))."""
    logw, means = [], []
    eye = torch.eye(A.shape[0], dtype=torch.float64)
    for k in range(mix.means.shape[0]):
        cov, mu = torch.diag(mix.vars[k]), mix.means[k]
        s = A @ cov @ A.T + sigma_y**2 * eye
        r = y - A @ mu
        sol = torch.linalg.solve(s, r)
        logw.append(torch.log(mix.weights[k]) - 0.5 * (r @ sol) - 0.5 * torch.logdet(2 * math.pi * s))
        means.append(mu + cov @ A.T @ sol)
    w = torch.softmax(torch.stack(logw), 0)
    return w, (w[:, None] * torch.stack(means)).sum(0)


def component_frequencies(mix: GaussianMixture, x: Tensor) -> Tensor:
    """Fraction of samples whose most likely component is k, (K,)."""
    comp = mix.component_log_probs(x).argmax(1)
    return torch.bincount(comp, minlength=mix.means.shape[0]).double() / x.shape[0]
