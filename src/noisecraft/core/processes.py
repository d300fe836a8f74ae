"""Noise processes in the σ-space formulation (Karras et al. 2022, "EDM", Sec. 2 and Table 1).

Every forward process is written as

    x_t = s(t) · (x0 + σ(t) · ε),   ε ~ N(0, I)

so that a sampler only ever sees the *σ-space* variable x = x_t / s(t) = x0 + σ·ε and the
noise level σ. A process is therefore fully described by σ(t), s(t), the inverse t(σ) and
the two derivatives. Networks trained under a process see x_t = s·x and a time/noise
condition; `noise_condition(σ)` returns what the network was trained to receive
(t for continuous processes, the integer-like timestep for discrete DDPM).

Processes:
    VEProcess              σ(t) = t, s = 1                          (EDM / VE-SDE)
    VPProcess              continuous VP-SDE, linear β(t)            (Song et al. 2021, Eq. 33)
    DiscreteVPProcess      DDPM betas: linear, scaled-linear, cosine (Ho et al. 2020; Nichol & Dhariwal 2021)
    FlowProcess            rectified flow x_t = (1-t)·x0 + t·ε       (Lipman et al. 2023; Liu et al. 2023)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = [
    "Process",
    "VEProcess",
    "VPProcess",
    "DiscreteVPProcess",
    "FlowProcess",
    "make_betas",
    "PROCESSES",
    "get_process",
]


def _as_tensor(v: Tensor | float) -> Tensor:
    return v if isinstance(v, Tensor) else torch.as_tensor(v, dtype=torch.float64)


class Process(ABC):
    """A forward process x_t = s(t)(x0 + σ(t) ε). All methods accept and return tensors."""

    name: str = "process"
    t_min: float
    t_max: float

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def scale(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def t_of_sigma(self, sigma: Tensor) -> Tensor: ...

    def dsigma_dt(self, t: Tensor) -> Tensor:
        """dσ/dt; the default differentiates σ(t) with autograd (exact for smooth σ)."""
        return _autograd_derivative(self.sigma, t)

    def dscale_dt(self, t: Tensor) -> Tensor:
        return _autograd_derivative(self.scale, t)

    def scale_of_sigma(self, sigma: Tensor) -> Tensor:
        """s as a function of σ: the factor that turns σ-space x into the network's x_t."""
        return self.scale(self.t_of_sigma(sigma))

    def noise_condition(self, sigma: Tensor) -> Tensor:
        """What a network trained under this process receives as its time input."""
        return self.t_of_sigma(sigma)

    @property
    def sigma_min(self) -> float:
        return float(self.sigma(_as_tensor(self.t_min)))

    @property
    def sigma_max(self) -> float:
        return float(self.sigma(_as_tensor(self.t_max)))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = s(t)·(x0 + σ(t)·ε), with t of shape (B,) broadcast over the rest of x0."""
        t = _as_tensor(t).to(x0.device)
        shape = (-1,) + (1,) * (x0.ndim - 1)
        s = self.scale(t).to(x0.dtype).reshape(shape)
        sig = self.sigma(t).to(x0.dtype).reshape(shape)
        return s * (x0 + sig * noise)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma_min={self.sigma_min:.4g}, sigma_max={self.sigma_max:.4g})"


def _autograd_derivative(fn, t: Tensor) -> Tensor:
    t = _as_tensor(t).detach().to(torch.float64).requires_grad_(True)
    with torch.enable_grad():
        y = fn(t)
        (g,) = torch.autograd.grad(y.sum(), t)
    return g


class VEProcess(Process):
    """Variance exploding / EDM: σ(t) = t, s(t) = 1. The network condition is ¼·ln σ (EDM Table 1)."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"VEProcess needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.t_min, self.t_max = float(sigma_min), float(sigma_max)

    def sigma(self, t):
        return _as_tensor(t)

    def scale(self, t):
        return torch.ones_like(_as_tensor(t))

    def t_of_sigma(self, sigma):
        return _as_tensor(sigma)

    def dsigma_dt(self, t):
        return torch.ones_like(_as_tensor(t))

    def dscale_dt(self, t):
        return torch.zeros_like(_as_tensor(t))

    def noise_condition(self, sigma):
        return 0.25 * torch.log(_as_tensor(sigma))


class VPProcess(Process):
    """Continuous VP-SDE with linear β(t) = β_min + t(β_max - β_min), t ∈ [ε_t, 1].

    ᾱ(t) = exp(-(β_min t + ½(β_max - β_min) t²)),  s = sqrt(ᾱ),  σ = sqrt(1/ᾱ - 1)
    (Song et al. 2021 Eq. 33; EDM Table 1, "VP" column).
    """

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3, t_max: float = 1.0):
        if not (beta_max > beta_min > 0):
            raise ValueError(f"VPProcess needs beta_max > beta_min > 0, got {beta_min}, {beta_max}")
        if not (0 < t_min < t_max <= 1):
            raise ValueError(f"VPProcess needs 0 < t_min < t_max <= 1, got {t_min}, {t_max}")
        self.beta_min, self.beta_d = float(beta_min), float(beta_max - beta_min)
        self.t_min, self.t_max = float(t_min), float(t_max)

    def _log_alpha_bar(self, t: Tensor) -> Tensor:
        return -(self.beta_min * t + 0.5 * self.beta_d * t**2)

    def sigma(self, t):
        t = _as_tensor(t)
        return torch.sqrt(torch.expm1(-self._log_alpha_bar(t)))

    def scale(self, t):
        t = _as_tensor(t)
        return torch.exp(0.5 * self._log_alpha_bar(t))

    def t_of_sigma(self, sigma):
        # Solve ½β_d t² + β_min t = ln(1 + σ²) for t ≥ 0.
        c = torch.log1p(_as_tensor(sigma) ** 2)
        return (torch.sqrt(self.beta_min**2 + 2 * self.beta_d * c) - self.beta_min) / self.beta_d

    def scale_of_sigma(self, sigma):
        return 1.0 / torch.sqrt(1.0 + _as_tensor(sigma) ** 2)


def make_betas(kind: str, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM β tables (float64): 'linear' (Ho et al. 2020), 'scaled_linear' (Stable Diffusion,
    linear in sqrt β), 'cosine' (Nichol & Dhariwal 2021 Eq. 17, clipped at 0.999)."""
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {kind!r}; valid: 'linear', 'scaled_linear', 'cosine'")


class DiscreteVPProcess(Process):
    """DDPM with a table of N betas; t is the (continuous) timestep index in [0, N-1].

    σ_i = sqrt((1 - ᾱ_i)/ᾱ_i). Between table entries log σ is interpolated linearly in t,
    so fractional timesteps are well defined (as in k-diffusion's DiscreteSchedule). The
    network condition is the timestep t itself, as DDPM-trained networks expect.
    """

    name = "vp_discrete"

    def __init__(self, betas: Tensor | str = "linear", num_steps: int = 1000, **beta_kwargs):
        if isinstance(betas, str):
            self.beta_schedule = betas
            betas = make_betas(betas, num_steps, **beta_kwargs)
        else:
            self.beta_schedule = "custom"
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() < 2 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D table of at least 2 values in (0, 1)")
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.sigmas = torch.sqrt((1 - self.alphas_cumprod) / self.alphas_cumprod)
        self.log_sigmas = self.sigmas.log()
        self.t_min, self.t_max = 0.0, float(len(betas) - 1)

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def sigma(self, t):
        t = _as_tensor(t)
        ls = self.log_sigmas.to(t.device)
        tc = t.to(torch.float64).clamp(self.t_min, self.t_max)
        lo = tc.floor().long().clamp(max=len(ls) - 2)
        w = tc - lo
        out = torch.exp((1 - w) * ls[lo] + w * ls[lo + 1])
        return out.to(t.dtype) if t.is_floating_point() else out

    def scale(self, t):
        return 1.0 / torch.sqrt(1.0 + self.sigma(t) ** 2)

    def scale_of_sigma(self, sigma):
        return 1.0 / torch.sqrt(1.0 + _as_tensor(sigma) ** 2)

    def t_of_sigma(self, sigma):
        sigma = _as_tensor(sigma)
        ls = self.log_sigmas.to(sigma.device)
        lsig = sigma.to(torch.float64).clamp(min=1e-30).log()
        # log σ is increasing in t: find the bracketing table entries and interpolate.
        hi = torch.searchsorted(ls, lsig.reshape(-1)).reshape(lsig.shape).clamp(1, len(ls) - 1)
        lo = hi - 1
        w = ((lsig - ls[lo]) / (ls[hi] - ls[lo])).clamp(0, 1)
        t = lo.to(torch.float64) + w
        return t.to(sigma.dtype) if sigma.is_floating_point() else t

    def dsigma_dt(self, t):
        t = _as_tensor(t)
        ls = self.log_sigmas.to(t.device)
        lo = t.to(torch.float64).clamp(self.t_min, self.t_max).floor().long().clamp(max=len(ls) - 2)
        return self.sigma(t) * (ls[lo + 1] - ls[lo]).to(t.dtype)

    def dscale_dt(self, t):
        sig = self.sigma(t)
        return -sig / (1 + sig**2) ** 1.5 * self.dsigma_dt(t)


class FlowProcess(Process):
    """Rectified flow / flow matching: x_t = (1-t)·x0 + t·ε, so s = 1-t and σ = t/(1-t).

    t ∈ [t_min, t_max] with t_max < 1 (σ → ∞ at t = 1). The network condition is t.
    """

    name = "flow"

    def __init__(self, t_min: float = 1e-3, t_max: float = 0.995):
        if not (0 < t_min < t_max < 1):
            raise ValueError(f"FlowProcess needs 0 < t_min < t_max < 1, got {t_min}, {t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)

    def sigma(self, t):
        t = _as_tensor(t)
        return t / (1 - t)

    def scale(self, t):
        return 1 - _as_tensor(t)

    def t_of_sigma(self, sigma):
        sigma = _as_tensor(sigma)
        return sigma / (1 + sigma)

    def scale_of_sigma(self, sigma):
        return 1 / (1 + _as_tensor(sigma))

    def dsigma_dt(self, t):
        t = _as_tensor(t)
        return 1 / (1 - t) ** 2

    def dscale_dt(self, t):
        return -torch.ones_like(_as_tensor(t))


PROCESSES = {
    "ve": VEProcess,
    "vp": VPProcess,
    "vp_discrete": DiscreteVPProcess,
    "flow": FlowProcess,
}


def get_process(name: str, **kwargs) -> Process:
    """Build a process by name: 've', 'vp', 'vp_discrete' (betas='linear'|'scaled_linear'|'cosine'), 'flow'."""
    try:
        cls = PROCESSES[name]
    except KeyError:
        raise ValueError(f"unknown process {name!r}; valid: {', '.join(sorted(PROCESSES))}") from None
    return cls(**kwargs)
