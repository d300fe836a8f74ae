"""Post-hoc EMA (EDM2): the std <-> exponent map, the online update and the least-squares reconstruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from noisecraft.train import PowerEMA
from noisecraft.runs.phema import (
    exp_to_std,
    power_beta,
    reconstruct,
    solve_posthoc_coefficients,
    std_to_exp,
)


@pytest.mark.parametrize("std", [0.01, 0.05, 0.08, 0.10, 0.2])
def test_std_exp_roundtrip(std):
    assert exp_to_std(std_to_exp(std)) == pytest.approx(std, rel=1e-10)


def test_known_exponents():
    # EDM2 quotes γ = 16.97 for σ_rel = 0.05 and γ = 6.94 for σ_rel = 0.10.
    assert std_to_exp(0.05) == pytest.approx(16.97, abs=0.01)
    assert std_to_exp(0.10) == pytest.approx(6.94, abs=0.01)


def test_bad_std():
    with pytest.raises(ValueError, match="std"):
        std_to_exp(0.3)


def test_first_update_copies_weights():
    assert power_beta(0.1, 64, 64) == 0.0


def _snapshots(rng, times, stds, shape=(3, 4)):
    return [(t, s, {"w": torch.tensor(rng.standard_normal(shape), dtype=torch.float32), "b": torch.tensor(rng.standard_normal(2), dtype=torch.float32)})
            for t in times for s in stds]


@pytest.mark.parametrize("pick", [0, 3, 5])
def test_reconstructing_a_stored_profile_returns_that_snapshot(pick):
    rng = np.random.default_rng(0)
    snaps = _snapshots(rng, [1000, 2000, 3000], [0.05, 0.10])
    t, s, w = snaps[pick]
    out = reconstruct(snaps, s, t)
    for k in w:
        torch.testing.assert_close(out[k], w[k], rtol=0, atol=1e-5)


def test_coefficients_are_a_unit_vector_for_a_stored_profile():
    X = solve_posthoc_coefficients([1, 2, 3, 1, 2, 3], [0.05] * 3 + [0.1] * 3, 2, 0.1)[:, 0]
    np.testing.assert_allclose(X, np.eye(6)[4], atol=1e-7)


def test_reconstruction_matches_a_directly_tracked_ema():
    """Train-free check of the whole pipeline: weights follow a random walk, two tracks are snapshotted
    every K steps, and the reconstruction of σ_rel = 0.08 matches a track kept online with 0.08."""
    torch.manual_seed(0)
    net = nn.Linear(8, 8)
    tracks = PowerEMA(net, [0.05, 0.10])
    direct = PowerEMA(net, [0.08])
    batch, steps, every = 32, 400, 20
    snaps = []
    for step in range(1, steps + 1):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p) + 0.01)  # drift + noise
        t = step * batch
        tracks.update(net, t, batch)
        direct.update(net, t, batch)
        if step % every == 0:
            for std, w in tracks.snapshot().items():
                snaps.append((t, std, w))
    rec = reconstruct(snaps, 0.08)
    want = direct.snapshot()[0.08]
    for k in want:
        err = (rec[k] - want[k]).abs().max() / want[k].abs().max()
        assert err < 0.02, (k, float(err))
    # and it is far from the two stored tracks, so the test is not trivially satisfied
    for std in (0.05, 0.10):
        w = tracks.snapshot()[std]
        assert max(float((w[k] - want[k]).abs().max()) for k in want) > 5 * max(float((rec[k] - want[k]).abs().max()) for k in want)


def test_state_dict_roundtrip():
    net = nn.Linear(3, 2)
    a = PowerEMA(net, [0.05, 0.1])
    with torch.no_grad():
        net.weight.add_(1.0)
    a.update(net, 128, 64)
    b = PowerEMA(nn.Linear(3, 2), [0.05, 0.1])
    b.load_state_dict(a.state_dict())
    for x, y in zip(a.tracks, b.tracks):
        for p, q in zip(x, y):
            assert torch.equal(p, q)
    with pytest.raises(ValueError, match="stds"):
        PowerEMA(net, [0.07]).load_state_dict(a.state_dict())
