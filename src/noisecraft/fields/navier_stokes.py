"""2-D incompressible Navier-Stokes in vorticity form on the periodic box [0, 2π)², pseudo-spectral.

    ∂ω/∂t + u·∇ω = ν·Δω - α·ω + F,     u = (∂ψ/∂y, -∂ψ/∂x),  -Δψ = ω,

with Kolmogorov forcing F(x, y) = -A·k_f·cos(k_f·y) (the forcing of Kochkov et al. 2021 and of
SDA's Kolmogorov flow, Rozet & Louppe 2023: A = 1, k_f = 4) and a weak linear drag α that keeps the
energy statistically steady. Grid points x_j = 2π·j/N; axis 0
is x, axis 1 is y.

Numerics (`step`): Fourier coefficients ω̂ (torch.fft.rfft2); the advection term u·∇ω is formed in
physical space and dealiased by the 2/3 rule (Orszag 1971). Time stepping is the integrating-factor
fourth-order Runge-Kutta scheme (Trefethen 2000, "Spectral methods in MATLAB", p. 27): the linear
part L = -ν|k|² - α is integrated exactly by E = e^{L·Δt}, the rest G(ω̂) = N(ω̂) + F̂ by RK4,

    a = Δt·G(ω̂),  b = Δt·G(E½(ω̂ + a/2)),  c = Δt·G(E½ω̂ + b/2),  d = Δt·G(Eω̂ + E½c),
    ω̂ⁿ⁺¹ = Eω̂ + (E·a + 2E½·(b + c) + d)/6,          E½ = e^{L·Δt/2}.

(A second-order Heun / Crank-Nicolson step was tried first: Heun is unstable for the purely imaginary
spectrum of advection and the Kolmogorov runs blew up at Δt = 0.02; RK4 is stable there up to |z| ≈ 2.8.)

The velocity is divergence-free by construction (spectral derivatives of ψ); the inviscid, unforced
Galerkin-truncated system conserves energy ½⟨|u|²⟩ and enstrophy ½⟨ω²⟩ (up to the O(Δt²) time
error), and the Taylor-Green vortex ω = 2·sin x·sin y decays exactly as e^{-2νt}: the tests check all three.

`kolmogorov_snapshots` starts every trajectory from its own random smooth vorticity (a Matérn field,
`grf.MaternGRF`) and returns the state after the spin-up time, batched over trajectories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .grf import MaternGRF, field_noise

__all__ = ["NSConfig", "SpectralGrid", "velocity", "energy", "enstrophy", "step", "simulate", "kolmogorov_snapshots"]


@dataclass(frozen=True)
class NSConfig:
    """Parameters of the flow (defaults: the `navier-stokes` dataset).

    nu: viscosity; drag: α; forcing_wavenumber: k_f (0 = unforced); forcing_amplitude: A in
    F = -A·k_f·cos(k_f·y); dt: time step; spinup: simulated time before the snapshot; init_std:
    pointwise std of the random initial vorticity.
    """

    nu: float = 1e-2
    drag: float = 0.1
    forcing_wavenumber: int = 4
    forcing_amplitude: float = 1.0
    dt: float = 0.02
    spinup: float = 15.0
    init_std: float = 2.0

    def forcing(self, n: int) -> Tensor:
        """F on the N x N grid (N, N) float64: -A·k_f·cos(k_f·y)."""
        y = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
        kf = self.forcing_wavenumber
        row = -self.forcing_amplitude * kf * torch.cos(kf * y) if kf else torch.zeros(n, dtype=torch.float64)
        return row[None, :].expand(n, n).clone()


class SpectralGrid:
    """Wave numbers and the 2/3 dealiasing mask of the rfft2 layout for an N x N periodic grid on [0, 2π)²."""

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 4 or n % 2:
            raise ValueError(f"grid size must be an even integer >= 4, got {n!r}")
        self.n = n
        kx = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)[:, None]  # (N, 1)
        ky = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64)[None, :]  # (1, N/2+1)
        self.k2 = (kx**2 + ky**2).expand(n, n // 2 + 1)
        # First derivatives i·k drop the Nyquist wave number: i·(N/2) breaks the Hermitian symmetry of a real field.
        self.kx = torch.where(kx.abs() == n // 2, 0.0, kx).expand(n, n // 2 + 1)
        self.ky = torch.where(ky.abs() == n // 2, 0.0, ky).expand(n, n // 2 + 1)
        self.inv_k2 = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)  # mean mode: ψ̂ = 0
        cut = n / 3.0  # keep |k| < N/3 in each direction
        self.dealias = ((kx.abs() < cut) & (ky.abs() < cut)).to(torch.float64).expand(n, n // 2 + 1)

    def rfft(self, x: Tensor) -> Tensor:
        return torch.fft.rfft2(x)

    def irfft(self, xh: Tensor) -> Tensor:
        return torch.fft.irfft2(xh, s=(self.n, self.n))


def velocity(w_hat: Tensor, g: SpectralGrid) -> tuple[Tensor, Tensor]:
    """(u, v) in physical space (B, N, N) from ω̂: ψ̂ = ω̂/|k|², u = ∂ψ/∂y, v = -∂ψ/∂x."""
    psi = w_hat * g.inv_k2
    return g.irfft(1j * g.ky * psi), g.irfft(-1j * g.kx * psi)


def _advection(w_hat: Tensor, g: SpectralGrid) -> Tensor:
    """N(ω̂) = -(u·∇ω)^, dealiased (B, N, N/2+1)."""
    w_hat = w_hat * g.dealias
    u, v = velocity(w_hat, g)
    wx, wy = g.irfft(1j * g.kx * w_hat), g.irfft(1j * g.ky * w_hat)
    return -g.rfft(u * wx + v * wy) * g.dealias


def energy(w: Tensor) -> Tensor:
    """Kinetic energy ½⟨|u|²⟩ (mean over the grid) of vorticity fields (B, N, N) -> (B,)."""
    g = SpectralGrid(w.shape[-1])
    u, v = velocity(g.rfft(w.to(torch.float64)), g)
    return 0.5 * (u**2 + v**2).mean((-2, -1))


def enstrophy(w: Tensor) -> Tensor:
    """½⟨ω²⟩ of vorticity fields (B, N, N) -> (B,)."""
    return 0.5 * (w.to(torch.float64) ** 2).mean((-2, -1))


def step(w_hat: Tensor, g: SpectralGrid, cfg: NSConfig, forcing_hat: Tensor) -> Tensor:
    """One integrating-factor RK4 step of size cfg.dt (module notes)."""
    dt = cfg.dt
    lin = -cfg.nu * g.k2 - cfg.drag
    e, e2 = torch.exp(dt * lin), torch.exp(0.5 * dt * lin)

    def rhs(w: Tensor) -> Tensor:
        return dt * (_advection(w, g) + forcing_hat)

    a = rhs(w_hat)
    b = rhs(e2 * (w_hat + 0.5 * a))
    c = rhs(e2 * w_hat + 0.5 * b)
    d = rhs(e * w_hat + e2 * c)
    return e * w_hat + (e * a + 2 * e2 * (b + c) + d) / 6


def simulate(w0: Tensor, cfg: NSConfig, time: float) -> Tensor:
    """Vorticity (B, N, N) float64 after `time` (round(time/dt) steps) from w0 (B, N, N)."""
    w0 = w0.to(torch.float64)
    g = SpectralGrid(w0.shape[-1])
    f_hat = g.rfft(cfg.forcing(g.n))
    w_hat = g.rfft(w0)
    for _ in range(int(round(time / cfg.dt))):
        w_hat = step(w_hat, g, cfg, f_hat)
    return g.irfft(w_hat)


def kolmogorov_snapshots(size: int, seed: int, index: np.ndarray, cfg: NSConfig = NSConfig()) -> Tensor:
    """Vorticity after cfg.spinup (len(index), N, N) float64; trajectory i starts from a Matérn field
    (ν = 1.5, ℓ = 0.1 of the box, std cfg.init_std) drawn from (seed, index[i]), all run as one batch."""
    grf = MaternGRF(size, nu=1.5, length=0.1, std=cfg.init_std)
    w0 = grf.from_noise(field_noise(seed, index, (size, size)))[:, 0]
    w0 = w0 - w0.mean((-2, -1), keepdim=True)  # on the torus ∮u·dl = 0: the vorticity has zero mean
    return simulate(w0, cfg, cfg.spinup)
