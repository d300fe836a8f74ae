"""Scores of a probabilistic field reconstruction against the truth, and the classical baselines.

Metrics (each takes the truth (C, H, W) or (B, C, H, W) and posterior samples (n, ...) or a mean/std):

* `relative_l2(pred, truth)`: ‖pred - truth‖ / ‖truth‖ (per field).
* `coverage(samples, truth, level)`: the fraction of pixels whose truth lies in the central `level`
  interval of the samples. The interval's ends are the Weibull plotting-position quantiles
  (order statistic p·(n + 1), interpolated; Hyndman & Fan 1996, definition 6): for n exchangeable
  draws the truth falls between the k-th and (n+1-k)-th smallest with probability (n+1-2k)/(n+1),
  so a calibrated ensemble of any size scores ≈ level. (The usual p·(n - 1) quantiles cover only
  ≈ 84 % at level 0.9 with n = 32 samples even for a perfect posterior.) Needs n >= 2/(1 - level) - 1
  samples (19 for 90 %) to place the ends inside the ensemble.
* `gaussian_coverage(mean, std, truth, level)`: the same for a Gaussian predictive N(mean, std²).
* `crps(samples, truth)`: the continuous ranked probability score of the empirical distribution,
  E|X - y| - ½E|X - X'| (Gneiting & Raftery 2007, eq. 21), averaged over pixels; the "fair" estimator
  with 1/(n(n-1)) in the second term (Ferro 2014), so a small ensemble is not penalized for its size.
  `gaussian_crps(mean, std, truth)`: the closed form for N(mean, std²) (Gneiting et al. 2005, eq. 5).
* `spread_skill(samples, truth)`: RMS spread / RMS error of the ensemble mean, with the
  (n + 1)/n factor of a finite ensemble (Fortin et al. 2014): ≈ 1 when calibrated, < 1 over-confident.

`posterior_scores(truth, mean, std, samples)` bundles them for one prediction (an ensemble when samples
are given, else a Gaussian N(mean, std²), else a point forecast).

Baselines (`gp_baseline`, `cubic_baseline`, `mean_baseline`): each maps observations of one field to a
predictive mean and std (C, H, W) (cubic and mean: std = None).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from .observations import Observations

__all__ = ["relative_l2", "coverage", "gaussian_coverage", "crps", "gaussian_crps", "spread_skill",
           "posterior_scores", "gp_baseline", "cubic_baseline", "mean_baseline"]


def _level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1), e.g. 0.5 or 0.9, got {level!r}")
    return float(level)


def relative_l2(pred: Tensor, truth: Tensor) -> float:
    """‖pred - truth‖ / ‖truth‖ over all entries."""
    return float((pred.double() - truth.double()).norm() / truth.double().norm())


def coverage(samples: Tensor, truth: Tensor, level: float) -> float:
    """Fraction of entries of `truth` inside the central `level` interval of `samples` (n, *truth.shape)."""
    level = _level(level)
    x = samples.detach().double().cpu().reshape(samples.shape[0], -1).numpy()
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2], axis=0, method="weibull")
    t = truth.detach().double().cpu().reshape(-1).numpy()
    return float(((t >= lo) & (t <= hi)).mean())


def gaussian_coverage(mean: Tensor, std: Tensor, truth: Tensor, level: float) -> float:
    """Fraction of entries of `truth` inside mean ± z·std, z the N(0, 1) quantile of (1 + level)/2."""
    from scipy.stats import norm

    z = float(norm.ppf((1 + _level(level)) / 2))
    return float(((truth.double() - mean.double()).abs() <= z * std.double()).double().mean())


def crps(samples: Tensor, truth: Tensor) -> float:
    """Mean fair CRPS of the ensemble `samples` (n, *truth.shape) over the entries of `truth`."""
    x = samples.double().reshape(samples.shape[0], -1)  # (n, P)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"crps needs at least 2 samples, got {n}")
    t = truth.double().reshape(1, -1)
    skill = (x - t).abs().mean(0)
    xs = x.sort(0).values  # E|X - X'| from the sorted ensemble in O(n log n): Σ_i (2i - n + 1)·x_(i)
    i = torch.arange(n, dtype=torch.float64)[:, None]
    pair = 2 * ((2 * i - n + 1) * xs).sum(0) / (n * (n - 1))
    return float((skill - 0.5 * pair).mean())


def gaussian_crps(mean: Tensor, std: Tensor, truth: Tensor) -> float:
    """Mean CRPS of N(mean, std²) at `truth`: σ·[z(2Φ(z) - 1) + 2φ(z) - 1/√π], z = (y - μ)/σ."""
    s = std.double().clamp_min(1e-12)
    z = (truth.double() - mean.double()) / s
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return float((s * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))).mean())


def spread_skill(samples: Tensor, truth: Tensor) -> float:
    """√((n+1)/n)·RMS(ensemble std) / RMS(ensemble mean - truth); ≈ 1 for a calibrated ensemble."""
    x = samples.double()
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"spread_skill needs at least 2 samples, got {n}")
    spread = x.var(0, correction=1).mean().sqrt() * math.sqrt((n + 1) / n)
    skill = (x.mean(0) - truth.double()).pow(2).mean().sqrt()
    return float(spread / skill)


def posterior_scores(truth: Tensor, mean: Tensor, std: Tensor | None = None, samples: Tensor | None = None) -> dict[str, float]:
    """rel_l2 of `mean`; with `samples` (n, *truth.shape) also cov50, cov90, crps, spread_skill of the
    ensemble; else with `std` the Gaussian cov50, cov90, crps; a point forecast (neither) gets rel_l2 only."""
    if mean.shape != truth.shape or (std is not None and std.shape != truth.shape):
        raise ValueError(f"mean and std must have the truth's shape {tuple(truth.shape)}; got {tuple(mean.shape)}"
                         f"{'' if std is None else ' and ' + str(tuple(std.shape))}")
    if samples is not None and tuple(samples.shape[1:]) != tuple(truth.shape):
        raise ValueError(f"samples must be (n, {', '.join(map(str, truth.shape))}); got {tuple(samples.shape)}")
    row = {"rel_l2": relative_l2(mean, truth)}
    if samples is not None:
        row.update(cov50=coverage(samples, truth, 0.5), cov90=coverage(samples, truth, 0.9), crps=crps(samples, truth),
                   spread_skill=spread_skill(samples, truth))
    elif std is not None:
        row.update(cov50=gaussian_coverage(mean, std, truth, 0.5), cov90=gaussian_coverage(mean, std, truth, 0.9),
                   crps=gaussian_crps(mean, std, truth))
    return row


# --- baselines --------------------------------------------------------------------------------------

def _grid(h: int, w: int) -> np.ndarray:
    return np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2).astype(np.float64)


def gp_baseline(obs: Observations, shape, *, nu: float = 1.5, restarts: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Kriging: scikit-learn GaussianProcessRegressor with a constant x Matérn(ν) + white-noise kernel,
    hyperparameters fitted per field and channel by maximum marginal likelihood (pixel units, not
    periodic). Returns the predictive mean and std (C, H, W) of the field (noise excluded); NaN in a channel
    the observations leave out (`Observations.channels`: kriging has nothing to go on there)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    c, h, w = (int(s) for s in shape)
    xo = obs.idx.numpy().astype(np.float64)
    grid = _grid(h, w)
    means, stds = [], []
    observed = obs.observed_channels(c)
    for ch in range(c):
        if ch not in observed:
            means.append(np.full((h, w), np.nan))
            stds.append(np.full((h, w), np.nan))
            continue
        y = obs.values[:, observed.index(ch)].numpy()
        kernel = (ConstantKernel(1.0, (1e-4, 1e4)) * Matern(length_scale=max(h, w) / 8, length_scale_bounds=(0.5, 4.0 * max(h, w)), nu=nu)
                  + WhiteKernel(max(obs.noise_std**2, 1e-6), (1e-10, 1e1)))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(xo, y)
        # The predictive std of the latent field: the fitted white noise is observation noise, not field spread.
        noise = gp.kernel_.k2.noise_level * gp._y_train_std**2
        mu, sd = gp.predict(grid, return_std=True)
        var = np.clip(sd**2 - noise, 0.0, None)
        means.append(mu.reshape(h, w))
        stds.append(np.sqrt(var).reshape(h, w))
    return torch.from_numpy(np.stack(means)), torch.from_numpy(np.stack(stds))


def cubic_baseline(obs: Observations, shape) -> Tensor:
    """Piecewise-cubic interpolation of the observations (scipy.interpolate.griddata, Clough-Tocher);
    outside the observations' convex hull, the nearest observation. Returns (C, H, W); NaN in a channel the
    observations leave out."""
    from scipy.interpolate import griddata

    c, h, w = (int(s) for s in shape)
    xo = obs.idx.numpy().astype(np.float64)
    grid = _grid(h, w)
    out = []
    observed = obs.observed_channels(c)
    for ch in range(c):
        if ch not in observed:
            out.append(np.full((h, w), np.nan))
            continue
        y = obs.values[:, observed.index(ch)].numpy()
        if len(y) >= 4:
            v = griddata(xo, y, grid, method="cubic")
        else:
            v = np.full(len(grid), np.nan)
        hole = np.isnan(v)
        if hole.any():
            v[hole] = griddata(xo, y, grid[hole], method="nearest")
        out.append(v.reshape(h, w))
    return torch.from_numpy(np.stack(out))


def mean_baseline(train: Tensor) -> Tensor:
    """The mean field of the training fields (N, C, H, W) -> (C, H, W): what "no observations" predicts."""
    return train.double().mean(0)
