"""`moving-shapes`: deterministic captioned clips whose captions, attributes, labels, trajectories and
pixels agree; bouncing clips reflect elastically and turn at least once, linear ones keep their
velocity; the shape stays inside the frame; held-out colour x shape x motion triples never occur in
training while every pair of their attributes does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from noisecraft.data import BUILTIN_DATASETS, BUILTIN_SPLITS, CaptionedVideoDataset, load_dataset
from noisecraft.data.moving_shapes import (HELDOUT_COMBOS, MOTIONS, SEEN_COMBOS, load_moving_shapes, motion_class_index,
                                           motion_class_name, parse_motion_caption)
from noisecraft.data.shapes import COLORS, SHAPES

from test_moving_digits import check_reflection

SMALL = dict(num_clips=120)


@pytest.fixture(scope="module")
def train() -> CaptionedVideoDataset:
    return load_moving_shapes(split="train", **SMALL)


def test_registration_shapes_and_determinism(train):
    assert BUILTIN_DATASETS["moving-shapes"] is load_moving_shapes
    assert BUILTIN_SPLITS["moving-shapes"] == ("train", "test", "heldout", "test_seen", "all")
    assert train.sample_shape == (3, 16, 32, 32) and train.modality == "video" and train.num_classes == 180
    assert torch.equal(train.data, load_moving_shapes(split="train", **SMALL).data)
    assert train.captions == load_moving_shapes(split="train", **SMALL).captions
    assert not torch.equal(train.data, load_moving_shapes(split="train", seed=3, **SMALL).data)
    held = load_dataset("moving-shapes", split="test")
    assert len(held) == 360 and held.attributes == load_moving_shapes(split="heldout").attributes
    small = load_moving_shapes(split="test_seen", resolution=16, frames=6, channels=1, num_clips=4)
    assert small.sample_shape == (1, 6, 16, 16)
    assert motion_class_name(0) == "red circle moving left" and motion_class_index(5, 2, 9) == 179


def test_captions_attributes_and_labels_agree(train):
    for caps, attr, label in zip(train.captions, train.attributes, train.labels.tolist()):
        assert len(caps) == 3 and len(set(caps)) == 3
        for cap in caps:
            assert parse_motion_caption(cap) == attr, cap
        assert label == motion_class_index(attr["color"], attr["shape"], attr["motion"])
        assert train.class_names[label].startswith(f"{COLORS[attr['color']]} {SHAPES[attr['shape']]} ")
    assert parse_motion_caption("a green triangle moving toward the top right") == {"color": 1, "shape": 2, "motion": 5}
    assert parse_motion_caption("a blue square bouncing up and down") == {"color": 2, "shape": 1, "motion": 8}
    for bad in ("a red circle", "a red blue circle moving left", "a red circle moving up and left and right"):
        assert parse_motion_caption(bad) is None, bad


def test_heldout_triples_are_unseen_but_their_pairs_are_seen():
    assert len(HELDOUT_COMBOS) == 18 and len(SEEN_COMBOS) == 162
    train = load_moving_shapes(split="train")  # the pinned 1200 clips
    triples = {(COLORS[a["color"]], SHAPES[a["shape"]], MOTIONS[a["motion"]]) for a in train.attributes}
    assert not triples & set(HELDOUT_COMBOS)
    for i, j in itertools.combinations(range(3), 2):  # every pair of a held-out triple occurs in training
        seen = {(t[i], t[j]) for t in triples}
        assert all((h[i], h[j]) in seen for h in HELDOUT_COMBOS), (i, j)
    held = load_moving_shapes(split="heldout")
    counts = {}
    for a in held.attributes:
        key = (COLORS[a["color"]], SHAPES[a["shape"]], MOTIONS[a["motion"]])
        counts[key] = counts.get(key, 0) + 1
    assert counts == {h: 20 for h in HELDOUT_COMBOS}


def test_motion_physics(train):
    low_r, high_r = 3.5, 5.0
    pos, vel = train.positions[:, 0], train.velocities[:, 0]  # (N, T, 2) (row, col)
    turned = 0
    for i, a in enumerate(train.attributes):
        m = MOTIONS[a["motion"]]
        if m.startswith("bounce"):
            axis = 0 if m == "bounce-vertical" else 1
            lo, hi = train.walls[i]  # where the centre turns: 1.5 r + 0.5 from the edges
            assert 1.5 * low_r + 0.5 - 1e-9 <= lo <= 1.5 * high_r + 0.5 + 1e-9 and np.isclose(lo + hi, 32)
            b = check_reflection(pos[i, :, axis], vel[i, :, axis], lo, hi)
            assert b >= 1  # every bouncing clip turns
            assert np.allclose(vel[i, :, 1 - axis], 0) and np.allclose(pos[i, :, 1 - axis], pos[i, 0, 1 - axis])
            turned += 1
        else:
            direction = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
            want = np.sign(sum(np.array(direction[p]) for p in m.split("-")))
            assert np.allclose(vel[i], vel[i, 0]) and np.array_equal(np.sign(vel[i, 0]), want)
            assert np.allclose(pos[i, 1:] - pos[i, :-1], vel[i, :-1])
        assert pos[i].min() >= train.walls[i, 0] - 1e-9 and pos[i].max() <= train.walls[i, 1] + 1e-9
    assert turned > 10


def test_pixels_follow_the_trajectory_and_stay_inside(train):
    x = (train.data.double() + 1) * 127.5  # (N, 3, T, R, R) 0..255
    background = x[:, :, :, :1, :1]  # the corner pixel: never covered
    diff = (x - background).abs().sum(1)  # (N, T, R, R): the shape's coverage, up to its colour
    for edge in (diff[..., 0, :], diff[..., -1, :], diff[..., :, 0], diff[..., :, -1]):
        assert edge.max() == 0  # the frame border is pure background: the shape stays inside
    grid = torch.arange(32, dtype=torch.float64) + 0.5
    mass = diff.sum((-2, -1))
    cy, cx = (diff.sum(-1) * grid).sum(-1) / mass, (diff.sum(-2) * grid).sum(-1) / mass
    centroid = torch.stack([cy, cx], -1).numpy()
    offset = centroid - train.positions[:, 0]  # circles and squares: ~0; triangles: their centroid lies low
    assert np.abs(offset - offset[:, :1]).max() < 0.3  # the shape moves with its trajectory
    circles = np.array([a["shape"] == 0 for a in train.attributes])
    assert np.abs(offset[circles]).max() < 0.3


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="val"), "split must be one of train, test, heldout, test_seen, all"),
    (dict(hflip=True), "swaps left and right"),
    (dict(frames=300), "frames must be an integer in 1..256"),
    (dict(split="all", seed=1), "split='all' concatenates"),
    (dict(captions_per_clip=0), "captions_per_clip must be a positive integer"),
])
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_moving_shapes(**kwargs)
