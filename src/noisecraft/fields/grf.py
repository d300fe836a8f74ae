"""Gaussian random fields with a Matérn covariance on a periodic N x N grid, and their exact oracle.

The field lives on the unit torus [0, 1)² sampled at N x N points. Its covariance is stationary, so it
is diagonal in the 2-D Fourier basis: with integer wave numbers k = (k1, k2) in the FFT layout,

    S(k) ∝ (2ν/ℓ² + 4π²|k|²)^-(ν + 1)                  (the Matérn spectral density in d = 2;
                                                          Rasmussen & Williams 2006, eq. 4.15)
    λ_k  = N² · std² · S(k) / Σ_k S(k)                   (so every pixel has variance std²)

and a field is x = F⁻¹(√λ ⊙ F(w)), w white noise (spectral synthesis): exactly x ~ N(0, C) with C the
circulant matrix of eigenvalues λ. Its covariance function c(Δ) = F⁻¹(λ)(Δ) is the Matérn kernel
periodized over the torus and truncated at the grid's Nyquist frequency; for ℓ much shorter than the
torus both are small (`matern_kernel` is the continuous one the tests compare with).

Because C is diagonal in Fourier space, everything a test needs is exact and cheap:

* `denoise(x, σ)` = E[x0 | x0 + σ·ε = x] = F⁻¹(λ/(λ + σ²) ⊙ F(x - μ)) + μ: the exact denoiser;
* `posterior(idx, values, noise_std)`: the exact Gaussian posterior given point observations
  (kriging with the true covariance): mean, pointwise std and samples (Matheron's rule);
* `log_likelihood(x)` = log N(x; μ, C) = -½·Σ_k |F(x - μ)_k|²/(N²·λ_k) - ½·Σ_k log λ_k - ½·N²·log 2π
  (Parseval with the unnormalized DFT), so `classify_fields` is the Bayes classifier between GRFs
  of different parameters (equal priors): the exact label oracle of the `grf-lengths` data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["MaternGRF", "GaussianPosterior", "matern_kernel", "field_noise", "classify_fields", "fit_length_scale"]


def matern_kernel(r: np.ndarray, *, nu: float, length: float, std: float) -> np.ndarray:
    """The continuous Matérn covariance std²·2^(1-ν)/Γ(ν)·(√(2ν)·r/ℓ)^ν·K_ν(√(2ν)·r/ℓ) at distances r >= 0."""
    from scipy.special import gamma, kv

    r = np.asarray(r, dtype=np.float64)
    z = np.sqrt(2 * nu) * np.where(r > 0, r, 1.0) / length  # r = 0 is set below (the limit std²)
    out = std**2 * 2 ** (1 - nu) / gamma(nu) * z**nu * kv(nu, z)
    return np.where(r == 0, std**2, out)


def field_noise(seed: int, index: Sequence[int] | np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """White noise (len(index), *shape) float64 where row i depends only on (seed, index[i]): field i
    of a split is the same however many fields are drawn. NumPy PCG64 streams are stable across versions."""
    rows = [np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(i)]))).standard_normal(tuple(shape))
            for i in np.asarray(index).reshape(-1)]
    return np.stack(rows) if rows else np.zeros((0, *shape))


@dataclass(frozen=True)
class GaussianPosterior:
    """The exact posterior of a Gaussian field given observations: mean (C, H, W), std (C, H, W)."""

    mean: Tensor
    std: Tensor


class MaternGRF:
    """A zero-mean (or `mean`) Matérn Gaussian random field on the periodic N x N grid (module notes).

    nu: smoothness ν > 0; length: ℓ in units of the torus side (0.1 = 6.4 px at N = 64); std: the
    pointwise standard deviation. All math in float64; outputs (B, 1, N, N) float64 unless a dtype is given.
    """

    def __init__(self, size: int = 64, *, nu: float = 1.5, length: float = 0.1, std: float = 0.5, mean: float = 0.0):
        for name, v in (("nu", nu), ("length", length), ("std", std)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer >= 2 (grid points per side), got {size!r}")
        self.size, self.nu, self.length, self.std, self.mean = size, float(nu), float(length), float(std), float(mean)
        k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)  # integer wave numbers
        k2 = k[:, None] ** 2 + k[None, :] ** 2
        s = (2 * nu / length**2 + 4 * math.pi**2 * k2) ** (-(nu + 1.0))
        self.eigenvalues = size**2 * std**2 * s / s.sum()  # λ_k (N, N): mean(λ) = std²

    # --- covariance -------------------------------------------------------------------------------
    def covariance_function(self) -> Tensor:
        """c(Δ) (N, N): the covariance of pixel (0, 0) with pixel Δ (periodic lags; c[0, 0] = std²)."""
        return torch.fft.ifft2(self.eigenvalues.to(torch.complex128)).real

    def covariance(self, idx_a: Tensor, idx_b: Tensor) -> Tensor:
        """Cov(x[a_i], x[b_j]) (len(a), len(b)) for integer pixel coordinates (·, 2) = (row, col)."""
        c = self.covariance_function()
        n = self.size
        di = (idx_a[:, None, 0] - idx_b[None, :, 0]) % n
        dj = (idx_a[:, None, 1] - idx_b[None, :, 1]) % n
        return c[di, dj]

    # --- sampling ---------------------------------------------------------------------------------
    def from_noise(self, w: Tensor | np.ndarray) -> Tensor:
        """White noise (B, N, N) -> fields (B, 1, N, N) float64: x = μ + F⁻¹(√λ ⊙ F(w))."""
        w = torch.as_tensor(w, dtype=torch.float64)
        x = torch.fft.ifft2(self.eigenvalues.sqrt() * torch.fft.fft2(w)).real  # λ is even in k: the result is real
        return (x + self.mean)[:, None]

    def sample(self, n: int, seed: int = 0, *, start: int = 0) -> Tensor:
        """Fields start .. start+n-1 of the stream `seed` (B, 1, N, N) float64 (see `field_noise`)."""
        return self.from_noise(field_noise(seed, np.arange(start, start + n), (self.size, self.size)))

    # --- the exact oracle -------------------------------------------------------------------------
    def denoise(self, x: Tensor, sigma: Tensor | float, **_: object) -> Tensor:
        """E[x0 | x] for x = x0 + σ·ε: a Wiener filter λ/(λ + σ²) in Fourier space. x (B, 1, N, N)."""
        xd = x.to(torch.float64) - self.mean
        s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
        s2 = (s.expand(x.shape[0]) if s.numel() == 1 else s).reshape(-1, *([1] * (x.ndim - 1))) ** 2
        lam = self.eigenvalues.to(x.device)
        out = torch.fft.ifft2(lam / (lam + s2) * torch.fft.fft2(xd)).real + self.mean
        return out.to(x.dtype)

    __call__ = denoise

    def log_likelihood(self, x: Tensor) -> Tensor:
        """log N(x; μ, C) (B,) float64 of fields x (B, 1, N, N) or (B, N, N) (module notes; exact)."""
        xd = torch.as_tensor(x, dtype=torch.float64).reshape(-1, self.size, self.size) - self.mean
        power = torch.fft.fft2(xd).abs() ** 2 / self.size**2  # |F(x)_k|²/N²: Σ_k of it is ‖x‖²
        lam = self.eigenvalues
        return -0.5 * ((power / lam).sum((1, 2)) + lam.log().sum() + self.size**2 * math.log(2 * math.pi))

    def posterior(self, idx: Tensor, values: Tensor, noise_std: float = 0.0) -> GaussianPosterior:
        """The exact posterior of x0 given x0[idx_m] + noise_std·n_m = values_m (kriging with the true C).

        idx (M, 2) integer (row, col); values (M,). Returns mean and pointwise std, each (1, N, N)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        y = torch.as_tensor(values, dtype=torch.float64).reshape(-1) - self.mean
        n = self.size
        grid = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1).reshape(-1, 2)
        k_go = self.covariance(grid, idx)  # (N², M)
        k_oo = self.covariance(idx, idx) + noise_std**2 * torch.eye(idx.shape[0], dtype=torch.float64)
        chol = torch.linalg.cholesky(k_oo)
        alpha = torch.cholesky_solve(y[:, None], chol)[:, 0]
        mean = k_go @ alpha + self.mean
        v = torch.linalg.solve_triangular(chol, k_go.T, upper=False)  # (M, N²)
        var = (self.std**2 - (v**2).sum(0)).clamp_min(0.0)
        return GaussianPosterior(mean.reshape(1, n, n), var.sqrt().reshape(1, n, n))

    def posterior_samples(self, idx: Tensor, values: Tensor, n: int, seed: int = 0,
                          noise_std: float = 0.0) -> Tensor:
        """n exact posterior draws (n, 1, N, N) by Matheron's rule: a prior draw corrected by kriging
        its own simulated observations towards the real ones (Wilson et al. 2020, eq. 4)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        prior = self.sample(n, seed)  # (n, 1, N, N)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 2**31])))
        eps = torch.from_numpy(rng.standard_normal((n, idx.shape[0]))) * noise_std
        sim = prior[:, 0, idx[:, 0], idx[:, 1]] + eps  # (n, M)
        grid_n = self.size
        grid = torch.stack(torch.meshgrid(torch.arange(grid_n), torch.arange(grid_n), indexing="ij"), -1).reshape(-1, 2)
        k_go = self.covariance(grid, idx)
        k_oo = self.covariance(idx, idx) + noise_std**2 * torch.eye(idx.shape[0], dtype=torch.float64)
        resid = torch.as_tensor(values, dtype=torch.float64).reshape(1, -1) - sim  # (n, M)
        corr = k_go @ torch.linalg.solve(k_oo, resid.T)  # (N², n)
        return prior + corr.T.reshape(n, 1, grid_n, grid_n)


def classify_fields(x: Tensor, grfs: Sequence[MaternGRF]) -> Tensor:
    """The index (B,) of the GRF under which each field of x (B, 1, N, N) is most likely (`log_likelihood`):
    the Bayes classifier between the given GRFs with equal priors."""
    return torch.stack([g.log_likelihood(x) for g in grfs], 1).argmax(1)


def fit_length_scale(x: Tensor, *, nu: float, std: float, grid: Sequence[float] | None = None) -> Tensor:
    """The maximum-likelihood Matérn length scale ℓ (B,) of each field of x (B, 1, N, N) (ν and std fixed),
    over `grid` (default: 61 values log-spaced from 0.02 to 0.5): the parameter a field's power spectrum says
    it was drawn with, to compare a parameter-conditional model's fields with the ℓ they were asked for."""
    values = np.geomspace(0.02, 0.5, 61) if grid is None else np.asarray(list(grid), dtype=np.float64)
    size = int(x.shape[-1])
    ll = torch.stack([MaternGRF(size, nu=nu, length=float(v), std=std).log_likelihood(x) for v in values], 1)
    return torch.from_numpy(values)[ll.argmax(1)]
