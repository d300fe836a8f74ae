"""Per-sample generators (core.rng): a sample's draws do not depend on the batch it is drawn in."""

from __future__ import annotations

import pytest
import torch

from noisecraft.core import DenoisingLoss, LogNormal, rng


def test_draws_do_not_depend_on_how_the_batch_is_split():
    whole = rng.sample_generators(7, range(8))
    halves = rng.sample_generators(7, range(4)), rng.sample_generators(7, range(4, 8))
    for draw in (lambda g, n: rng.randn(g, n, 3, 2), lambda g, n: rng.rand(g, n), lambda g, n: rng.randint(g, 0, 9, n, 2)):
        a = draw(whole, 8)
        b = torch.cat([draw(h, 4) for h in halves])
        assert torch.equal(a, b)


def test_keys_and_positions_give_different_streams():
    a = rng.randn(rng.sample_generators(1, range(4)), 4, 16)
    b = rng.randn(rng.sample_generators(2, range(4)), 4, 16)
    assert not torch.equal(a, b)
    assert len({tuple(r.tolist()) for r in a}) == 4  # neighbouring positions are not the same stream


def test_one_generator_is_the_plain_torch_draw():
    assert torch.equal(rng.randn(torch.Generator().manual_seed(3), 5, 2),
                       torch.randn(5, 2, generator=torch.Generator().manual_seed(3)))


def test_wrong_number_of_generators_is_an_error():
    with pytest.raises(ValueError, match="3 per-sample generators for a batch of 4"):
        rng.randn(rng.sample_generators(0, range(3)), 4)


def test_loss_with_per_sample_generators_is_the_mean_of_single_sample_losses():
    loss = DenoisingLoss(LogNormal(), "edm")
    den = lambda x, sigma: 0.9 * x  # noqa: E731 - any deterministic denoiser
    x0 = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gens = lambda: rng.sample_generators(5, range(6))  # noqa: E731
    whole = loss(den, x0, generator=gens())
    parts = [loss(den, x0[i:i + 1], generator=[g]) for i, g in enumerate(gens())]
    assert torch.allclose(whole, torch.stack(parts).mean(), rtol=1e-12)
