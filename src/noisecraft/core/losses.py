"""Training losses: draw σ from a noise-level distribution, noise the data, weight the x0 error.

Every loss is expressed on the denoiser output (x0 error), because the denoiser is the one
interface; the familiar ε-, v- and velocity-losses are x0-losses with a σ-dependent weight:

    ||ε̂ - ε||² = ||D - x0||² / σ²                      ('eps'   weight 1/σ²)
    EDM λ(σ) = (σ² + σd²) / (σ·σd)²                      ('edm',  Karras et al. 2022 Eq. 8)
    min-SNR-γ on ε: min(SNR, γ)/SNR·||ε̂-ε||², SNR = 1/σ² ('min_snr', Hang et al. 2023)
    ||û - u||² = ||D - x0||²·((1+σ)/σ)²                  ('flow', rectified-flow velocity loss)
    ||D - x0||²                                          ('x0')
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import Tensor

from . import rng
from .precond import expand_sigma
from .processes import DiscreteVPProcess, Process

__all__ = [
    "NoiseLevels",
    "LogNormal",
    "LogUniform",
    "UniformTime",
    "LogitNormal",
    "WEIGHTINGS",
    "loss_weight",
    "DenoisingLoss",
]


class NoiseLevels(ABC):
    """A distribution over σ used in training."""

    @abstractmethod
    def sample(self, n: int, *, generator: rng.Generators = None, device=None) -> Tensor:
        """n levels; `generator` is one generator or one per sample (core.rng); `device` is where
        they are returned (draws happen on the generator's device)."""


class LogNormal(NoiseLevels):
    """ln σ ~ N(p_mean, p_std²) (EDM: p_mean=-1.2, p_std=1.2; EDM2: -0.4, 1.0)."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2):
        if not p_std > 0:
            raise ValueError(f"p_std must be > 0, got {p_std}")
        self.p_mean, self.p_std = p_mean, p_std

    def sample(self, n, *, generator=None, device=None):
        z = rng.randn(generator, n).to(device)
        return torch.exp(self.p_mean + self.p_std * z)


class LogUniform(NoiseLevels):
    """ln σ uniform on [ln σ_min, ln σ_max]."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.lo, self.hi = math.log(sigma_min), math.log(sigma_max)

    def sample(self, n, *, generator=None, device=None):
        u = rng.rand(generator, n).to(device)
        return torch.exp(self.lo + (self.hi - self.lo) * u)


class UniformTime(NoiseLevels):
    """t uniform over the process's time range, σ = σ(t) (DDPM: integer timesteps)."""

    def __init__(self, process: Process):
        self.process = process

    def sample(self, n, *, generator=None, device=None):
        p = self.process
        if isinstance(p, DiscreteVPProcess):
            t = rng.randint(generator, 0, p.num_steps, n).to(device, torch.float64)
        else:
            u = rng.rand(generator, n, dtype=torch.float64).to(device)
            t = p.t_min + (p.t_max - p.t_min) * u
        return p.sigma(t).float()


class LogitNormal(NoiseLevels):
    """Flow matching (Esser et al. 2024, SD3): t = sigmoid(N(m, s²)), σ = t/(1-t)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, t_max: float = 0.999):
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.mean, self.std, self.t_max = mean, std, t_max

    def sample(self, n, *, generator=None, device=None):
        z = rng.randn(generator, n).to(device)
        t = torch.sigmoid(self.mean + self.std * z).clamp(1e-5, self.t_max)
        return t / (1 - t)


def _edm(sigma, sigma_data, gamma):
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


WEIGHTINGS: dict[str, Callable[[Tensor, float, float], Tensor]] = {
    "edm": _edm,
    "eps": lambda sigma, sd, gamma: sigma.pow(-2),
    "min_snr": lambda sigma, sd, gamma: torch.clamp(sigma.pow(-2), max=gamma),
    "flow": lambda sigma, sd, gamma: ((1 + sigma) / sigma) ** 2,
    "x0": lambda sigma, sd, gamma: torch.ones_like(sigma),
}


def loss_weight(name: str, sigma: Tensor, sigma_data: float = 0.5, gamma: float = 5.0) -> Tensor:
    """λ(σ) multiplying ||D - x0||² for the named weighting."""
    try:
        fn = WEIGHTINGS[name]
    except KeyError:
        raise ValueError(f"unknown loss weighting {name!r}; valid: {', '.join(WEIGHTINGS)}") from None
    return fn(sigma, sigma_data, gamma)


class DenoisingLoss:
    """`loss(denoiser, x0, **cond) -> scalar`: σ ~ levels, x = x0 + σ·ε, mean of λ(σ)·||D(x,σ) - x0||².

    `generator` makes σ and ε reproducible: one generator, or one per sample (core.rng; training
    passes those so the draws do not depend on the batch split); the per-element mean keeps the
    scale independent of the data size.
    """

    def __init__(self, levels: NoiseLevels, weighting: str = "edm", sigma_data: float = 0.5, gamma: float = 5.0):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
        self.levels, self.weighting, self.sigma_data, self.gamma = levels, weighting, sigma_data, gamma

    def __call__(self, denoiser, x0: Tensor, *, generator: rng.Generators = None, **cond) -> Tensor:
        # Draw on the generator's device (a CPU generator can drive a CUDA run), so a seed gives the
        # same σ and ε on every device.
        gdev = rng.generator_device(generator) or x0.device
        sigma = self.levels.sample(x0.shape[0], generator=generator, device=gdev).to(x0.device, x0.dtype)
        if generator is None:
            noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype)
        else:
            noise = rng.randn(generator, x0.shape[0], *x0.shape[1:], dtype=x0.dtype).to(x0.device)
        x = x0 + expand_sigma(sigma, x0) * noise
        denoised = denoiser(x, sigma, **cond)
        w = expand_sigma(loss_weight(self.weighting, sigma, self.sigma_data, self.gamma), x0)
        return (w * (denoised - x0) ** 2).mean()
