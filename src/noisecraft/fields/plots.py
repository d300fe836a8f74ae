"""Heat maps of reconstructions: one PNG per quantity (mean, std, error), channels side by side; and the
files of one reconstruction (posterior.npz, the heat maps, metrics.json), as `noisecraft reconstruct`
and the web app's Reconstruct tab write them; and of one forecast (`noisecraft forecast`), lead times
side by side."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.files import atomic_write_bytes
from ..io.images import save_image
from ..modalities.array import heat_colors, tile, upscale

__all__ = ["write_heat_map", "write_posterior_npz", "write_reconstruction", "write_forecast"]


def write_heat_map(x: Tensor, path: str | os.PathLike, *, lo: float | None = None, hi: float | None = None,
                   scale: int = 4) -> Path:
    """A field (C, H, W) as viridis heat maps (one per channel, left to right) on the range [lo, hi]
    (default: the field's own min and max), enlarged `scale` times by pixel repetition."""
    v = x.detach().to(torch.float64).cpu().numpy()
    lo = float(np.min(v)) if lo is None else lo
    hi = float(np.max(v)) if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    panels = [upscale(heat_colors(2 * (ch - lo) / span - 1), scale) for ch in v]
    img = tile(panels, len(panels), gap=scale)
    return save_image(torch.from_numpy(img.transpose(2, 0, 1)).float() * 2 - 1, path)


def write_posterior_npz(path: str | os.PathLike, samples: Tensor, mean: Tensor, std: Tensor) -> Path:
    """posterior.npz: samples (n, C, H, W), mean and std (C, H, W), float32, written atomically."""
    buf = io.BytesIO()
    np.savez(buf, samples=samples.detach().float().cpu().numpy(), mean=mean.detach().float().cpu().numpy(),
             std=std.detach().float().cpu().numpy())
    return atomic_write_bytes(path, buf.getvalue())


def write_reconstruction(out: str | os.PathLike, samples: Tensor, mean: Tensor, std: Tensor, *, method: str,
                         observations: int, truth: Tensor | None = None) -> tuple[list[Path], dict | None]:
    """OUT/posterior.npz, mean.png and std.png; with `truth` (C, H, W) also truth.png, error.png
    (|mean - truth|) and metrics.json (relative L2 error; with n >= 2 the 50 % / 90 % coverage, CRPS and
    spread-skill). Mean, truth share one color range. Returns (the files written, the metrics or None)."""
    from .metrics import coverage, crps, relative_l2, spread_skill

    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    files = [write_posterior_npz(outp / "posterior.npz", samples, mean, std)]
    lo, hi = float(mean.min()), float(mean.max())
    if truth is not None:
        lo, hi = min(lo, float(truth.min())), max(hi, float(truth.max()))
    files.append(write_heat_map(mean, outp / "mean.png", lo=lo, hi=hi))
    files.append(write_heat_map(std, outp / "std.png", lo=0.0))
    if truth is None:
        return files, None
    files.append(write_heat_map(truth, outp / "truth.png", lo=lo, hi=hi))
    files.append(write_heat_map((mean - truth).abs(), outp / "error.png", lo=0.0))
    n = int(samples.shape[0])
    metrics = {"relative_l2": relative_l2(mean, truth), "observations": observations, "n": n, "method": method}
    if n >= 2:
        metrics.update(coverage_50=coverage(samples, truth, 0.5), coverage_90=coverage(samples, truth, 0.9),
                       crps=crps(samples, truth), spread_skill=spread_skill(samples, truth))
    (outp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    files.append(outp / "metrics.json")
    return files, metrics


def write_forecast(out: str | os.PathLike, samples: Tensor, mean: Tensor, std: Tensor, *, truth: Tensor | None = None,
                   rows: list[dict] | None = None, interval: float | None = None) -> list[Path]:
    """OUT/forecast.npz (samples (n, K, C, H, W), mean and std (K, C, H, W)), and heat-map strips with the
    K lead times left to right (each lead's C channels together): member0.png (one member's rollout),
    mean.png, std.png; with `truth` (K, C, H, W) also truth.png and error.png (abs(mean - truth)), and
    metrics.json from `rows` (one dict per lead, `fields.forecast_scores`). Returns the files written."""
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, samples=samples.detach().float().cpu().numpy(), mean=mean.detach().float().cpu().numpy(),
             std=std.detach().float().cpu().numpy())
    files = [atomic_write_bytes(outp / "forecast.npz", buf.getvalue())]

    def strip(x: Tensor) -> Tensor:
        return x.reshape(-1, *x.shape[-2:])  # (K, C, H, W) -> (K·C, H, W): lead-major, channels together

    both = samples[0] if truth is None else torch.cat([samples[0], truth])
    lo, hi = float(both.min()), float(both.max())
    files.append(write_heat_map(strip(samples[0]), outp / "member0.png", lo=lo, hi=hi))
    files.append(write_heat_map(strip(mean), outp / "mean.png", lo=lo, hi=hi))
    files.append(write_heat_map(strip(std), outp / "std.png", lo=0.0))
    if truth is not None:
        files.append(write_heat_map(strip(truth), outp / "truth.png", lo=lo, hi=hi))
        files.append(write_heat_map(strip((mean - truth).abs()), outp / "error.png", lo=0.0))
    if rows is not None:
        doc = {"n": int(samples.shape[0]), "steps": int(samples.shape[1]), "interval": interval, "leads": rows}
        files.append(atomic_write_bytes(outp / "metrics.json", (json.dumps(doc, indent=2) + "\n").encode("utf-8")))
    return files
