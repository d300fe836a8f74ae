"""Random draws from one generator or from one generator per sample.

Training draws every random number of a sample (its flip, condition dropout, mask, caption, σ
and ε) from a generator of its own, keyed by the sample's position in the global batch and the
step (EDM2's StackedRandomGenerator idea applied to training). The draws then do not depend on
how the batch is cut into micro-batches or split over processes, so one recipe gives the same
math on 1 or N processes. `Generators` is either form; these helpers return a tensor of shape
(n, *shape) on the generator's device (callers move it), per-sample rows stacked in order.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["Generators", "sample_generators", "randn", "rand", "randint", "generator_device"]

Generators = torch.Generator | Sequence[torch.Generator] | None

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """A 64-bit mixing function (Steele et al. 2014), so neighbouring keys give unrelated seeds."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def sample_generators(key: int, positions: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded from (key, position): the same position under the same
    key always gives the same stream, whichever process or micro-batch draws it."""
    return [torch.Generator().manual_seed(_splitmix64(_splitmix64(int(key) & _MASK) ^ int(p)) >> 1) for p in positions]


def generator_device(generator: Generators) -> torch.device | None:
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return generator.device
    return generator[0].device if len(generator) else torch.device("cpu")


def _per_sample(generator: Generators, n: int, draw) -> Tensor:
    if generator is None or isinstance(generator, torch.Generator):
        return draw((n,), generator)
    gens = list(generator)
    if len(gens) != n:
        raise ValueError(f"got {len(gens)} per-sample generators for a batch of {n}; pass one per sample or one generator")
    return torch.stack([draw((), g) for g in gens]) if n else draw((0,), None)


def randn(generator: Generators, n: int, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal, (n, *shape)."""
    return _per_sample(generator, n, lambda lead, g: torch.randn(lead + shape, generator=g, dtype=dtype,
                                                                  device=g.device if g is not None else None))


def rand(generator: Generators, n: int, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniform on [0, 1), (n, *shape)."""
    return _per_sample(generator, n, lambda lead, g: torch.rand(lead + shape, generator=g, dtype=dtype,
                                                                 device=g.device if g is not None else None))


def randint(generator: Generators, low: int, high: int, n: int, *shape: int) -> Tensor:
    """Integers uniform on [low, high), (n, *shape), int64."""
    return _per_sample(generator, n, lambda lead, g: torch.randint(low, high, lead + shape, generator=g,
                                                                    device=g.device if g is not None else None))
