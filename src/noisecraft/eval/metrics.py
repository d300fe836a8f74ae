"""Sample-quality metrics as pure functions of feature arrays (float64 math throughout).

Every metric compares features of real data with features of generated samples; the features come
from a pluggable extractor (see `noisecraft.eval.features`). Inputs are array-likes of shape (N, F)
(NumPy arrays or torch tensors); results are Python floats.

* Fréchet distance (Heusel et al. 2017, "FID" with Inception features):
      FD = |μ_a - μ_b|² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^{1/2})
* KID (Bińkowski et al. 2018): the unbiased estimate of MMD² with the cubic polynomial kernel
      k(x, y) = (x·y / F + 1)³,
  averaged over random subsets; reported as mean and standard error over subsets.
* Precision / recall (Kynkäänniemi et al. 2019): each set is approximated by the union of balls
  around its points whose radius is the distance to the k-th nearest neighbour within the set;
  precision = fraction of generated points inside the real manifold, recall = fraction of real
  points inside the generated manifold.
* Class accuracy / coverage from a classifier's predictions on generated samples.
* Near copies of the training set (memorization): the nearest-neighbour ratio test of Yoon et al.
  2023 and Gu et al. 2023 — a sample is a copy when its nearest training point is closer than
  1/3 of its second nearest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "FeatureStats",
    "KIDResult",
    "PrecisionRecall",
    "as_features",
    "feature_stats",
    "min_samples_for_stats",
    "frechet_distance",
    "frechet_distance_from_stats",
    "kid",
    "precision_recall",
    "NearCopies",
    "nearest_two",
    "near_copies",
    "class_accuracy",
    "class_coverage",
    "class_histogram",
]


def as_features(x, name: str = "features") -> np.ndarray:
    """A finite float64 array (N, F) from a NumPy array or torch tensor; ValueError otherwise."""
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().to(dtype=_torch_float64()).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, F), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _torch_float64():
    import torch

    return torch.float64


def _check_dims(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("real", "generated")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feature dimensions differ: {names[0]} features have dimension {a.shape[1]}, "
            f"{names[1]} features have dimension {b.shape[1]} (use the same extractor for both)"
        )


# ------------------------------------------------------------------------------------------------
# Fréchet distance


def min_samples_for_stats(feature_dim: int) -> int:
    """Samples needed for a full-rank covariance estimate of `feature_dim` features: F + 1.

    With N ≤ F samples the (N-1)-rank sample covariance is singular, (Σ_a Σ_b)^{1/2} is ill defined
    and FD is dominated by estimation noise, so we refuse rather than report a misleading number.
    """
    return int(feature_dim) + 1


@dataclass(frozen=True)
class FeatureStats:
    """Mean (F,) and unbiased covariance (F, F) of N feature vectors, float64."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


def feature_stats(features, name: str = "features") -> FeatureStats:
    """Mean and unbiased (N-1) covariance; ValueError if N < F + 1 (see `min_samples_for_stats`)."""
    f = as_features(features, name)
    n, d = f.shape
    need = min_samples_for_stats(d)
    if n < need:
        raise ValueError(
            f"{name}: {n} samples are too few for a {d}-dimensional covariance; "
            f"need at least {need} (feature_dim + 1)"
        )
    mu = f.mean(axis=0)
    centred = f - mu
    sigma = centred.T @ centred / (n - 1)
    return FeatureStats(mu, (sigma + sigma.T) / 2, n)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via eigh (tiny negative eigenvalues from round-off clipped to 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    """FD between Gaussians N(μ_a, Σ_a) and N(μ_b, Σ_b).

    tr((Σ_a Σ_b)^{1/2}) is computed as Σ sqrt(eig(S Σ_b S)) with S = Σ_a^{1/2}: S Σ_b S is symmetric
    PSD and similar to Σ_a Σ_b, so its eigenvalues are real and non-negative — this avoids the complex
    round-off of a general matrix square root (scipy.linalg.sqrtm) while giving the same value.
    """
    if a.dim != b.dim:
        raise ValueError(f"feature dimensions differ: {a.dim} vs {b.dim} (use the same extractor for both)")
    diff = a.mu - b.mu
    s = _sqrt_psd(a.sigma)
    inner = s @ b.sigma @ s
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    fd = float(diff @ diff) + float(np.trace(a.sigma)) + float(np.trace(b.sigma)) - 2.0 * tr_sqrt
    return max(fd, 0.0)  # identical sets give ~0 up to round-off, never a negative distance


def frechet_distance(real, generated) -> float:
    """FD between the Gaussian fits of two feature sets (N_a, F) and (N_b, F)."""
    a, b = as_features(real, "real features"), as_features(generated, "generated features")
    _check_dims(a, b)
    return frechet_distance_from_stats(feature_stats(a, "real features"), feature_stats(b, "generated features"))


# ------------------------------------------------------------------------------------------------
# KID


class KIDResult(NamedTuple):
    """KID mean over subsets and its standard error (std over subsets / sqrt(num_subsets))."""

    mean: float
    std_err: float
    num_subsets: int
    subset_size: int


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / F + 1)³, the KID kernel."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD² from m×m kernel blocks (diagonals of kxx/kyy excluded)."""
    m = kxx.shape[0]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.sum() / (m * m))


# Above this many kernel entries per full Gram matrix, subsets are evaluated one by one.
_FULL_GRAM_LIMIT = 4096 * 4096


def kid(
    real,
    generated,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    method: str = "auto",
) -> KIDResult:
    """Kernel Inception Distance: unbiased MMD² (cubic polynomial kernel) over random subsets.

    Each subset draws m = min(subset_size, N_real, N_generated) points without replacement from each
    set with `numpy.random.default_rng(seed)` (real indices first, then generated, per subset), so
    results are deterministic for a fixed seed. Per subset

        MMD² = Σ_{i≠j} k(x_i, x_j)/(m(m-1)) + Σ_{i≠j} k(y_i, y_j)/(m(m-1)) - 2 Σ_{i,j} k(x_i, y_j)/m².

    method: "gram" computes the full kernel matrices once and sums each subset with indicator
    vectors (fast for a few thousand points), "subsets" builds the m×m blocks per subset (bounded
    memory), "auto" picks "gram" when both sets have at most 4096 points.
    """
    x, y = as_features(real, "real features"), as_features(generated, "generated features")
    _check_dims(x, y)
    if isinstance(num_subsets, bool) or not isinstance(num_subsets, int) or num_subsets < 1:
        raise ValueError(f"num_subsets must be an integer >= 1, got {num_subsets!r}")
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an integer >= 2, got {subset_size!r}")
    if method not in ("auto", "gram", "subsets"):
        raise ValueError(f"method must be one of auto, gram, subsets; got {method!r}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {x.shape[0]} real and {y.shape[0]} generated")
    rng = np.random.default_rng(seed)
    subsets = [(rng.choice(x.shape[0], m, replace=False), rng.choice(y.shape[0], m, replace=False))
               for _ in range(num_subsets)]
    if method == "auto":
        method = "gram" if max(x.shape[0], y.shape[0]) ** 2 <= _FULL_GRAM_LIMIT else "subsets"
    if method == "gram":
        kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        sx = np.zeros((num_subsets, x.shape[0]))
        sy = np.zeros((num_subsets, y.shape[0]))
        for i, (ix, iy) in enumerate(subsets):
            sx[i, ix] = 1.0
            sy[i, iy] = 1.0
        # For an indicator vector s of a subset: Σ_{i,j∈S} K_ij = sᵀ K s, Σ_{i∈S} K_ii = s·diag(K).
        sum_xx = ((sx @ kxx) * sx).sum(1) - sx @ np.diag(kxx)
        sum_yy = ((sy @ kyy) * sy).sum(1) - sy @ np.diag(kyy)
        sum_xy = ((sx @ kxy) * sy).sum(1)
        values = sum_xx / (m * (m - 1)) + sum_yy / (m * (m - 1)) - 2.0 * sum_xy / (m * m)
    else:
        values = np.array([
            _mmd2_unbiased(_poly_kernel(x[ix], x[ix]), _poly_kernel(y[iy], y[iy]), _poly_kernel(x[ix], y[iy]))
            for ix, iy in subsets
        ])
    std_err = float(values.std(ddof=1) / math.sqrt(num_subsets)) if num_subsets > 1 else float("nan")
    return KIDResult(float(values.mean()), std_err, num_subsets, m)


# ------------------------------------------------------------------------------------------------
# Precision / recall


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), clipped at 0 against round-off."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _knn_radii(f: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    out = np.empty(f.shape[0])
    for start in range(0, f.shape[0], chunk):
        d = _sq_dists(f[start : start + chunk], f)
        # Column k of the sorted row: index 0 is the point itself (distance 0).
        out[start : start + chunk] = np.partition(d, k, axis=1)[:, k]
    return out


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int) -> float:
    """Fraction of `points` inside at least one ball (centre, radius²)."""
    inside = 0
    for start in range(0, points.shape[0], chunk):
        d = _sq_dists(points[start : start + chunk], centres)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / points.shape[0]


def precision_recall(real, generated, *, k: int = 3, chunk: int | None = None) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds (k = 3 default).

    precision = fraction of generated points within the k-NN radius of some real point;
    recall    = fraction of real points within the k-NN radius of some generated point.
    Identical sets give (1, 1); far-apart sets give (0, 0). Each set needs at least k + 1 points.
    chunk: rows of the distance matrix held at once (default: about 16M distances per block).
    """
    x, y = as_features(real, "real features"), as_features(generated, "generated features")
    _check_dims(x, y)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    for name, f in (("real", x), ("generated", y)):
        if f.shape[0] < k + 1:
            raise ValueError(f"precision/recall with k={k} needs at least {k + 1} {name} samples, got {f.shape[0]}")
    if chunk is None:
        chunk = max(1, min(4096, (1 << 24) // max(x.shape[0], y.shape[0])))
    rx, ry = _knn_radii(x, k, chunk), _knn_radii(y, k, chunk)
    return PrecisionRecall(_coverage(y, x, rx, chunk), _coverage(x, y, ry, chunk))


# ------------------------------------------------------------------------------------------------
# Near copies of the training set


class NearCopies(NamedTuple):
    """Per query: copy flag, distance to the nearest and second-nearest reference point, nearest index."""

    rate: float
    is_copy: np.ndarray  # (N,) bool
    nearest: np.ndarray  # (N,) float64
    second: np.ndarray  # (N,) float64
    index: np.ndarray  # (N,) int64


def nearest_two(queries, reference, *, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (N, 2) from each query to its two nearest reference points, and their indices (N, 2)."""
    q, r = as_features(queries, "queries"), as_features(reference, "reference")
    _check_dims(r, q, ("reference", "query"))
    if r.shape[0] < 2:
        raise ValueError(f"nearest_two needs at least 2 reference points, got {r.shape[0]}")
    chunk = chunk or max(1, min(4096, (1 << 24) // r.shape[0]))
    dist, idx = np.empty((q.shape[0], 2)), np.empty((q.shape[0], 2), dtype=np.int64)
    for s in range(0, q.shape[0], chunk):
        d = _sq_dists(q[s : s + chunk], r)
        two = np.argpartition(d, 1, axis=1)[:, :2]  # the two smallest, in either order
        dd = np.take_along_axis(d, two, axis=1)
        order = np.argsort(dd, axis=1)
        idx[s : s + chunk] = np.take_along_axis(two, order, axis=1)
        dist[s : s + chunk] = np.sqrt(np.take_along_axis(dd, order, axis=1))
    return dist, idx


def near_copies(generated, train, *, ratio: float = 1 / 3, chunk: int | None = None) -> NearCopies:
    """Fraction of generated points that are near copies of a training point (vectors (N, D), e.g.
    flattened waveforms or features).

    A point is a copy when d₁ ≤ ratio · d₂, d₁ and d₂ being the distances to its nearest and second
    nearest training points (Yoon et al. 2023, Gu et al. 2023: ratio 1/3 on L2 distances). The test
    is scale-free and flags an exact copy (d₁ = 0) whatever the data. Data whose points lie on a
    low-dimensional manifold (a few random parameters per example) have a non-zero rate even for
    fresh real examples, so compare with the rate of held-out real data against the same training set.
    """
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    d, idx = nearest_two(generated, train, chunk=chunk)
    is_copy = d[:, 0] <= ratio * d[:, 1]
    return NearCopies(float(is_copy.mean()), is_copy, d[:, 0], d[:, 1], idx[:, 0])


# ------------------------------------------------------------------------------------------------
# Class-conditional metrics


def _labels(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of class indices, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def class_accuracy(predicted, target) -> float:
    """Fraction of generated samples the classifier assigns to the class they were generated for."""
    p, t = _labels(predicted, "predicted"), _labels(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"predicted has {p.size} labels but target has {t.size}")
    return float((p == t).mean())


def class_histogram(predicted, num_classes: int) -> np.ndarray:
    """Fraction of samples predicted as each class (num_classes,)."""
    p = _labels(predicted, "predicted")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if p.min() < 0 or p.max() >= num_classes:
        raise ValueError(f"predicted labels must lie in 0..{num_classes - 1}, got {p.min()}..{p.max()}")
    return np.bincount(p, minlength=num_classes) / p.size


def class_coverage(predicted, num_classes: int, *, min_fraction: float = 0.0) -> float:
    """Fraction of the classes that the classifier sees among the generated samples.

    A class counts as covered when more than `min_fraction` of the samples are predicted as it
    (0: at least one sample). A mode-dropping model scores below 1.
    """
    if not 0 <= min_fraction < 1:
        raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction}")
    return float((class_histogram(predicted, num_classes) > min_fraction).mean())
