"""Reproducible noise for stochastic samplers.

A `NoiseSource` draws standard normal tensors shaped like x. Given a list of generators (one per
sample), each sample's noise comes from its own generator, so a batch of 4 with seeds 0..3 equals
four batches of 1 (EDM2's StackedRandomGenerator; diffusers' per-sample generators).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

Generators = torch.Generator | Sequence[torch.Generator] | None

__all__ = ["NoiseSource", "Generators", "seeded_generators", "randn"]


def seeded_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One generator per sample, seeded with the given seeds."""
    return [torch.Generator(device).manual_seed(int(s)) for s in seeds]


def randn(shape: Sequence[int], generator: Generators = None, *, dtype=torch.float32, device=None) -> Tensor:
    """Standard normal noise of `shape`; per-sample when `generator` is a list (one per batch row)."""
    shape = tuple(shape)
    if generator is None:
        return torch.randn(shape, dtype=dtype, device=device)
    # Noise is drawn on the generator's own device and then moved, so CPU generators drive CUDA
    # sampling and a seed gives the same noise on every device.
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device).to(device)
    gens = list(generator)
    if len(gens) != shape[0]:
        raise ValueError(f"got {len(gens)} generators for a batch of {shape[0]}; pass one per sample or a single generator")
    return torch.stack([torch.randn(shape[1:], generator=g, dtype=dtype, device=g.device) for g in gens]).to(device)


class NoiseSource:
    """Draws noise shaped like x from the given generator(s)."""

    def __init__(self, generator: Generators = None):
        if generator is not None and not isinstance(generator, torch.Generator):
            generator = list(generator)
            if not all(isinstance(g, torch.Generator) for g in generator):
                raise TypeError("generator must be a torch.Generator, a list of them, or None")
        self.generator = generator

    def __call__(self, x: Tensor) -> Tensor:
        return randn(x.shape, self.generator, dtype=x.dtype, device=x.device)
