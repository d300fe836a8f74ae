"""Reference-feature cache: keyed by content, hit/miss, corrupted files are recomputed with a warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import noisecraft.eval as ev


@pytest.fixture
def extractor(tiny_features):
    return ev.load_extractor(tiny_features[0])


@pytest.fixture
def images(digits8_splits):
    return digits8_splits[0].images[:60]


def _same(a, b):
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.stats.mu, b.stats.mu)
    np.testing.assert_array_equal(a.stats.sigma, b.stats.sigma)


def test_miss_then_hit(images, extractor, isolated_cache):
    first = ev.reference_features(images, extractor)
    assert not first.from_cache and first.path.is_file() and first.path.parent == isolated_cache / "reference"
    second = ev.reference_features(images, extractor)
    assert second.from_cache and second.key == first.key
    _same(first, second)
    # A hit returns exactly what a fresh computation gives.
    _same(first, ev.reference_features(images, extractor, use_cache=False))


def test_key_follows_content(images, extractor):
    key = ev.reference_key(images, extractor)
    assert ev.reference_key(images.clone(), extractor) == key  # same bytes, same key
    changed = images.clone()
    changed[0, 0, 0, 0] += 0.01
    assert ev.reference_key(changed, extractor) != key
    moved = ev.FeatureExtractor(extractor.module, name=extractor.name, head=extractor.head,
                                preprocess=ev.Preprocess(size=9, channels=1, antialias=True))
    assert ev.reference_key(images, moved) != key  # preprocessing is part of the key
    torch.manual_seed(123)
    perturbed = ev.FeatureExtractor(type(extractor.module)(extractor.module.config), name=extractor.name,
                                    preprocess=extractor.preprocess)
    assert ev.reference_key(images, perturbed) != key  # other weights


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty"])
def test_corrupted_file_is_recomputed_with_a_warning(images, extractor, damage):
    first = ev.reference_features(images, extractor)
    data = first.path.read_bytes()
    first.path.write_bytes({"garbage": b"\x00junk" * 50, "truncate": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.warns(RuntimeWarning, match="unreadable.*recomputing"):
        again = ev.reference_features(images, extractor)
    assert not again.from_cache
    _same(first, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ev.reference_features(images, extractor).from_cache  # rewritten, valid again


def test_file_of_another_key_is_not_trusted(images, extractor):
    a = ev.reference_features(images, extractor)
    b = ev.reference_features(images[:30], extractor)
    a.path.write_bytes(b.path.read_bytes())  # right format, wrong content
    with pytest.warns(RuntimeWarning, match="key does not match"):
        again = ev.reference_features(images, extractor)
    _same(a, again)


def test_no_cache_writes_nothing(images, extractor, isolated_cache):
    r = ev.reference_features(images, extractor, use_cache=False)
    assert r.path is None and not (isolated_cache / "reference").exists()


def test_too_few_images_for_stats(extractor, digits8_splits):
    r = ev.reference_features(digits8_splits[0].images[:5], extractor)  # 5 < 8 + 1
    assert r.stats is None and r.features.shape == (5, 8)
    assert ev.reference_features(digits8_splits[0].images[:5], extractor).from_cache
