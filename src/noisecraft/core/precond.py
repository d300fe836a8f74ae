"""Preconditioning: turn a raw network into a σ-space denoiser D(x, σ, **cond) -> x̂0.

Every parameterization in common use is an affine map of the network output F
(Karras et al. 2022, Eq. 7 and Table 1):

    D(x, σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), **cond)

with x = x0 + σ·ε the σ-space input. The prediction targets:

    'edm'   F is EDM's preconditioned target; c_in = 1/sqrt(σ²+σd²), c_noise = ¼ ln σ
    'eps'   F ≈ ε:                 D = x - σ·F
    'x0'    F ≈ x0:                D = F
    'v'     F ≈ v = α ε - σ_t x0 (Salimans & Ho 2022), VP-family processes only:
                                   D = x/(1+σ²) - σ/sqrt(1+σ²)·F
    'flow'  F ≈ u = ε - x0 (rectified-flow velocity), FlowProcess only:
                                   D = s·(x - σ·F), s = 1/(1+σ)

For every target except 'edm' the network sees what it saw in training: x_t = s(σ)·x and the
process's own time condition, so a model trained as "VP + ε" is sampled by any σ-space solver
through `Precond(net, "eps", process)` - one line.

A network is any callable `net(x_in, c_noise, **cond) -> Tensor` of x_in's shape, with c_noise of
shape (B,). It knows nothing about processes.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import Tensor, nn

from .processes import DiscreteVPProcess, FlowProcess, Process, VEProcess, VPProcess

__all__ = ["Denoiser", "Precond", "PREDICTIONS", "expand_sigma"]

PREDICTIONS = ("edm", "eps", "x0", "v", "flow")


class Denoiser(Protocol):
    """The one interface between networks and everything else."""

    def __call__(self, x: Tensor, sigma: Tensor, **cond) -> Tensor: ...


def expand_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as a (B, 1, 1, ...) tensor that broadcasts against x of shape (B, ...)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma.reshape((-1,) + (1,) * (x.ndim - 1))


class Precond(nn.Module):
    """Wrap `net` as a σ-space denoiser for the given prediction target and process."""

    def __init__(
        self,
        net: nn.Module | Callable[..., Tensor],
        prediction: str = "edm",
        process: Process | None = None,
        sigma_data: float = 0.5,
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; valid: {', '.join(PREDICTIONS)}")
        if process is None:
            process = FlowProcess() if prediction == "flow" else VEProcess()
        if prediction == "v" and not isinstance(process, (VPProcess, DiscreteVPProcess)):
            raise ValueError(f"prediction 'v' is defined for VP processes, got {type(process).__name__}")
        if prediction == "flow" and not isinstance(process, FlowProcess):
            raise ValueError(f"prediction 'flow' needs a FlowProcess, got {type(process).__name__}")
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.prediction = prediction
        self.process = process
        self.sigma_data = float(sigma_data)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in, c_noise) for σ of shape (B,)."""
        if self.prediction == "edm":
            sd = self.sigma_data
            c_skip = sd**2 / (sigma**2 + sd**2)
            c_out = sigma * sd / torch.sqrt(sigma**2 + sd**2)
            c_in = 1 / torch.sqrt(sigma**2 + sd**2)
            return c_skip, c_out, c_in, 0.25 * torch.log(sigma)
        c_in = self.process.scale_of_sigma(sigma).to(sigma.dtype)
        c_noise = self.process.noise_condition(sigma).to(sigma.dtype)
        one, zero = torch.ones_like(sigma), torch.zeros_like(sigma)
        if self.prediction == "eps":
            return one, -sigma, c_in, c_noise
        if self.prediction == "x0":
            return zero, one, c_in, c_noise
        if self.prediction == "v":
            return 1 / (1 + sigma**2), -sigma / torch.sqrt(1 + sigma**2), c_in, c_noise
        # flow: D = s·x - s·σ·F with s = 1/(1+σ)
        s = 1 / (1 + sigma)
        return s, -s * sigma, c_in, c_noise

    def forward(self, x: Tensor, sigma: Tensor, **cond) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        bshape = (-1,) + (1,) * (x.ndim - 1)
        F = self.net(x * c_in.reshape(bshape), c_noise, **cond)
        return c_skip.reshape(bshape) * x + c_out.reshape(bshape) * F.to(x.dtype)
