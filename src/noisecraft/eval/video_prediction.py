"""Scoring video prediction (the first K frames given, the rest generated) against the true clip.

    psnr(pred, truth, keep) / ssim(pred, truth, keep)       per clip, over the predicted frames only
    copy_last_frame(clips, keep)                            baseline: the last given frame, repeated
    extrapolate_centroid(clips, keep)                       baseline: the last given frame moved on at the
                                                            velocity of its ink centroid (last two frames)
    centroid_errors(pred, truth, keep)                      per clip, the mean distance (px) between the
                                                            predicted and the true ink centroids
    prediction_scores(samples, truth, keep, span=...,       best-of-K PSNR/SSIM of K samples per clip next
                      others={"regressor": pred})           to the baselines (and other predictions), the
                                                            trajectory residual and the centroid error

Best-of-K (as in video prediction papers, e.g. SVG, MCVD): for every clip the best of its K samples,
then the mean over clips; the baselines are deterministic, so they get one try. PSNR uses the [-1, 1]
range (peak-to-peak 2): 10·log10(4 / MSE). SSIM (Wang et al. 2004) per frame and channel on [0, 1]
with a Gaussian window (σ = 1.5, 11 px or the frame's side if smaller, valid positions only),
C1 = 0.01², C2 = 0.03², averaged over the predicted frames.

The third baseline of the issue, a deterministic regressor (the same net trained with MSE on the
given frames), needs a trained run (`video_regressor`); its predictions come in through `others`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .video_motion import centroids, check_clips, trajectory_residuals

__all__ = ["psnr", "ssim", "copy_last_frame", "extrapolate_centroid", "centroid_errors", "prediction_scores",
           "PREDICTION_BASELINES"]


def _check_pair(pred: Tensor, truth: Tensor, keep: int) -> None:
    check_clips(pred, "pred"), check_clips(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and truth {tuple(truth.shape)} must have the same shape")
    t = truth.shape[2]
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep < t:
        raise ValueError(f"keep {keep!r} is out of range for clips of {t} frames; valid: 1..{t - 1}")


def psnr(pred: Tensor, truth: Tensor, keep: int) -> np.ndarray:
    """PSNR in dB (N,) over frames keep..T-1 of clips in [-1, 1] (+inf for an exact prediction)."""
    _check_pair(pred, truth, keep)
    err = (pred[:, :, keep:].double() - truth[:, :, keep:].double()).pow(2).mean((1, 2, 3, 4))
    with np.errstate(divide="ignore"):
        return (10.0 * np.log10(4.0 / err.cpu().numpy()))


def _gauss(size: int, sigma: float = 1.5) -> Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(pred: Tensor, truth: Tensor, keep: int) -> np.ndarray:
    """Mean SSIM (N,) over frames keep..T-1 and channels of clips in [-1, 1] (mapped to [0, 1])."""
    _check_pair(pred, truth, keep)
    n, c, _, h, w = pred.shape
    size = min(11, h, w)
    size -= 1 - size % 2  # odd
    win = _gauss(size)[None, None]  # (1, 1, s, s)
    a = ((pred[:, :, keep:].double() + 1) / 2).transpose(1, 2).reshape(-1, 1, h, w)
    b = ((truth[:, :, keep:].double() + 1) / 2).transpose(1, 2).reshape(-1, 1, h, w)
    mu_a, mu_b = F.conv2d(a, win), F.conv2d(b, win)
    var_a = F.conv2d(a * a, win) - mu_a**2
    var_b = F.conv2d(b * b, win) - mu_b**2
    cov = F.conv2d(a * b, win) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.reshape(n, -1).mean(1).cpu().numpy()


def copy_last_frame(clips: Tensor, keep: int) -> Tensor:
    """Frames keep..T-1 replaced by frame keep-1 (the given frames unchanged)."""
    check_clips(clips)
    out = clips.clone()
    out[:, :, keep:] = clips[:, :, keep - 1 : keep]
    return out


def _translate(frame: Tensor, shift: Tensor) -> Tensor:
    """Frames (N, C, H, W) moved by shift (N, 2) px (row, col), bilinear, background -1 outside."""
    n, _, h, w = frame.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * shift[:, 1] / w  # grid x (cols): sample at p - shift
    theta[:, 1, 2] = -2.0 * shift[:, 0] / h
    grid = F.affine_grid(theta, (n, 1, h, w), align_corners=False).to(frame.dtype)
    ink = F.grid_sample(frame + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return ink - 1.0


def extrapolate_centroid(clips: Tensor, keep: int) -> Tensor:
    """Frames keep..T-1: the last given frame moved along the line of its ink centroid's last step
    (velocity = centroid[keep-1] - centroid[keep-2]; 0 with one given frame or an empty frame)."""
    check_clips(clips)
    out = clips.clone()
    if keep < 2:
        return copy_last_frame(clips, keep)
    c = centroids(clips[:, :, keep - 2 : keep])  # (N, 2, 2)
    vel = torch.from_numpy(np.nan_to_num(c[:, 1] - c[:, 0]))  # (N, 2)
    last = clips[:, :, keep - 1]
    for t in range(keep, clips.shape[2]):
        out[:, :, t] = _translate(last, vel * (t - keep + 1)).to(clips.dtype)
    return out


def centroid_errors(pred: Tensor, truth: Tensor, keep: int) -> np.ndarray:
    """Per clip (N,), the mean over frames keep..T-1 of the distance (px) between the ink centroids of
    `pred` and `truth` (`video_motion.centroids`): does the object end up where it really went? +inf
    for a clip with a predicted frame without ink."""
    _check_pair(pred, truth, keep)
    d = np.linalg.norm(centroids(pred[:, :, keep:]) - centroids(truth[:, :, keep:]), axis=-1)  # (N, T - keep)
    return np.where(np.isfinite(d).all(1), np.nan_to_num(d).mean(1), np.inf)


PREDICTION_BASELINES = {"copy_last_frame": copy_last_frame, "extrapolate_centroid": extrapolate_centroid}


def _summary(values: np.ndarray) -> float:
    finite = np.where(np.isfinite(values), values, 100.0)  # an exact PSNR counts as 100 dB
    return float(finite.mean())


def _median(values: np.ndarray) -> float:
    return float(np.median(values))  # +inf entries (empty frames) count as the worst


def prediction_scores(samples: Tensor, truth: Tensor, keep: int, *, span: float | None = None,
                      others: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Best-of-K PSNR and SSIM of `samples` (K, N, C, T, H, W) (K predictions of each true clip of
    `truth` (N, C, T, H, W) from its first `keep` frames) and of the baselines; `others`: more
    deterministic predictions (N, C, T, H, W) scored as baselines (e.g. the regressor's). Also the
    median centroid error (px, `centroid_errors`; best-of-K and mean-of-K) and, with `span` (the wall
    span of the data, px), the median trajectory residual of the samples, the true clips and the baselines."""
    if not isinstance(samples, Tensor) or samples.ndim != 6:
        raise ValueError(f"samples must be (K, N, C, T, H, W), got {getattr(samples, 'shape', type(samples).__name__)}")
    k = samples.shape[0]
    ps = np.stack([psnr(s, truth, keep) for s in samples])  # (K, N)
    ss = np.stack([ssim(s, truth, keep) for s in samples])
    ce = np.stack([centroid_errors(s, truth, keep) for s in samples])
    out: dict[str, Any] = {"k": int(k), "keep": int(keep), "clips": int(truth.shape[0]),
                           "best_of_k": {"psnr": _summary(ps.max(0)), "ssim": float(ss.max(0).mean()),
                                         "centroid_error_median": _median(ce.min(0))},
                           "mean_of_k": {"psnr": _summary(ps), "ssim": float(ss.mean()),
                                         "centroid_error_median": _median(ce)}, "baselines": {}}
    preds = {name: fn(truth, keep) for name, fn in PREDICTION_BASELINES.items()}
    for name, pred in (others or {}).items():
        preds[name] = check_clips(pred, name)
    for name, pred in preds.items():
        out["baselines"][name] = {"psnr": _summary(psnr(pred, truth, keep)), "ssim": float(ssim(pred, truth, keep).mean()),
                                  "centroid_error_median": _median(centroid_errors(pred, truth, keep))}
        if span is not None:
            out["baselines"][name]["trajectory_residual_median"] = _median(trajectory_residuals(pred, span))
    best = max(v["psnr"] for v in out["baselines"].values())
    out["psnr_gain_over_best_baseline"] = out["best_of_k"]["psnr"] - best
    if span is not None:
        res = np.stack([trajectory_residuals(s, span) for s in samples])
        out["trajectory_residual_median"] = _median(res)
        out["trajectory_residual_median_real"] = _median(trajectory_residuals(truth, span))
    if not math.isfinite(out["psnr_gain_over_best_baseline"]):
        out["psnr_gain_over_best_baseline"] = None
    return out
