"""Physical statistics of sets of fields, to compare generated fields with real ones.

* `radial_power_spectrum(x)`: the radially averaged energy (power) spectrum per channel — the mean
  over fields and over the wavevectors of each integer shell k - ½ <= |k| < k + ½ of |F(x)|² / (H·W)
  (F the 2-D DFT; |k| in cycles per domain). Band 0 is the field mean's power; bands run to
  min(H, W) // 2 (Nyquist), the corners beyond it are left out.
* `spectrum_errors(gen, ref)`: |E_gen(k) / E_ref(k) - 1| per channel and band.
* `pixel_statistics(x)` and `pixel_w1(a, b)`: per-channel pixel mean / std, and the 1-Wasserstein
  distance between the two sets' pixel-value distributions (the histogram distance).
* `darcy_residuals(pairs, levels=None)`: `fields.darcy.darcy_residual` of each physical (a, u) pair
  (inf for a pair whose a is not positive everywhere: no physical medium); with `levels` (lo, hi) a is
  first snapped to the nearer of the two values (the piecewise coefficient's support, so a generated
  a's soft interfaces are judged as the data's sharp ones).
* `darcy_solution_errors(pairs, levels=None)`: ‖u - solve(a)‖ / ‖solve(a)‖ of each pair, the solver's
  own u for the pair's a (snapped as above): a scale-free check of whether u is the flow of a. The
  residual weights the error by the discrete operator (~1/h² per pixel of noise), this by nothing.
* `vorticity_statistics(w)`: per field of physical vorticity ω (N, 1, n, n) on the periodic box
  [0, 2π)² (`fields.navier_stokes`): enstrophy ½⟨ω²⟩, kinetic energy ½⟨|u|²⟩ of the velocity recovered
  through the streamfunction (-Δψ = ω, u = (∂ψ/∂y, -∂ψ/∂x)), the mean ⟨ω⟩ and max |ω|.
  The mean is the circulation around the box divided by its area: ∮u·dl = 0 on a torus, so every real
  field has ⟨ω⟩ = 0 exactly (the solver keeps the k = 0 mode at 0), and a generated field's mean measures
  how far it is from being the curl of a periodic velocity. Divergence is not a statistic here: any
  velocity recovered from ω through ψ is divergence-free by construction (∂x∂yψ - ∂y∂xψ = 0), whatever ω
  is; the max |ω| and the vorticity PDF distance (`pixel_w1`) take its place as checks of the intense,
  small vortices.
* `distribution_distance(a, b)`: the 1-Wasserstein distance between two sets of per-field values,
  divided by the mean |b| (scale-free; 0 for equal distributions).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["radial_power_spectrum", "spectrum_errors", "pixel_statistics", "pixel_w1", "darcy_residuals",
           "darcy_solution_errors", "vorticity_statistics", "distribution_distance"]


def _check_fields(x: Tensor, name: str) -> Tensor:
    if x.dim() != 4 or x.shape[0] < 1 or min(x.shape[-2:]) < 2:
        raise ValueError(f"{name} must be fields (N, C, H, W) with N >= 1 and H, W >= 2; got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def radial_power_spectrum(x: Tensor, batch: int = 256) -> Tensor:
    """Fields (N, C, H, W) -> (C, K + 1) mean power per integer wavenumber band 0..K, K = min(H, W) // 2."""
    x = _check_fields(x, "x")
    _, c, h, w = x.shape
    ky = torch.fft.fftfreq(h, 1.0 / h, dtype=torch.float64)[:, None]
    kx = torch.fft.fftfreq(w, 1.0 / w, dtype=torch.float64)[None, :]
    band = torch.round(torch.sqrt(ky**2 + kx**2)).long().reshape(-1)
    k_max = min(h, w) // 2
    keep = band <= k_max
    counts = torch.bincount(band[keep], minlength=k_max + 1).to(torch.float64)
    total = torch.zeros(c, k_max + 1, dtype=torch.float64)
    for i in range(0, x.shape[0], batch):
        power = torch.fft.fft2(x[i:i + batch]).abs().pow(2).sum(0).reshape(c, -1) / (h * w)
        for ch in range(c):
            total[ch] += torch.bincount(band[keep], weights=power[ch][keep], minlength=k_max + 1)
    return total / (counts * x.shape[0])


def spectrum_errors(gen: Tensor, ref: Tensor) -> Tensor:
    """(C, K + 1) relative error |gen / ref - 1| of two `radial_power_spectrum`s (inf where ref is 0 and gen not)."""
    if gen.shape != ref.shape:
        raise ValueError(f"spectra must have the same shape; got {tuple(gen.shape)} and {tuple(ref.shape)}")
    ratio = torch.where(ref > 0, gen / ref.clamp_min(1e-300), torch.where(gen > 0, torch.inf, 1.0))
    return (ratio - 1).abs()


def pixel_statistics(x: Tensor) -> dict[str, list[float]]:
    """Per-channel pixel mean and standard deviation over every field and pixel."""
    x = _check_fields(x, "x")
    v = x.transpose(0, 1).reshape(x.shape[1], -1)
    return {"mean": v.mean(1).tolist(), "std": v.std(1).tolist()}


def pixel_w1(a: Tensor, b: Tensor, max_values: int = 200_000, seed: int = 0) -> list[float]:
    """Per channel, the 1-Wasserstein distance between the pixel values of sets a and b (N, C, H, W):
    the mean absolute difference of their quantile functions, on at most `max_values` values per set
    (a seeded subsample; enough for ~1e-3 precision at unit scale)."""
    a, b = _check_fields(a, "a"), _check_fields(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same channels; got {a.shape[1]} and {b.shape[1]}")
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(seed)
    out = []
    for c in range(a.shape[1]):
        va, vb = (t[:, c].reshape(-1).numpy() for t in (a, b))
        va, vb = (v if v.size <= max_values else rng.choice(v, max_values, replace=False) for v in (va, vb))
        out.append(float(wasserstein_distance(va, vb)))
    return out


def _darcy_pairs(pairs: Tensor, levels: tuple[float, float] | None) -> Tensor:
    """Checked pairs (N, 2, n, n) in float64, with a snapped to `levels` (lo, hi) when given."""
    pairs = _check_fields(pairs, "pairs")
    if pairs.shape[1] != 2 or pairs.shape[2] != pairs.shape[3]:
        raise ValueError(f"Darcy pairs must be (N, 2, n, n) (a, u); got shape {tuple(pairs.shape)}")
    if levels is not None:
        lo, hi = (float(v) for v in levels)
        if not 0 < lo < hi:
            raise ValueError(f"levels must be two values 0 < lo < hi, e.g. (3, 12); got {levels!r}")
        pairs = torch.stack([torch.where(pairs[:, 0] >= (lo + hi) / 2, hi, lo), pairs[:, 1]], 1)
    return pairs


def darcy_residuals(pairs: Tensor, levels: tuple[float, float] | None = None) -> np.ndarray:
    """(N,) relative FV residuals of physical Darcy pairs (N, 2, H, W) (channel 0 a, channel 1 u), each
    computed in float64 from the given values (`fields.darcy.darcy_residual`); inf where a <= 0 somewhere.
    levels: (lo, hi) snaps a to lo below (lo + hi)/2 and to hi from there on before the residual."""
    from .darcy import darcy_residual

    pairs = _darcy_pairs(pairs, levels)
    return np.array([darcy_residual(p[0].numpy(), p[1].numpy()) if bool((p[0] > 0).all()) else np.inf for p in pairs])


def darcy_solution_errors(pairs: Tensor, levels: tuple[float, float] | None = None) -> np.ndarray:
    """(N,) ‖u - solve_darcy(a)‖ / ‖solve_darcy(a)‖ of physical pairs (N, 2, n, n) (f = 1); inf where a <= 0
    somewhere. levels: snap a first, as in `darcy_residuals`."""
    from .darcy import solve_darcy

    pairs = _darcy_pairs(pairs, levels)
    out = []
    for p in pairs:
        if not bool((p[0] > 0).all()):
            out.append(np.inf)
            continue
        u = solve_darcy(p[0].numpy())
        out.append(float(np.linalg.norm(p[1].numpy() - u) / np.linalg.norm(u)))
    return np.array(out)


def vorticity_statistics(w: Tensor) -> dict[str, np.ndarray]:
    """Per field of physical vorticity (N, 1, n, n) on [0, 2π)² (n even): (N,) arrays "enstrophy" ½⟨ω²⟩,
    "energy" ½⟨|u|²⟩ (u from ω by the streamfunction), "mean" ⟨ω⟩ and "max_abs" max |ω| (float64)."""
    from .navier_stokes import energy, enstrophy

    w = _check_fields(w, "w")
    if w.shape[1] != 1 or w.shape[2] != w.shape[3] or w.shape[2] % 2:
        raise ValueError(f"vorticity fields must be (N, 1, n, n) with n even; got shape {tuple(w.shape)}")
    w = w[:, 0]
    return {"enstrophy": enstrophy(w).numpy(), "energy": energy(w).numpy(), "mean": w.mean((-2, -1)).numpy(),
            "max_abs": w.abs().amax((-2, -1)).numpy()}


def distribution_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between the values a and the reference values b, divided by mean |b|."""
    from scipy.stats import wasserstein_distance

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"need finite, non-empty value sets; got sizes {a.size} and {b.size}")
    scale = float(np.abs(b).mean())
    if scale == 0:
        raise ValueError("the reference values are all 0; a relative distance is undefined")
    return float(wasserstein_distance(a, b)) / scale
