"""Metrics against direct NumPy/SciPy formulas, and their sanity properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from noisecraft.eval import (
    class_accuracy,
    class_coverage,
    class_histogram,
    feature_stats,
    frechet_distance,
    kid,
    precision_recall,
)


def _random_features(seed, n, d, shift=0.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ a + shift + rng.normal(size=d) * 0.1


def _fd_scipy(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _mmd2_unbiased_explicit(x, y):
    """Σ_{i≠j} k(x_i,x_j)/(m(m-1)) + Σ_{i≠j} k(y_i,y_j)/(m(m-1)) - 2 Σ_{i,j} k(x_i,y_j)/m², double loops."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m = x.shape[0]
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m)


@pytest.mark.parametrize("d", [4, 16])
def test_frechet_distance_matches_scipy_sqrtm(d):
    x, y = _random_features(0, 300, d), _random_features(1, 250, d, shift=0.3)
    ours, ref = frechet_distance(x, y), _fd_scipy(x, y)
    assert ours == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_identical_sets_is_zero():
    x = _random_features(2, 200, 8)
    assert abs(frechet_distance(x, x)) < 1e-9
    assert frechet_distance(x, x + 1.0) == pytest.approx(8.0, rel=1e-9)  # a pure mean shift: |Δμ|²


def test_kid_matches_explicit_unbiased_mmd():
    x, y = _random_features(3, 40, 5), _random_features(4, 40, 5, shift=0.5)
    ref = _mmd2_unbiased_explicit(x, y)
    for method in ("gram", "subsets"):
        r = kid(x, y, num_subsets=1, subset_size=40, method=method)
        assert r.mean == pytest.approx(ref, rel=1e-6)
        assert r.subset_size == 40


def test_kid_subsets_mean_and_standard_error():
    x, y = _random_features(5, 120, 6), _random_features(6, 90, 6, shift=0.2)
    r = kid(x, y, num_subsets=7, subset_size=30, seed=3)
    rng = np.random.default_rng(3)  # the documented subset draw: real then generated indices per subset
    vals = []
    for _ in range(7):
        ix, iy = rng.choice(120, 30, replace=False), rng.choice(90, 30, replace=False)
        vals.append(_mmd2_unbiased_explicit(x[ix], y[iy]))
    assert r.mean == pytest.approx(np.mean(vals), rel=1e-6)
    assert r.std_err == pytest.approx(np.std(vals, ddof=1) / np.sqrt(7), rel=1e-6)
    again = kid(x, y, num_subsets=7, subset_size=30, seed=3, method="subsets")
    assert again.mean == pytest.approx(r.mean, rel=1e-9) and again.std_err == pytest.approx(r.std_err, rel=1e-9)


def test_precision_recall_sanity():
    x = _random_features(7, 200, 6)
    assert tuple(precision_recall(x, x)) == (1.0, 1.0)
    far = precision_recall(x, x + 1000.0)
    assert tuple(far) == (0.0, 0.0)
    # Half of the generated points are real ones, half far away: precision is exactly 1/2; the real
    # points that were copied are recalled, and the others only when they fall in a generated ball.
    mixed = np.concatenate([x[:100], x[100:] + 1000.0])
    p, r = precision_recall(x, mixed)
    assert p == 0.5 and 0.5 <= r < 1.0


def test_too_few_samples_for_covariance():
    with pytest.raises(ValueError, match=r"need at least 9 \(feature_dim \+ 1\)"):
        feature_stats(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="need at least 9"):
        frechet_distance(_random_features(0, 50, 8), _random_features(1, 8, 8))


def test_feature_dimension_mismatch_names_both():
    x, y = _random_features(0, 50, 8), _random_features(1, 50, 6)
    for fn in (frechet_distance, kid, precision_recall):
        with pytest.raises(ValueError, match=r"dimension 8.*dimension 6"):
            fn(x, y)


def test_bad_features():
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((20, 2), np.nan), np.zeros((20, 2)))
    with pytest.raises(ValueError, match="2-D"):
        kid(np.zeros(10), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="at least 4 real"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


def test_class_metrics():
    pred = np.array([0, 1, 1, 2, 2, 2])
    assert class_accuracy(pred, np.array([0, 1, 2, 2, 2, 0])) == pytest.approx(4 / 6)
    assert class_coverage(pred, 4) == 0.75
    assert class_coverage(pred, 3, min_fraction=0.2) == pytest.approx(2 / 3)
    np.testing.assert_allclose(class_histogram(pred, 3), [1 / 6, 2 / 6, 3 / 6])
    with pytest.raises(ValueError, match="0..2"):
        class_histogram(pred, 2)


def test_precision_recall_does_not_depend_on_chunking():
    x, y = _random_features(8, 150, 5), _random_features(9, 120, 5, shift=0.4)
    assert precision_recall(x, y, k=5) == precision_recall(x, y, k=5, chunk=7)
