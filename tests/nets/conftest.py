from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn


@pytest.fixture
def nudge() -> Callable[[nn.Module], nn.Module]:
    """Give every zero-initialised parameter small random values, so that an untrained net's
    output (exactly zero by design) depends on its inputs and gradients reach every layer."""

    def _nudge(net: nn.Module, std: float = 0.05, seed: int = 0) -> nn.Module:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                if not p.any():
                    p.copy_(torch.randn(p.shape, generator=gen) * std)
        return net

    return _nudge


@pytest.fixture(autouse=True)
def _one_thread():
    """The nets here are tiny: one thread is as fast as two, and far faster when other jobs share
    the cores (OpenMP threads then wait for each other at every op)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
