"""Offline features for sound: a log-mel front end and a small classifier trained on the real clips.

The audio counterpart of the digits feature classifier (`fit_classifier`): FD, KID, class accuracy
and timbre accuracy of generated clips are read from it. It is a `FeatureExtractor` whose module
takes waveforms (N, C, L) at the rate it was fitted for:

    waves (N, C, L) ─ mono ─ STFT (Hann) ─ power ─ mel filterbank ─ dB ─ (N, M, T)
        ─ Conv1d(M→w, 3) ─ SiLU ─ Conv1d(w→w, 3) ─ SiLU ─ mean ‖ std over time (N, 2w)
        ─ Linear(2w→F) ─ SiLU ─ × feature_scale = the features (N, F);  head: Linear(F→K)

The mel bands are the convolution's channels (a time-delay network; the mean-and-standard-deviation
pooling is the "statistics pooling" of x-vectors, Snyder et al. 2018): a few hundred thousand
multiply-adds per clip, so fitting on 2,000 clips takes seconds on one CPU core. The training loop
is the image classifier's (`train_classifier_net`): AdamW, cosine decay, deterministic per seed;
augmentation is a random gain of ±6 dB (a shift of the dB features) so the features follow
timbre and pitch rather than loudness.

Mel scale (HTK form, O'Shaughnessy 1987): mel(f) = 2595 · log10(1 + f/700). The filterbank is
M triangles with peaks 1, their corners evenly spaced in mel between fmin and fmax, evaluated at
the FFT bin frequencies; inside [first centre, last centre] they sum to 1, so the bands share out
the STFT power exactly. Power is |X|²/(Σw)²: a sine of amplitude A on a bin has A²/4 there (-6 dB
at full scale) whatever n_fft. dB values are mapped by (dB + 50)/50 (the -100 dB floor is -1).

Fitted extractors are cached by content: the key hashes the clips, labels, class names, rate,
hold-out set and every setting, and the folder <cache>/audio-features/<key> holds extractor.json
and weights.safetensors (never a pickle). Change anything and it is refitted.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
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
    train_classifier_net,
)

__all__ = [
    "AUDIO_FEATURES_FORMAT",
    "mel_filterbank",
    "hz_to_mel",
    "mel_to_hz",
    "LogMelConfig",
    "LogMel",
    "AudioClassifierConfig",
    "AudioClassifierNet",
    "fit_audio_features",
    "save_audio_features",
    "load_audio_features",
    "audio_features_key",
]

AUDIO_FEATURES_FORMAT = "noisecraft-audio-features/1"
_DB_FLOOR = 1e-10  # -100 dB
_DB_OFFSET, _DB_SCALE = 50.0, 50.0


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float = 30.0, fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft//2 + 1), peak 1, corners evenly spaced in mel (neighbours
    share corners, so they sum to 1 between the first and the last centre).

    Raises ValueError when a band is so narrow that no FFT bin falls inside it (use a longer n_fft,
    fewer bands or a higher fmin).
    """
    fmax = rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= rate/2 = {rate / 2}, got fmin={fmin}, fmax={fmax}")
    corners = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (M+2,) Hz
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft  # (K,) Hz
    lo, mid, hi = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    up = (bins[None, :] - lo) / (mid - lo)
    down = (hi - bins[None, :]) / (hi - mid)
    fb = np.clip(np.minimum(up, down), 0.0, None)  # (M, K)
    empty = np.flatnonzero(fb.max(axis=1) <= 0)
    if empty.size:
        raise ValueError(f"mel band {int(empty[0])} ({corners[empty[0]]:.1f}-{corners[empty[0] + 2]:.1f} Hz) holds no "
                         f"FFT bin at n_fft={n_fft}, rate={rate}; use a longer n_fft, fewer than {n_mels} bands or a "
                         "higher fmin")
    return fb


@dataclass(frozen=True)
class LogMelConfig:
    """The front end: STFT size and hop (samples), mel bands and their range (Hz)."""

    rate: int
    n_fft: int
    hop: int
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float | None = None  # None: rate / 2

    @classmethod
    def for_rate(cls, rate: int, n_mels: int = 64) -> "LogMelConfig":
        """~128 ms windows (1024 at 8 kHz, 2048 at 16 kHz: 7.8 Hz bins, enough for semitones of low
        notes), four frames per window."""
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1000:
            raise ValueError(f"rate must be an integer >= 1000 (Hz), got {rate!r}")
        n_fft = 2 ** int(round(math.log2(0.128 * rate)))
        return cls(int(rate), n_fft, n_fft // 4, n_mels)


class LogMel(nn.Module):
    """Waveforms (N, C, L) -> scaled log-mel power (N, n_mels, 1 + L // hop); channels mixed to mono."""

    def __init__(self, config: LogMelConfig):
        super().__init__()
        self.config = config
        fb = mel_filterbank(config.rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
        window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window.float())
        # |X|²/(Σw)²: a sine of amplitude A on a bin has power A²/4 there, whatever n_fft.
        self.register_buffer("mel", torch.from_numpy(fb).float() / float(window.sum()) ** 2)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3:
            raise ValueError(f"waveforms must be (N, C, L), got shape {tuple(x.shape)}")
        c = self.config
        mono = x.mean(1)  # (N, L)
        spec = torch.stft(mono, c.n_fft, c.hop, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)  # (N, K, T)
        power = self.mel @ spec.abs().square()  # (N, M, T)
        db = 10.0 * torch.log10(power + _DB_FLOOR)
        return (db + _DB_OFFSET) / _DB_SCALE


@dataclass
class AudioClassifierConfig:
    front: LogMelConfig
    num_classes: int
    width: int = 64
    feature_dim: int = 64

    def validate(self) -> "AudioClassifierConfig":
        for key, lo in (("num_classes", 2), ("width", 1), ("feature_dim", 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"audio classifier {key} must be an integer >= {lo}, got {v!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AudioClassifierConfig":
        return cls(LogMelConfig(**d["front"]), int(d["num_classes"]), int(d["width"]), int(d["feature_dim"]))


class _MelClassifier(nn.Module):
    """Log-mel (N, M, T) -> features (N, F) and logits: the trainable part (fitted on cached log-mels)."""

    def __init__(self, n_mels: int, num_classes: int, width: int, feature_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(n_mels, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv1d(width, width, 3, padding=1), nn.SiLU())
        self.proj = nn.Sequential(nn.Linear(2 * width, feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def body(self, mel: Tensor) -> Tensor:
        h = self.conv(mel)  # (N, w, T)
        stats = torch.cat([h.mean(-1), (h.var(-1, unbiased=False) + 1e-5).sqrt()], dim=1)  # (N, 2w)
        return self.proj(stats)  # (N, F)

    def forward(self, mel: Tensor) -> Tensor:
        return self.body(mel) * self.feature_scale

    def logits(self, mel: Tensor) -> Tensor:
        return self.head(self.body(mel))

    def classify(self, features: Tensor) -> Tensor:
        return self.head(features / self.feature_scale)


class AudioClassifierNet(nn.Module):
    """LogMel front end + the mel classifier: waveforms (N, C, L) -> features (N, F); `classify` -> logits."""

    def __init__(self, config: AudioClassifierConfig):
        super().__init__()
        self.config = config.validate()
        self.front = LogMel(config.front)
        self.trunk = _MelClassifier(config.front.n_mels, config.num_classes, config.width, config.feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(self.front(x))

    def logits(self, x: Tensor) -> Tensor:
        return self.trunk.logits(self.front(x))

    def classify(self, features: Tensor) -> Tensor:
        return self.trunk.classify(features)


def _extractor(net: AudioClassifierNet, class_names: list[str], info: dict) -> FeatureExtractor:
    return FeatureExtractor(net, name=f"audio-classifier-{info.get('dataset', 'custom')}", head=ClassifierHead(net),
                            class_names=class_names,
                            info={"kind": "audio-classifier", "feature_dim": net.config.feature_dim,
                                  "rate": net.config.front.rate, **info})


def _gain(max_db: float):
    def augment(mel: Tensor, gen: torch.Generator) -> Tensor:
        g = (torch.rand(mel.shape[0], 1, 1, generator=gen) * 2 - 1) * (max_db / _DB_SCALE)
        return mel + g

    return augment


def _log_mels(front: LogMel, waves: Tensor, batch: int = 256) -> Tensor:
    with torch.no_grad():
        return torch.cat([front(waves[i : i + batch].float()) for i in range(0, waves.shape[0], batch)])


def _check_waves(waves: Tensor, labels: Tensor | None, name: str) -> None:
    if not isinstance(waves, Tensor) or waves.ndim != 3 or waves.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty tensor (N, C, L), got {getattr(waves, 'shape', type(waves))}")
    if labels is not None and tuple(labels.shape) != (waves.shape[0],):
        raise ValueError(f"{name} labels must be (N,) = ({waves.shape[0]},), got {tuple(labels.shape)}")


def audio_features_key(waves: Tensor, labels: Tensor, settings: dict, holdout: tuple[Tensor, Tensor] | None) -> str:
    """The cache key of a fit: SHA-256 of the format, the data, the hold-out set and every setting."""
    spec = {"format": AUDIO_FEATURES_FORMAT, "waves": data_hash(waves), "labels": data_hash(labels.long()),
            "holdout": None if holdout is None else [data_hash(holdout[0]), data_hash(holdout[1].long())],
            "settings": settings}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def fit_audio_features(
    waves: Tensor,
    labels: Tensor,
    rate: int,
    *,
    class_names: Sequence[str] | None = None,
    holdout: tuple[Tensor, Tensor] | None = None,
    seed: int = 0,
    steps: int = 800,
    batch_size: int = 64,
    lr: float = 3e-3,
    width: int = 64,
    feature_dim: int = 64,
    n_mels: int = 64,
    max_gain_db: float = 6.0,
    dataset: str = "custom",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    threads: int = 1,
    progress: bool = False,
) -> FeatureExtractor:
    """The audio feature classifier fitted on labelled clips (N, C, L) at `rate` Hz, cached by content.

    Returns a `FeatureExtractor`: `.features(waves)` (N, feature_dim), `.predict(waves)` (N,),
    `.info` with "train_accuracy", "held_out_accuracy" (on `holdout` = (waves, labels), never
    trained on), "fit_seconds" and "from_cache". class_names default to "0" … "K-1".
    cache_dir: default $NOISECRAFT_CACHE/audio-features; use_cache=False neither reads nor writes.
    """
    labels = torch.as_tensor(labels)
    _check_waves(waves, labels, "waves")
    if holdout is not None:
        holdout = (holdout[0], torch.as_tensor(holdout[1]))
        _check_waves(holdout[0], holdout[1], "holdout waves")
    k = int(labels.max()) + 1
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) < max(2, k) or int(labels.min()) < 0:
        raise EvalError(f"the audio feature classifier needs labels in 0..K-1 for K >= 2 class names; got "
                        f"{len(names)} class names and labels {int(labels.min())}..{int(labels.max())}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    cfg = AudioClassifierConfig(LogMelConfig.for_rate(rate, n_mels), len(names), width, feature_dim).validate()
    train = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "max_gain_db": max_gain_db}
    key = audio_features_key(waves, labels, {"config": cfg.to_dict(), "class_names": names, "train": train,
                                             "dataset": dataset}, holdout)
    folder = Path(cache_dir if cache_dir is not None else cache_root() / "audio-features") / key[:32]
    if use_cache and (folder / "extractor.json").is_file():
        try:
            ext = load_audio_features(folder, key=key)
            ext.info["from_cache"] = True
            return ext
        except EvalError as e:
            warnings.warn(f"{e}; refitting", RuntimeWarning, stacklevel=2)
    t0 = time.perf_counter()
    front = LogMel(cfg.front)
    mels = _log_mels(front, waves)  # (N, M, T), computed once
    trunk, history = train_classifier_net(
        lambda: _MelClassifier(cfg.front.n_mels, cfg.num_classes, cfg.width, cfg.feature_dim), mels, labels,
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, augment=_gain(max_gain_db), threads=threads,
        progress=progress, desc="fit audio features")
    net = AudioClassifierNet(cfg)
    net.trunk.load_state_dict(trunk.state_dict())
    info = {"dataset": dataset, "key": key, "train": {**train, "num_clips": int(waves.shape[0]),
                                                      "length": int(waves.shape[-1]), "final_loss": history[-1]["loss"]}}
    ext = _extractor(net, names, info)
    ext.info["train_accuracy"] = float((ext.predict(waves) == labels.cpu().numpy()).mean())
    ext.info["held_out_accuracy"] = (None if holdout is None else
                                     float((ext.predict(holdout[0]) == holdout[1].cpu().numpy()).mean()))
    ext.info["fit_seconds"] = time.perf_counter() - t0
    if use_cache:
        write_cache_or_warn(lambda: save_audio_features(ext, folder), "audio feature cache", folder)
    ext.info["from_cache"] = False
    return ext


def save_audio_features(extractor: FeatureExtractor, path: str | Path) -> Path:
    """Write an audio classifier extractor to the folder `path` (extractor.json + weights.safetensors)."""
    net = extractor.module
    if not isinstance(net, AudioClassifierNet):
        raise EvalError("save_audio_features saves audio classifier extractors (from fit_audio_features) only")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise EvalError(f"{str(out)!r} is a file; give a folder for the audio feature extractor")
    return save_classifier_folder(out, extractor, fmt=AUDIO_FEATURES_FORMAT, kind="audio-classifier",
                                  config=net.config.to_dict(), drop_info=("rate",))


def load_audio_features(path: str | Path, *, key: str | None = None) -> FeatureExtractor:
    """An audio classifier extractor from a folder written by `save_audio_features` (or the fit cache).

    key: when given, the folder must record this cache key. The weights are checked against the
    recorded fingerprint, so a file changed after writing is refused (EvalError).
    """
    return load_classifier_folder(
        Path(path), fmt=AUDIO_FEATURES_FORMAT, kind="audio-classifier", what="audio feature extractor",
        build_net=lambda config: AudioClassifierNet(AudioClassifierConfig.from_dict(config)), make_extractor=_extractor,
        key=key)
