"""Shared fixtures: small exact Gaussian mixtures (the oracle) and a call counter."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from noisecraft import GaussianMixture

torch.set_num_threads(1)  # tests use tiny tensors: one thread avoids contention overhead


class CountingDenoiser:
    """Wraps a denoiser and counts its calls."""

    def __init__(self, denoiser):
        self.denoiser, self.calls = denoiser, 0

    def __call__(self, x, sigma, **cond):
        self.calls += 1
        return self.denoiser(x, sigma, **cond)


@pytest.fixture
def mixture2d() -> GaussianMixture:
    """Three well-separated 2-D components with different widths and weights."""
    means = torch.tensor([[-1.5, 0.0], [1.0, 1.2], [0.8, -1.3]], dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.3, 0.45, 0.35]), torch.tensor([0.5, 0.3, 0.2]))


@pytest.fixture
def counting():
    return CountingDenoiser


@pytest.fixture
def ffmpeg() -> None:
    """MP4 tests need imageio-ffmpeg: skipped without it, except under CI (CI=true), whose `make install`
    installs the video extra, so there it fails."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        message = "needs imageio-ffmpeg: pip install 'noisecraft[video]'"
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(f"{message} (CI=true: make install includes it)", pytrace=False)
        pytest.skip(message)
