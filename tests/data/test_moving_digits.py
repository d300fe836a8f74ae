"""`moving-digits`: deterministic clips of real sklearn digits whose trajectories obey elastic
reflection (exactly, frame by frame), whose pixels follow those trajectories and stay inside the
frame, and whose train and test clips never share a digit image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisecraft.data import BUILTIN_DATASETS, VideoDataset, load_dataset, load_moving_digits
from noisecraft.data.digits import digits_split_indices
from noisecraft.data.moving_digits import render_sprites
from noisecraft.data.video import bounce

SMALL = dict(num_clips=60)


def check_reflection(pos: np.ndarray, vel: np.ndarray, low: float, high: float) -> int:
    """Assert elastic reflection along one axis of (T,) positions and velocities; returns the bounces.
    Between frames the point moves by its velocity, unless that would cross a wall: then the velocity
    flips sign (same speed) and the position is the mirror image across that wall."""
    assert np.all(pos >= low - 1e-9) and np.all(pos <= high + 1e-9)
    assert np.allclose(np.abs(vel), abs(vel[0]))  # speed is conserved
    bounces = 0
    for t in range(len(pos) - 1):
        q = pos[t] + vel[t]  # where the point would be without walls
        if vel[t + 1] == vel[t]:
            assert low - 1e-9 <= q <= high + 1e-9 and np.isclose(pos[t + 1], q)
        else:
            bounces += 1
            assert vel[t + 1] == -vel[t]
            assert q >= high - 1e-9 or q <= low + 1e-9  # it reached a wall
            mirror = 2 * high - q if q >= high - 1e-9 else 2 * low - q
            assert np.isclose(pos[t + 1], mirror)
    return bounces


def test_bounce_is_elastic_reflection_in_closed_form():
    rng = np.random.default_rng(0)
    total = 0
    for _ in range(200):
        low, high = sorted(rng.uniform(0, 30, 2))
        if high - low < 1:
            continue
        v = rng.uniform(-1, 1) * (high - low) * 0.95
        pos, vel = bounce(np.array(rng.uniform(low, high)), np.array(v), 40, low, high)
        total += check_reflection(pos, vel, low, high)
    assert total > 100  # the walls were really hit
    pos, vel = bounce(np.array(2.0), np.array(-1.5), 4, 1.0, 5.0)
    assert np.allclose(pos, [2.0, 1.5, 3.0, 4.5]) and np.allclose(vel, [-1.5, 1.5, 1.5, 1.5])


def test_shape_registration_and_determinism():
    assert BUILTIN_DATASETS["moving-digits"] is load_moving_digits
    ds = load_dataset("moving-digits", split="test")
    assert isinstance(ds, VideoDataset) and ds.modality == "video" and ds.modality_options == {"fps": 10}
    assert ds.sample_shape == (1, 16, 32, 32) and len(ds) == 400 and ds.num_classes == 10
    assert ds.data.min() >= -1 and ds.data.max() <= 1 and ds.data.max() > 0.9
    assert torch.equal(ds.data, load_moving_digits(split="test").data)  # same arguments, same bits
    other = load_moving_digits(split="test", seed=5, num_clips=400)
    assert not torch.equal(ds.data, other.data)
    small = load_moving_digits(split="train", resolution=16, frames=5, channels=3, **SMALL)
    assert small.sample_shape == (3, 5, 16, 16) and torch.equal(small.data[:, 0], small.data[:, 2])
    assert np.bincount(ds.labels.numpy(), minlength=10).tolist() == [40] * 10  # balanced classes


def test_trajectories_obey_elastic_reflection_inside_the_frame():
    ds = load_moving_digits(split="train", labels=False, **SMALL)
    side, size = 32, 16
    low, high = size / 2 + size / 16, side - size / 2 - size / 16
    assert np.array_equal(ds.walls, np.tile([low, high], (len(ds), 1)))
    assert ds.positions.shape == ds.velocities.shape == (60, 2, 16, 2)
    bounces = 0
    for i in range(len(ds)):
        for k in range(ds.num_objects[i]):
            for axis in range(2):
                bounces += check_reflection(ds.positions[i, k, :, axis], ds.velocities[i, k, :, axis], low, high)
            speed = np.linalg.norm(ds.velocities[i, k, 0])
            assert 1.0 - 1e-9 <= speed <= 2.5 + 1e-9
    assert bounces > 30
    # two-digit clips: slot 1 is NaN exactly where there is no second digit
    two = ds.digits[:, 1] >= 0
    assert 0 < two.sum() < len(ds) and np.array_equal(ds.num_objects, 1 + two)
    assert np.isnan(ds.positions[~two, 1]).all() and not np.isnan(ds.positions[two]).any()


def test_pixels_follow_the_trajectory_and_stay_inside():
    from sklearn.datasets import load_digits

    ds = load_moving_digits(split="test", **SMALL)  # one digit per clip
    ink = (ds.data[:, 0].double() + 1) / 2  # (N, T, R, R) in [0, 1]
    # nothing is cut off: drawn on a canvas 4 px larger on every side, the clip is the same inside
    # and the extra border is empty
    sprites = torch.from_numpy(load_digits().images[ds.image_index[:, 0]].astype(np.float32) / 16)
    big = render_sprites(sprites, ds.positions[:, 0] + 4, 16.0, 40).double()
    assert torch.allclose(big[..., 4:-4, 4:-4], ink, atol=1e-6)
    assert big.sum() == pytest.approx(ink.sum().item(), rel=1e-7)
    # the ink centroid moves exactly with the sprite centre (the sprite is only translated)
    grid = torch.arange(32, dtype=torch.float64) + 0.5
    mass = ink.sum((-2, -1))
    cy = (ink.sum(-1) * grid).sum(-1) / mass  # (N, T)
    cx = (ink.sum(-2) * grid).sum(-1) / mass
    centroid = torch.stack([cy, cx], -1).numpy()
    offset = centroid - ds.positions[:, 0]  # the digit's own ink centroid relative to its cell centre
    assert np.abs(offset - offset[:, :1]).max() < 0.05  # constant over the clip


def test_splits_use_disjoint_digit_images():
    from sklearn.datasets import load_digits

    y = load_digits().target
    train = load_moving_digits(split="train", labels=False, num_clips=600)
    test = load_moving_digits(split="test", labels=False, num_clips=600)
    used_train = set(train.image_index[train.image_index >= 0].tolist())
    used_test = set(test.image_index[test.image_index >= 0].tolist())
    assert used_train <= set(digits_split_indices(y, "train").tolist())
    assert used_test <= set(digits_split_indices(y, "test").tolist())
    assert not used_train & used_test and len(used_test) > 150
    assert np.array_equal(test.digits[test.image_index >= 0], y[test.image_index[test.image_index >= 0]])


def test_labels_and_two_digit_clips():
    ds = load_moving_digits(split="train", **SMALL)
    assert (ds.digits[:, 1] == -1).all() and torch.equal(ds.labels, torch.from_numpy(ds.digits[:, 0]))
    assert ds.class_names == [str(d) for d in range(10)]
    unlabelled = load_moving_digits(split="train", labels=False, two_digit_fraction=1.0, **SMALL)
    assert unlabelled.num_classes == 0 and (unlabelled.digits[:, 1] >= 0).all()
    with pytest.raises(ValueError, match="two_digit_fraction 0.5 needs labels=False"):
        load_moving_digits(two_digit_fraction=0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="heldout"), "split must be one of train, test, all"),
    (dict(hflip=True), "mirrored digits are not digits"),
    (dict(resolution=6), "resolution 6 is too small"),
    (dict(frames=0), "frames must be an integer in 1..256"),
    (dict(two_digit_fraction=1.5, labels=False), r"two_digit_fraction must be in \[0, 1\]"),
    (dict(split="all", num_clips=5), "split='all' concatenates"),
    (dict(num_clips=0), "num_clips must be a positive integer"),
    (dict(fps=30, num_clips=2), "fps 30 is not valid"),
])
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_moving_digits(**kwargs)
