"""OBS.npz files: a good file reads back, every defect is a one-line DataError naming it; the point
operator picks the observed entries and fits the inverse-problem wrappers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisecraft.data import DataError
from noisecraft.fields.observations import (PointObservation, random_observations, read_observations,
                                            write_observations)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_round_trip_and_operator(tmp_path):
    field = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    obs = random_observations(field, 0.3, seed=0, noise_std=0.0)
    path = write_observations(tmp_path / "o.npz", obs)
    back = read_observations(path, (2, 4, 5))
    assert torch.equal(back.idx, obs.idx) and torch.equal(back.values, obs.values) and back.noise_std == 0
    op = back.operator((2, 4, 5))
    y = op(field[None])
    torch.testing.assert_close(y, back.measurement(torch.float32))  # A·x0 is exactly the observed values
    assert y.shape == (1, back.count * 2)
    torch.testing.assert_close(op.forward(op.transpose(y)), y)  # A·Aᵀ = I


def test_one_channel_values_may_be_a_vector(tmp_path):
    p = _write(tmp_path / "o.npz", idx=np.array([[0, 1], [2, 3]]), values=np.array([0.5, -0.5]), noise_std=0.1)
    obs = read_observations(p, (1, 4, 4))
    assert obs.values.shape == (2, 1) and obs.noise_std == pytest.approx(0.1)


@pytest.mark.parametrize("arrays, fragment", [
    (dict(values=np.zeros(2)), "missing key 'idx'"),
    (dict(idx=np.zeros((2, 2), int)), "missing key 'values'"),
    (dict(idx=np.array([[0, 0], [4, 1]]), values=np.zeros(2)), "idx[1] = [4, 1] is outside the 4x4 field"),
    (dict(idx=np.array([[0, 0], [0, -1]]), values=np.zeros(2)), "idx[1] = [0, -1] is outside"),
    (dict(idx=np.array([[1, 1], [1, 1]]), values=np.zeros(2)), "names pixel [1, 1] more than once"),
    (dict(idx=np.zeros((2, 3), int), values=np.zeros(2)), "idx is int64 (2, 3); valid: integers of shape (M, 2)"),
    (dict(idx=np.zeros((2, 2)), values=np.zeros(2)), "idx is float64"),
    (dict(idx=np.array([[0, 0], [1, 1]]), values=np.zeros(3)), "values has shape (3,) but idx has 2 points"),
    (dict(idx=np.array([[0, 0], [1, 1]]), values=np.array([0.0, np.nan])), "values[1] is not finite"),
    (dict(idx=np.array([[0, 0]]), values=np.zeros(1), noise_std=np.array(-1.0)), "noise_std"),
    (dict(idx=np.array([[0, 0]]), values=np.zeros(1), noise_std=np.array([0.1, 0.2])), "one finite number >= 0"),
    (dict(idx=np.array([[0, 0]]), values=np.zeros(1), extra=np.zeros(1)), "unknown key 'extra'"),
    (dict(idx=np.zeros((0, 2), int), values=np.zeros(0)), "idx holds 0 points"),
])
def test_bad_files_are_one_line_errors(tmp_path, arrays, fragment):
    p = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as e:
        read_observations(p, (1, 4, 4))
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg and "bad.npz" in msg


def test_two_channel_fields_need_every_channel(tmp_path):
    p = _write(tmp_path / "o.npz", idx=np.array([[0, 0], [1, 1]]), values=np.zeros(2))
    with pytest.raises(DataError, match=r"valid: \(2, 2\) \(every observed channel at each point\)"):
        read_observations(p, (2, 4, 4))


def test_pickles_garbage_and_missing_files_are_refused(tmp_path):
    np.savez(tmp_path / "o.npz", idx=np.array([{"a": 1}], dtype=object), values=np.zeros(1))
    with pytest.raises(DataError, match="not a readable NPZ"):
        read_observations(tmp_path / "o.npz", (1, 4, 4))
    (tmp_path / "g.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable NPZ"):
        read_observations(tmp_path / "g.npz", (1, 4, 4))
    with pytest.raises(DataError, match="does not exist"):
        read_observations(tmp_path / "none.npz", (1, 4, 4))


def test_point_operator_is_point_major():
    op = PointObservation(torch.tensor([[0, 1], [3, 2]]), (2, 4, 4))
    x = torch.randn(3, 2, 4, 4)
    y = op(x)
    assert torch.equal(y[:, 0], x[:, 0, 0, 1]) and torch.equal(y[:, 1], x[:, 1, 0, 1]) and torch.equal(y[:, 3], x[:, 1, 3, 2])


def test_a_channel_subset_reads_back_and_observes_only_those_channels(tmp_path):
    field = torch.randn(2, 6, 5, dtype=torch.float64)
    full = random_observations(field, 0.4, seed=3)
    part = random_observations(field, 0.4, seed=3, channels=[1])  # the u of a Darcy pair alone
    assert torch.equal(part.idx, full.idx)  # the same pixels whatever is observed there
    assert part.values.shape == (full.count, 1) and torch.equal(part.values[:, 0], full.values[:, 1])
    back = read_observations(write_observations(tmp_path / "o.npz", part), (2, 6, 5))
    assert back.channels == (1,) and torch.equal(back.values, part.values)
    op = back.operator((2, 6, 5))
    y = op(field[None].float())
    assert y.shape == (1, back.count)
    torch.testing.assert_close(y, back.measurement(torch.float32))
    torch.testing.assert_close(op.forward(op.transpose(y)), y)  # A·Aᵀ = I still
    assert op.transpose(y)[0, 0].abs().sum() == 0  # nothing lands in the unobserved channel
    swapped = random_observations(field, 0.4, seed=3, channels=[1, 0])  # values' columns follow `channels`
    torch.testing.assert_close(swapped.operator((2, 6, 5))(field[None]), swapped.measurement(torch.float64))


@pytest.mark.parametrize("channels, fragment", [
    (np.array([2]), "channels is int64 (1,) [2]; valid: 1..2 distinct integers in 0..1"),
    (np.array([1, 1]), "channels is int64 (2,) [1, 1]"),
    (np.array([0.0]), "channels is float64"),
    (np.array([0, 1, 0]), "channels is int64 (3,)"),
])
def test_bad_channels_are_one_line_errors(tmp_path, channels, fragment):
    p = _write(tmp_path / "bad.npz", idx=np.array([[0, 0]]), values=np.zeros(1), channels=channels)
    with pytest.raises(DataError) as e:
        read_observations(p, (2, 4, 4))
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_values_must_match_the_observed_channels(tmp_path):
    p = _write(tmp_path / "o.npz", idx=np.array([[0, 0], [1, 1]]), values=np.zeros((2, 2)), channels=np.array([1]))
    with pytest.raises(DataError, match=r"channels \[1\] are observed; valid: \(2,\) or \(2, 1\)"):
        read_observations(p, (2, 4, 4))
    with pytest.raises(ValueError, match="distinct indices in 0..1"):
        random_observations(torch.zeros(2, 4, 4), 0.5, seed=0, channels=[2])


def test_baselines_leave_unobserved_channels_empty():
    from noisecraft.fields import cubic_baseline, gp_baseline

    field = torch.randn(2, 8, 8, dtype=torch.float64)
    obs = random_observations(field, 0.5, seed=0, channels=[1])
    mean, std = gp_baseline(obs, (2, 8, 8), restarts=0)
    cubic = cubic_baseline(obs, (2, 8, 8))
    for est in (mean, std, cubic):
        assert est[0].isnan().all() and est[1].isfinite().all()
    rows, cols = obs.idx[:, 0], obs.idx[:, 1]
    torch.testing.assert_close(cubic[1, rows, cols], field[1, rows, cols])  # interpolation passes through the points
