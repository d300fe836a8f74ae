"""Fixtures for the task tests; the exact-posterior helpers live in task_oracles.py."""

from __future__ import annotations

import pytest
import torch

from noisecraft import GaussianMixture


@pytest.fixture(autouse=True)
def single_thread():
    """The oracle's tensors are tiny: one thread avoids thread-pool overhead that dominates (50x)
    on a loaded machine. Restored afterwards for the rest of the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mixture3d() -> GaussianMixture:
    """Components 0 and 1 overlap in coordinate 0 and separate in coordinate 1: observing
    coordinate 0 leaves a two-mode posterior whose weights the measurement shifts."""
    means = torch.tensor([[-1.0, 1.0, 0.0], [-0.6, -1.0, 0.5], [1.2, 0.3, -1.0]], dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.4, 0.35, 0.3]), torch.tensor([0.3, 0.4, 0.3]))
