"""Near copies of a training set: the nearest-neighbour ratio test."""

from __future__ import annotations

import numpy as np
import pytest

from noisecraft.eval.metrics import near_copies, nearest_two


def test_nearest_two_matches_brute_force():
    rng = np.random.default_rng(0)
    q, r = rng.standard_normal((37, 5)), rng.standard_normal((50, 5))
    d, idx = nearest_two(q, r, chunk=8)
    full = np.linalg.norm(q[:, None] - r[None], axis=-1)
    order = np.argsort(full, axis=1)[:, :2]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(d, np.take_along_axis(full, order, axis=1), rtol=1e-9)


def test_copies_are_flagged_and_fresh_draws_are_not():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((500, 64))
    fresh = rng.standard_normal((200, 64))
    copies = train[rng.choice(500, 100, replace=False)]
    assert near_copies(fresh, train).rate == 0.0  # in 64-D, d1/d2 is close to 1 for independent draws
    nc = near_copies(copies, train)
    assert nc.rate == 1.0 and np.allclose(nc.nearest, 0.0, atol=1e-6)
    # A copy with 5 % noise is still a copy; the ratio test needs no scale.
    noisy = copies * 1000 + rng.standard_normal(copies.shape) * 0.05 * 1000
    assert near_copies(noisy, train * 1000).rate == 1.0


def test_ratio_threshold_is_inclusive():
    train = np.array([[0.0], [3.0], [10.0]])
    nc = near_copies(np.array([[1.0], [1.1]]), train)  # d1/d2 = 1/2 and 1.1/1.9
    assert nc.rate == 0.0
    nc = near_copies(np.array([[0.75], [0.0]]), train)  # 0.75/2.25 = 1/3 exactly; an exact copy
    assert nc.is_copy.tolist() == [True, True] and nc.index.tolist() == [0, 0]
    with pytest.raises(ValueError, match="ratio"):
        near_copies(train, train, ratio=1.0)
    with pytest.raises(ValueError, match="at least 2 reference points"):
        nearest_two(train, train[:1])
