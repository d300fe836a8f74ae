"""Reference features of real data, computed once per (data, extractor, preprocessing) and cached.

The cache key is a SHA-256 of the image tensor's bytes (plus shape and dtype), the extractor's
fingerprint (a hash of its weights, name and preprocessing parameters) and the cache format, so
any change to the data, the weights or the preprocessing gives a new entry and a stale file is
never read. An entry is one safetensors file `<key>.safetensors` holding the features and their
mean and covariance. A file that cannot be read or does not match its key is recomputed with a
warning and rewritten; it never stops an evaluation.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save as np_save
from torch import Tensor

from ..io.files import atomic_write_bytes
from ..io_safety import read_safetensors
from .features import FeatureExtractor, cache_root, write_cache_or_warn
from .metrics import FeatureStats, as_features, feature_stats, min_samples_for_stats

__all__ = ["CACHE_FORMAT", "ReferenceFeatures", "data_hash", "reference_key", "reference_features", "default_cache_dir"]

CACHE_FORMAT = "noisecraft-reference/1"


def default_cache_dir() -> Path:
    return cache_root() / "reference"


@dataclass
class ReferenceFeatures:
    """Features (N, F) float64 of a real image set, their statistics (None if N < F + 1), the cache key."""

    features: np.ndarray
    stats: FeatureStats | None
    key: str
    from_cache: bool
    path: Path | None

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


def data_hash(images: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    t = images.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def reference_key(images: Tensor, extractor: FeatureExtractor) -> str:
    spec = {"format": CACHE_FORMAT, "data": data_hash(images), "extractor": extractor.fingerprint,
            "preprocess": extractor.preprocess.to_dict()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _stats_or_none(features: np.ndarray) -> FeatureStats | None:
    if features.shape[0] < min_samples_for_stats(features.shape[1]):
        return None
    return feature_stats(features, "reference features")


def _read(path: Path, key: str) -> tuple[np.ndarray, FeatureStats | None]:
    arrays = read_safetensors(path, framework="np", finite=False)[0]  # validated header/offsets; finiteness below
    meta_key = arrays.get("key")
    if meta_key is None or bytes(meta_key.tobytes()).decode("ascii", "replace") != key:
        raise ValueError("its key does not match")
    f = as_features(arrays["features"].astype(np.float64), "cached features")
    stats = None
    if "mu" in arrays:
        mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
        d = f.shape[1]
        if mu.shape != (d,) or sigma.shape != (d, d) or not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise ValueError("its statistics have the wrong shape or are not finite")
        stats = FeatureStats(mu, sigma, f.shape[0])
    elif f.shape[0] >= min_samples_for_stats(f.shape[1]):
        raise ValueError("its statistics are missing")
    return f, stats


def _write(path: Path, key: str, features: np.ndarray, stats: FeatureStats | None) -> None:
    f32 = features.astype(np.float32)
    # Extractors compute in float32, so float32 storage is usually lossless; keep float64 otherwise
    # so that a cache hit returns exactly what a fresh computation would.
    stored = f32 if np.array_equal(f32.astype(np.float64), features) else features
    arrays = {"features": np.ascontiguousarray(stored), "key": np.frombuffer(key.encode("ascii"), dtype=np.uint8).copy()}
    if stats is not None:
        arrays["mu"], arrays["sigma"] = np.ascontiguousarray(stats.mu), np.ascontiguousarray(stats.sigma)
    atomic_write_bytes(path, np_save(arrays, metadata={"format": CACHE_FORMAT}))


def reference_features(
    images: Tensor,
    extractor: FeatureExtractor,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 256,
) -> ReferenceFeatures:
    """Features and statistics of real images (N, C, H, W) in [-1, 1], from the cache when possible.

    cache_dir: default $NOISECRAFT_CACHE/reference (~/.cache/noisecraft/reference).
    use_cache: False computes without reading or writing the cache.
    """
    key = reference_key(images, extractor)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.safetensors"
    if use_cache and path.is_file():
        try:
            f, stats = _read(path, key)
            return ReferenceFeatures(f, stats, key, True, path)
        except Exception as e:  # noqa: BLE001 - any defect of a cache file means: recompute it
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            warnings.warn(f"reference cache file {str(path)!r} is unreadable ({msg}); recomputing it", RuntimeWarning,
                          stacklevel=2)
    f = extractor.features(images, batch_size=batch_size)
    stats = _stats_or_none(f)
    if use_cache:
        write_cache_or_warn(lambda: _write(path, key, f, stats), "reference cache", path)
    return ReferenceFeatures(f, stats, key, False, path if use_cache else None)
