"""The consistency-model parameterization of a σ-space denoiser (Song et al. 2023, Sec. 3 and App. C).

A consistency function maps any point of a probability-flow ODE trajectory to its origin at σ_min,
and must satisfy the boundary condition f(x, σ_min) = x exactly. Song et al. write it as

    f(x, σ) = c_skip'(σ)·x + c_out'(σ)·F(x, σ),
    c_skip'(σ) = σd² / ((σ - σ_min)² + σd²),   c_out'(σ) = σd·(σ - σ_min) / sqrt(σ² + σd²).

With an EDM-preconditioned denoiser D = c_skip·x + c_out·F (c_skip = σd²/(σ²+σd²),
c_out = σ·σd/sqrt(σ²+σd²)) the same F gives

    f(x, σ) = a(σ)·x + b(σ)·D(x, σ),   b = (σ - σ_min)/σ,   a = c_skip'(σ) - b·c_skip(σ),

so a distilled student is stored as an ordinary run (its denoiser D) and f is this affine wrapper:
a(σ_min) = 1 and b(σ_min) = 0 hold exactly, and for σ ≫ σ_min, f ≈ D (a teacher is a good start).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from .precond import expand_sigma

__all__ = ["consistency_coefficients", "ConsistencyFunction"]


def consistency_coefficients(sigma: Tensor, sigma_min: float = 0.002, sigma_data: float = 0.5) -> tuple[Tensor, Tensor]:
    """(a(σ), b(σ)) with f = a·x + b·D (module docstring); σ of any shape, σ >= σ_min."""
    sd2 = sigma_data**2
    b = (sigma - sigma_min) / sigma
    a = sd2 / ((sigma - sigma_min) ** 2 + sd2) - b * sd2 / (sigma**2 + sd2)
    return a, b


class ConsistencyFunction:
    """f(x, σ, **cond) = a(σ)·x + b(σ)·D(x, σ, **cond): a Denoiser -> consistency-function wrapper."""

    def __init__(self, denoiser: Callable[..., Tensor], sigma_min: float = 0.002, sigma_data: float = 0.5):
        if not 0 < sigma_min:
            raise ValueError(f"sigma_min must be > 0, got {sigma_min}")
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.denoiser, self.sigma_min, self.sigma_data = denoiser, float(sigma_min), float(sigma_data)

    def __call__(self, x: Tensor, sigma: Tensor | float, **cond: Any) -> Tensor:
        s = expand_sigma(sigma, x)  # (B, 1, ...)
        a, b = consistency_coefficients(s, self.sigma_min, self.sigma_data)
        d = self.denoiser(x, s.reshape(-1), **cond)
        return a * x + b * d
