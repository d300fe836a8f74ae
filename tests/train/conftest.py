"""Fixtures for the training tests: a small slice of the digits data and tiny configs."""

from __future__ import annotations

import pytest

from noisecraft.data import ImageDataset, load_dataset
from noisecraft.config import load_config


@pytest.fixture(scope="session")
def digits8():
    return load_dataset("digits", resolution=8, split="train")


@pytest.fixture
def small_ds(digits8):
    """40 labelled 8x8 digits with flips enabled: an epoch is 5 steps of batch 8."""
    return ImageDataset(digits8.images[:40].clone(), digits8.labels[:40].clone(), class_names=digits8.class_names,
                        name="digits-40", hflip=True)


def _tiny_config(*overrides: str):
    base = ["train.batch_size=8", "train.accum_steps=2", "train.steps=10", "train.checkpoint_every=100",
            "train.log_every=2", "train.class_dropout=0.25", "ema.phema_every=3", "sample.per_class=1",
            "sample.nfe=2", "optim.decay=cosine", "optim.warmup_steps=3"]
    return load_config("tiny", base + list(overrides))


@pytest.fixture
def tiny_config():
    """`tiny_config("train.steps=4", ...)`: the tiny preset shrunk further for loop tests."""
    return _tiny_config
