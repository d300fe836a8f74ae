"""Fixtures for the evaluation tests: an isolated cache folder and a tiny fitted feature classifier."""

from __future__ import annotations

import pytest
import torch

from noisecraft.data import load_dataset
from noisecraft.eval import fit_classifier, save_extractor


@pytest.fixture(autouse=True)
def single_thread():
    """These tests run many tiny tensor ops (ODE steps, small nets), which are fastest on one thread
    and very slow when two threads fight over a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache root, so nothing is read from or written to ~/.cache."""
    root = tmp_path / "nc-cache"
    monkeypatch.setenv("NOISECRAFT_CACHE", str(root))
    monkeypatch.delenv("NOISECRAFT_INCEPTION_WEIGHTS", raising=False)
    return root


@pytest.fixture(scope="session")
def digits8_splits():
    return load_dataset("digits", resolution=8, split="train"), load_dataset("digits", resolution=8, split="test")


@pytest.fixture(scope="session")
def tiny_features(digits8_splits, tmp_path_factory):
    """A few-step classifier on 8x8 digits with 8-d features, saved to a folder: (folder, FitResult)."""
    train, test = digits8_splits
    result = fit_classifier(train.images, train.labels, train.class_names, holdout=(test.images, test.labels),
                            steps=30, batch_size=32, width=4, feature_dim=8, dataset="digits")
    folder = save_extractor(result.extractor, tmp_path_factory.mktemp("features") / "digits8")
    return folder, result
