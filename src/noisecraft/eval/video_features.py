"""Offline classifiers for video evaluation, fitted on real clips and cached by content.

* **Frame classifier** (`fit_frame_classifier`): the image feature classifier (`fit_classifier`,
  random shifts) trained on every frame of the real clips with the clip's class: a frame of
  `moving-digits` is a digit somewhere in the frame, and the net's global average pool does not care
  where. It gives per-frame class accuracy and identity consistency.
* **Motion classifier** (`fit_motion_features`): a small 3-D conv net whose penultimate layer is the
  feature space of the Fréchet video distance (FVD; Unterthiner et al. 2018 use an I3D net trained
  on Kinetics; here a net fitted on the built-in clips, as the audio and image features are).
  A class classifier alone could ignore the order of frames, so it learns 2K classes: each of the K
  classes as a real clip, and as the same clip with its frames shuffled. Its features then encode
  the digit and whether the motion is coherent.

      clips (N, C, T, H, W) ─ Conv3d(C→w, 3, stride (1, 2, 2)) ─ SiLU ─ Conv3d(w→2w, 3, stride (1, 2, 2)) ─ SiLU
          ─ Conv3d(2w→2w, 3) ─ SiLU ─ mean over (T, H, W) ─ Linear(2w→F) ─ SiLU ─ × feature_scale

Both are `FeatureExtractor`s, cached in <cache>/video-features/<key>/{frames,motion}/ (extractor.json
+ weights.safetensors); the key hashes the clips, labels and every setting, so any change refits.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .cache import data_hash
from .classifier_folder import load_classifier_folder, save_classifier_folder
from .features import (
    ClassifierHead,
    EvalError,
    FeatureExtractor,
    write_cache_or_warn,
    cache_root,
    fit_classifier,
    load_extractor,
    save_extractor,
    train_classifier_net,
)

__all__ = ["VIDEO_FEATURES_FORMAT", "MotionClassifierConfig", "MotionClassifierNet", "shuffle_frames",
           "frames_of", "fit_frame_classifier", "fit_motion_features", "video_features_key"]

VIDEO_FEATURES_FORMAT = "noisecraft-video-features/1"


def frames_of(clips: Tensor) -> Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W), clip by clip."""
    n, c, t, h, w = clips.shape
    return clips.transpose(1, 2).reshape(n * t, c, h, w)


def shuffle_frames(clips: Tensor, generator: torch.Generator) -> Tensor:
    """Every clip with its frames in a random order that is not the identity (T >= 2)."""
    n, t = clips.shape[0], clips.shape[2]
    out = torch.empty_like(clips)
    for i in range(n):
        perm = torch.randperm(t, generator=generator)
        while t > 1 and bool((perm == torch.arange(t)).all()):
            perm = torch.randperm(t, generator=generator)
        out[i] = clips[i][:, perm]
    return out


@dataclass
class MotionClassifierConfig:
    channels: int
    num_classes: int
    width: int = 16
    feature_dim: int = 32

    def validate(self) -> "MotionClassifierConfig":
        for key, lo in (("channels", 1), ("num_classes", 2), ("width", 1), ("feature_dim", 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"motion classifier {key} must be an integer >= {lo}, got {v!r}")
        return self


class MotionClassifierNet(nn.Module):
    """Clips (N, C, T, H, W) -> features (N, F) (see the module docstring); `classify` -> 2K logits."""

    def __init__(self, config: MotionClassifierConfig):
        super().__init__()
        self.config = config.validate()
        c, w = config.channels, config.width
        self.conv = nn.Sequential(
            nn.Conv3d(c, w, 3, stride=(1, 2, 2), padding=1), nn.SiLU(),
            nn.Conv3d(w, 2 * w, 3, stride=(1, 2, 2), padding=1), nn.SiLU(),
            nn.Conv3d(2 * w, 2 * w, 3, padding=1), nn.SiLU())
        self.proj = nn.Sequential(nn.Linear(2 * w, config.feature_dim), nn.SiLU())
        self.head = nn.Linear(config.feature_dim, config.num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def body(self, x: Tensor) -> Tensor:
        return self.proj(self.conv(x).mean((2, 3, 4)))  # (N, F)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) * self.feature_scale

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    def classify(self, features: Tensor) -> Tensor:
        return self.head(features / self.feature_scale)


def video_features_key(clips: Tensor, labels: Tensor, settings: dict) -> str:
    spec = {"format": VIDEO_FEATURES_FORMAT, "clips": data_hash(clips), "labels": data_hash(labels.long()),
            "settings": settings}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _cache_folder(cache_dir: str | Path | None, key: str, part: str) -> Path:
    return Path(cache_dir if cache_dir is not None else cache_root() / "video-features") / key[:32] / part


def _check(clips: Tensor, labels: Tensor, class_names: list[str]) -> None:
    if not isinstance(clips, Tensor) or clips.ndim != 5 or clips.shape[0] == 0:
        raise ValueError(f"clips must be a non-empty tensor (N, C, T, H, W), got {getattr(clips, 'shape', None)}")
    if tuple(labels.shape) != (clips.shape[0],):
        raise ValueError(f"labels must be (N,) = ({clips.shape[0]},), got {tuple(labels.shape)}")
    if len(class_names) < 2 or int(labels.min()) < 0 or int(labels.max()) >= len(class_names):
        raise EvalError(f"video features need labels in 0..K-1 for K >= 2 classes; got {len(class_names)} class names "
                        f"and labels {int(labels.min())}..{int(labels.max())}")


def fit_frame_classifier(clips: Tensor, labels: Tensor, class_names: list[str], *, holdout: tuple[Tensor, Tensor] | None = None,
                         steps: int = 1200, width: int = 16, seed: int = 0, dataset: str = "custom",
                         cache_dir: str | Path | None = None, use_cache: bool = True) -> FeatureExtractor:
    """The per-frame classifier: `fit_classifier` on all frames of `clips` labelled with their clip's class.
    `.info` has "held_out_accuracy" (frames of `holdout` clips), "fit_seconds", "from_cache"."""
    labels = torch.as_tensor(labels).long()
    _check(clips, labels, class_names)
    t = clips.shape[2]
    settings = {"part": "frames", "steps": steps, "width": width, "seed": seed, "class_names": list(class_names),
                "holdout": None if holdout is None else [data_hash(holdout[0]), data_hash(holdout[1].long())]}
    folder = _cache_folder(cache_dir, video_features_key(clips, labels, settings), "frames")
    if use_cache and (folder / "extractor.json").is_file():
        try:
            ext = load_extractor(folder)
            ext.info["from_cache"] = True
            return ext
        except EvalError as e:
            warnings.warn(f"{e}; refitting", RuntimeWarning, stacklevel=2)
    t0 = time.perf_counter()
    hold = None if holdout is None else (frames_of(holdout[0]), holdout[1].long().repeat_interleave(holdout[0].shape[2]))
    res = fit_classifier(frames_of(clips), labels.repeat_interleave(t), list(class_names), holdout=hold, steps=steps,
                         width=width, seed=seed, dataset=f"{dataset}-frames")
    ext = res.extractor
    ext.info["fit_seconds"] = time.perf_counter() - t0
    if use_cache:
        write_cache_or_warn(lambda: save_extractor(ext, folder), "video feature cache", folder)
    ext.info["from_cache"] = False
    return ext


def _motion_extractor(net: MotionClassifierNet, class_names: list[str], info: dict) -> FeatureExtractor:
    return FeatureExtractor(net, name=f"motion-classifier-{info.get('dataset', 'custom')}", head=ClassifierHead(net),
                            class_names=class_names,
                            info={"kind": "motion-classifier", "feature_dim": net.config.feature_dim, **info})


def fit_motion_features(clips: Tensor, labels: Tensor, class_names: list[str], *,
                        holdout: tuple[Tensor, Tensor] | None = None, steps: int = 600, batch_size: int = 32,
                        lr: float = 3e-3, width: int = 16, feature_dim: int = 32, seed: int = 0,
                        dataset: str = "custom", cache_dir: str | Path | None = None,
                        use_cache: bool = True) -> FeatureExtractor:
    """The FVD feature net (see the module docstring), fitted on real clips and their frame-shuffled
    copies (2K classes: "c" and "c shuffled"), cached by content. `.info` has "held_out_accuracy" (on
    `holdout` clips and their shuffled copies), "fit_seconds", "from_cache"."""
    labels = torch.as_tensor(labels).long()
    _check(clips, labels, class_names)
    k = len(class_names)
    names = list(class_names) + [f"{c} shuffled" for c in class_names]
    cfg = MotionClassifierConfig(int(clips.shape[1]), 2 * k, width, feature_dim).validate()
    train = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}
    settings = {"part": "motion", "config": asdict(cfg), "train": train, "class_names": names,
                "holdout": None if holdout is None else [data_hash(holdout[0]), data_hash(holdout[1].long())]}
    key = video_features_key(clips, labels, settings)
    folder = _cache_folder(cache_dir, key, "motion")
    if use_cache and (folder / "extractor.json").is_file():
        try:
            ext = load_motion_features(folder, key=key)
            ext.info["from_cache"] = True
            return ext
        except EvalError as e:
            warnings.warn(f"{e}; refitting", RuntimeWarning, stacklevel=2)
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.cat([clips.float(), shuffle_frames(clips.float(), gen)])
    targets = torch.cat([labels, labels + k])
    net, history = train_classifier_net(lambda: MotionClassifierNet(cfg), inputs, targets, steps=steps,
                                        batch_size=batch_size, lr=lr, seed=seed, desc="fit motion features")
    info = {"dataset": dataset, "key": key, "train": {**train, "num_clips": int(clips.shape[0]),
                                                      "final_loss": history[-1]["loss"]}}
    ext = _motion_extractor(net, names, info)
    ext.info["train_accuracy"] = float((torch.from_numpy(ext.predict(inputs)) == targets).double().mean())
    if holdout is not None:
        h = torch.cat([holdout[0].float(), shuffle_frames(holdout[0].float(), gen)])
        ht = torch.cat([holdout[1].long(), holdout[1].long() + k])
        ext.info["held_out_accuracy"] = float((torch.from_numpy(ext.predict(h)) == ht).double().mean())
    ext.info["fit_seconds"] = time.perf_counter() - t0
    if use_cache:
        write_cache_or_warn(lambda: _save_motion(ext, folder), "video feature cache", folder)
    ext.info["from_cache"] = False
    return ext


def _save_motion(ext: FeatureExtractor, folder: Path) -> None:
    save_classifier_folder(folder, ext, fmt=VIDEO_FEATURES_FORMAT, kind="motion-classifier",
                           config=asdict(ext.module.config))


def load_motion_features(path: str | Path, *, key: str | None = None) -> FeatureExtractor:
    """A motion classifier from its cache folder; EvalError (one line) for any defect."""
    return load_classifier_folder(
        Path(path), fmt=VIDEO_FEATURES_FORMAT, kind="motion-classifier", what="motion feature extractor",
        build_net=lambda config: MotionClassifierNet(MotionClassifierConfig(**config)), make_extractor=_motion_extractor,
        key=key)
