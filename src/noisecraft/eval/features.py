"""Feature extractors for the sample-quality metrics.

A `FeatureExtractor` turns images (N, C, H, W) in [-1, 1] into feature vectors (N, F): it applies a
fixed preprocessing (resize, channel conversion), runs a frozen torch module and, when the module
is a classifier, also predicts class labels. Three kinds:

* a small classifier CNN trained on a labelled dataset (`fit_classifier` / `fit_features`,
  `noisecraft eval fit-features`): offline, seconds on a CPU, the default for built-in datasets.
  Features are its penultimate layer, its logits give class accuracy and coverage.
* the Inception-v3 network of the standard FID code (`inception_extractor`), built here from the
  published architecture and loaded from the user's local copy of the pt_inception-2015-12-05
  weights (the file pytorch-fid downloads). Features are the 2048-d pool3 activations.
* any torch module (`module_extractor`).

Extractors are saved as a folder with `extractor.json` (what to rebuild) and `weights.safetensors`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from torch import Tensor, nn

from ..io.files import atomic_write_bytes, atomic_write_text
from ..io_safety import WeightFileError, check_tensors_match, read_safetensors, read_weights
from ..runtime import cache_root, num_threads  # cache_root is re-exported here

__all__ = [
    "EvalError",
    "write_cache_or_warn",
    "Preprocess",
    "FeatureExtractor",
    "ClassifierConfig",
    "ClassifierNet",
    "FitResult",
    "ClassifierHead",
    "train_classifier_net",
    "fit_classifier",
    "fit_features",
    "save_extractor",
    "load_extractor",
    "module_extractor",
    "InceptionV3",
    "inception_extractor",
    "INCEPTION_FILENAME",
    "INCEPTION_URL",
    "default_inception_path",
    "cache_root",
    "FEATURES_FORMAT",
]

FEATURES_FORMAT = "noisecraft-features/1"
INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILENAME}"


def write_cache_or_warn(write: Callable[[], object], what: str, where: str | os.PathLike) -> None:
    """Run `write` (a cache write); an OSError (full disk, read-only folder) becomes a warning naming
    `what` and `where`, since a cache never stops an evaluation."""
    try:
        write()
    except OSError as e:
        warnings.warn(f"could not write the {what} {str(where)!r} ({e}); continuing without it", RuntimeWarning,
                      stacklevel=3)


class EvalError(ValueError):
    """A user error in evaluation: missing weight file, bad extractor folder, unknown metric. One line."""


# ------------------------------------------------------------------------------------------------
# Preprocessing and the extractor wrapper


@dataclass(frozen=True)
class Preprocess:
    """What an extractor does to images in [-1, 1] before its network.

    size: resize to size×size (None: keep). mode: interpolation mode of F.interpolate.
    antialias: low-pass when downsampling (the digits loader resizes with antialias=True; the FID
        Inception preprocessing does not). channels: 1 (RGB -> mean gray) or 3 (gray -> repeated)
        or None (keep).
    """

    size: int | None = None
    channels: int | None = None
    mode: str = "bilinear"
    antialias: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        if self.size is None and self.channels is None:
            return x  # the identity: any (N, C, *spatial), e.g. audio (N, C, L) for a net with its own front end
        if x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
        c = x.shape[1]
        if self.channels is not None and c != self.channels:
            if self.channels == 3 and c == 1:
                x = x.expand(-1, 3, -1, -1)
            elif self.channels == 1 and c == 3:
                x = x.mean(1, keepdim=True)
            else:
                raise ValueError(f"images have {c} channels; this extractor takes {self.channels}")
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode=self.mode, align_corners=False,
                              antialias=self.antialias and self.size < max(x.shape[-2:]))
        return x

    def to_dict(self) -> dict:
        return asdict(self)


def _hash_state(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FeatureExtractor:
    """A frozen module + preprocessing: `features(images)` -> (N, F) float64, `predict(images)` -> labels.

    module(x) must return (N, F) features (higher-rank outputs are flattened). head, if given,
    maps features to class logits (N, K). `fingerprint` is a content hash of the weights, the
    preprocessing and the name: the reference-statistics cache key uses it.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        preprocess: Preprocess = Preprocess(),
        head: nn.Module | None = None,
        class_names: list[str] | None = None,
        info: dict | None = None,
    ) -> None:
        self.module = module.eval().requires_grad_(False)
        self.head = head.eval().requires_grad_(False) if head is not None else None
        self.name = name
        self.preprocess = preprocess
        self.class_names = list(class_names or [])
        self.info = dict(info or {})
        self._fingerprint: str | None = None
        self._dim: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.head is not None else 0

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps({"name": self.name, "preprocess": self.preprocess.to_dict()}, sort_keys=True).encode())
            h.update(_hash_state(self.module).encode())
            if self.head is not None:
                h.update(_hash_state(self.head).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def _device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _dtype(self) -> torch.dtype:
        p = next(self.module.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def _run(self, images: Tensor, batch_size: int, want_logits: bool) -> tuple[Tensor, Tensor | None]:
        if not isinstance(images, Tensor) or images.ndim < 3:
            raise ValueError(f"images must be a tensor (N, C, H, W) (or (N, C, *spatial) for an extractor without "
                             f"resizing) in [-1, 1], got {getattr(images, 'shape', type(images))}")
        feats, logits = [], []
        dev, dt = self._device(), self._dtype()
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                x = self.preprocess(images[start : start + batch_size].to(dev, dt))
                f = self.module(x).flatten(1)  # (b, F)
                feats.append(f.double().cpu())
                if want_logits:
                    logits.append(self.head(f).double().cpu())
        return torch.cat(feats), (torch.cat(logits) if want_logits else None)

    def features(self, images: Tensor, *, batch_size: int = 256) -> np.ndarray:
        """Features (N, F) float64 of images (N, C, H, W) in [-1, 1]."""
        return self._run(images, batch_size, False)[0].numpy()

    def features_and_predictions(self, images: Tensor, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
        """(features (N, F), predicted class (N,) or None without a classifier head)."""
        f, logits = self._run(images, batch_size, self.head is not None)
        return f.numpy(), (None if logits is None else logits.argmax(1).numpy())

    def predict(self, images: Tensor, *, batch_size: int = 256) -> np.ndarray:
        if self.head is None:
            raise EvalError(f"feature extractor {self.name!r} has no classifier head; class metrics need a classifier")
        return self.features_and_predictions(images, batch_size=batch_size)[1]

    @property
    def feature_dim(self) -> int:
        """F, found by one forward pass of a dummy image when not recorded."""
        if self._dim is None:
            self._dim = int(self.info["feature_dim"]) if "feature_dim" in self.info else None
        if self._dim is None:
            size = self.preprocess.size or 32
            ch = self.preprocess.channels or 3
            self._dim = int(self._run(torch.zeros(1, ch, size, size), 1, False)[0].shape[1])
        return self._dim

    def describe(self) -> dict:
        return {"name": self.name, "feature_dim": self.feature_dim, "num_classes": self.num_classes,
                "preprocess": self.preprocess.to_dict(), "fingerprint": self.fingerprint[:16], **self.info}

    def __repr__(self) -> str:
        return f"FeatureExtractor(name={self.name!r}, num_classes={self.num_classes}, preprocess={self.preprocess})"


def module_extractor(module: nn.Module, *, name: str = "module", size: int | None = None,
                     channels: int | None = None, head: nn.Module | None = None,
                     class_names: list[str] | None = None) -> FeatureExtractor:
    """Any torch module as an extractor: features = module(preprocessed images).flatten(1)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return FeatureExtractor(module, name=name, preprocess=Preprocess(size=size, channels=channels), head=head,
                            class_names=class_names)


# ------------------------------------------------------------------------------------------------
# The small classifier


@dataclass
class ClassifierConfig:
    channels: int
    resolution: int
    num_classes: int
    width: int = 32  # channels of the first stage; doubled per stage up to 4x
    feature_dim: int = 64  # size of the penultimate layer = the features

    def validate(self) -> "ClassifierConfig":
        for key, lo in (("channels", 1), ("resolution", 4), ("num_classes", 2), ("width", 1), ("feature_dim", 1)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"classifier {key} must be an integer >= {lo}, got {v!r}")
        return self


class ClassifierNet(nn.Module):
    """A few conv stages, global average pooling, a feature layer; `head` maps features to logits.

    forward(x) returns the features (N, feature_dim): the penultimate layer, after its activation,
    times `feature_scale`. SiLU rather than ReLU so that no feature is exactly constant (a dead unit
    would make the feature covariance singular). `feature_scale` is set after training so that the
    training images' features have mean |f|²/F = 1: KID's kernel (f·g/F + 1)³ then stays O(1), as
    it is for Inception features, instead of being dominated by the feature magnitude.
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config.validate()
        c, w = config.channels, config.width
        stages = max(1, min(5, int(math.log2(config.resolution)) - 2))  # 8px: 1 stage, 16px: 2, 32px: 3
        layers: list[nn.Module] = []
        for s in range(stages):
            out = w * min(2**s, 4)
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.SiLU(), nn.Conv2d(out, out, 3, padding=1), nn.SiLU(),
                       nn.AvgPool2d(2)]
            c = out
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(c, config.feature_dim), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(config.feature_dim, config.num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) * self.feature_scale  # (N, feature_dim)

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))  # (N, num_classes)

    def classify(self, features: Tensor) -> Tensor:
        """Logits from the (scaled) features that forward returns."""
        return self.head(features / self.feature_scale)


class ClassifierHead(nn.Module):
    """The extractor's head: features (as forward returns them) -> logits, through `net.classify`."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, features: Tensor) -> Tensor:
        return self.net.classify(features)


def _classifier_extractor(net: ClassifierNet, class_names: list[str], info: dict) -> FeatureExtractor:
    cfg = net.config
    pre = Preprocess(size=cfg.resolution, channels=cfg.channels, antialias=True)
    return FeatureExtractor(net, name=f"classifier-{info.get('dataset', 'custom')}", preprocess=pre,
                            head=ClassifierHead(net), class_names=class_names,
                            info={"kind": "classifier", "feature_dim": cfg.feature_dim, **info})


@dataclass
class FitResult:
    extractor: FeatureExtractor
    held_out_accuracy: float | None  # accuracy on the held-out images (None if none were given)
    train_accuracy: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def _shift(x: Tensor, gen: torch.Generator, max_shift: int) -> Tensor:
    """Random integer translations per image, filled with the background value -1."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    idx_n = torch.arange(n)[:, None, None]
    return pad.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)




def train_classifier_net(
    make_net: Callable[[], nn.Module],
    inputs: Tensor,
    labels: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    threads: int = 1,
    progress: bool = False,
    desc: str = "fit-features",
) -> tuple[nn.Module, list[dict]]:
    """The feature classifiers' training loop: AdamW + cosine decay on cross-entropy, deterministic per seed.

    make_net() is called after seeding (so the initial weights depend on `seed` only) and must give
    a module with `logits(x)`, `body(x)` (features before scaling) and a `feature_scale` buffer, which
    is set at the end so the training inputs' features have mean |f|²/F = 1 (see ClassifierNet).
    augment(batch, generator) perturbs each batch. The global RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]), num_threads(threads):
        torch.manual_seed(seed)
        net = make_net()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        labels = labels.long()
        history = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc=desc, unit="step")
        net.train()
        for step in range(steps):
            idx = torch.randint(0, inputs.shape[0], (batch_size,), generator=gen)
            x = inputs[idx] if augment is None else augment(inputs[idx], gen)
            loss = F.cross_entropy(net.logits(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0 or step == steps - 1:
                history.append({"step": step, "loss": loss.item()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
        net.eval()
        with torch.no_grad():
            f = torch.cat([net.body(inputs[i : i + 256]) for i in range(0, inputs.shape[0], 256)]).double()
            net.feature_scale.fill_(float(1.0 / f.pow(2).mean().sqrt().clamp_min(1e-12)))
    return net, history


def accuracy(extractor: FeatureExtractor, images: Tensor, labels: Tensor) -> float:
    pred = extractor.predict(images)
    return float((torch.from_numpy(pred) == labels.cpu()).double().mean())


def fit_classifier(
    images: Tensor,
    labels: Tensor,
    class_names: list[str],
    *,
    holdout: tuple[Tensor, Tensor] | None = None,
    steps: int = 1200,
    batch_size: int = 64,
    lr: float = 4e-3,
    width: int = 16,
    feature_dim: int = 64,
    max_shift: int | None = None,
    seed: int = 0,
    dataset: str = "custom",
    threads: int = 1,
    progress: bool = False,
) -> FitResult:
    """Train the feature classifier on labelled images (N, C, H, W) in [-1, 1]; deterministic per seed.

    AdamW with cosine decay; random translations of up to max_shift pixels (default resolution/8,
    at least 1) make the features robust to small misplacements in generated images.
    holdout: (images, labels) never trained on; the result reports accuracy on them.
    threads: torch threads while training (0: leave as is); a net this small runs fastest on one.
    """
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(f"images must be (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}")
    if len(class_names) < 2:
        raise EvalError(f"the feature classifier needs labelled data with at least 2 classes, got {len(class_names)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    res = int(images.shape[-1])
    cfg = ClassifierConfig(int(images.shape[1]), res, len(class_names), width, feature_dim)
    max_shift = max(1, res // 8) if max_shift is None else max_shift
    t0 = time.perf_counter()
    net, history = train_classifier_net(lambda: ClassifierNet(cfg), images, labels, steps=steps, batch_size=batch_size,
                                        lr=lr, seed=seed, augment=lambda x, gen: _shift(x, gen, max_shift),
                                        threads=threads, progress=progress)
    info = {"dataset": dataset, "resolution": res, "channels": cfg.channels,
            "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "max_shift": max_shift,
                      "num_images": int(images.shape[0])}}
    ext = _classifier_extractor(net, list(class_names), info)
    train_acc = accuracy(ext, images, labels)
    held = accuracy(ext, *holdout) if holdout is not None and holdout[0].shape[0] else None
    ext.info["train_accuracy"] = train_acc
    ext.info["held_out_accuracy"] = held
    ext.info["held_out_images"] = int(holdout[0].shape[0]) if holdout is not None else 0
    return FitResult(ext, held, train_acc, time.perf_counter() - t0, history)


def fit_features(
    source: str,
    *,
    resolution: int | None = 16,
    channels: int | None = None,
    steps: int = 1200,
    batch_size: int = 64,
    lr: float = 4e-3,
    width: int = 16,
    feature_dim: int = 64,
    seed: int = 0,
    threads: int = 1,
    progress: bool = False,
) -> FitResult:
    """Fit the feature classifier on a dataset by name (built-in or labelled image folder).

    Built-ins train on split "train" and report accuracy on their "test" split. A folder is split
    here: a deterministic 15% of each class (by `seed`) is held out.
    """
    from .splits import real_splits

    sp = real_splits(source, resolution=resolution, channels=channels, seed=seed)
    if len(sp.class_names) < 2:
        raise EvalError(f"dataset {source!r} has {len(sp.class_names)} classes; the feature classifier needs labelled "
                        "data (class sub-folders) with at least 2 classes; use --features inception instead")
    return fit_classifier(sp.images, sp.labels, sp.class_names, holdout=(sp.holdout_images, sp.holdout_labels),
                          steps=steps, batch_size=batch_size, lr=lr, width=width, feature_dim=feature_dim, seed=seed,
                          dataset=sp.name, threads=threads, progress=progress)


# ------------------------------------------------------------------------------------------------
# Saving and loading


def save_extractor(extractor: FeatureExtractor, path: str | Path) -> Path:
    """Write a classifier extractor to the folder `path` (extractor.json + weights.safetensors)."""
    net = extractor.module
    if not isinstance(net, ClassifierNet):
        raise EvalError("only classifier extractors are saved this way; an Inception extractor is its weight file")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise EvalError(f"out_dir {str(out)!r} is a file; give a folder for the feature extractor")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FEATURES_FORMAT, "kind": "classifier", "config": asdict(net.config),
            "class_names": extractor.class_names, "fingerprint": extractor.fingerprint,
            **{k: v for k, v in extractor.info.items() if k not in ("kind", "feature_dim")}}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(out / "weights.safetensors", st_save(state, metadata={"format": FEATURES_FORMAT}))
    atomic_write_text(out / "extractor.json", json.dumps(meta, indent=2) + "\n")
    return out


def _load_classifier(folder: Path) -> FeatureExtractor:
    try:
        meta = json.loads((folder / "extractor.json").read_text(encoding="utf-8"))
        if meta.get("format") != FEATURES_FORMAT or meta.get("kind") != "classifier":
            raise ValueError(f"format {meta.get('format')!r} / kind {meta.get('kind')!r} is not {FEATURES_FORMAT!r} / 'classifier'")
        net = ClassifierNet(ClassifierConfig(**meta["config"]))
        weights_file = folder / "weights.safetensors"
        state = read_safetensors(weights_file)[0]  # validated: header, offsets, NaN/Inf
        check_tensors_match(net.state_dict(), state, source=weights_file)
        net.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - any defect of the folder is one user error
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EvalError(f"feature extractor {str(folder)!r} cannot be loaded ({msg}); re-create it with "
                        "`noisecraft eval fit-features DATASET --out FOLDER`") from None
    info = {k: v for k, v in meta.items() if k not in ("format", "kind", "config", "class_names", "fingerprint")}
    return _classifier_extractor(net, list(meta["class_names"]), info)


def load_extractor(path: str | Path) -> FeatureExtractor:
    """An extractor from a fit-features folder, an Inception weight file, or "inception" (default location)."""
    text = str(path)
    if text == "inception":
        return inception_extractor()
    p = Path(path)
    if p.is_dir():
        if not (p / "extractor.json").is_file():
            raise EvalError(f"features {text!r} is a folder without extractor.json; give a folder written by "
                            "`noisecraft eval fit-features`, an Inception weight file, or 'inception'")
        return _load_classifier(p)
    if p.suffix in (".pth", ".pt", ".safetensors", ".bin"):
        return inception_extractor(p)
    if not p.exists():
        raise EvalError(f"features {text!r} does not exist; give a folder written by `noisecraft eval fit-features`, "
                        f"an Inception weight file (.pth/.safetensors), or 'inception'")
    raise EvalError(f"features {text!r} is not a feature-extractor folder or a .pth/.safetensors weight file")


# ------------------------------------------------------------------------------------------------
# Inception-v3 as used for FID (Szegedy et al. 2016, "Rethinking the Inception Architecture"), with
# the three quirks of the 2015-12-05 TensorFlow graph the FID reference uses: the average-pool
# branches do not count padding (Mixed_5*, 6b-e, 7b), and the last block (Mixed_7c) max-pools in
# its pool branch. Parameter names follow the pt_inception-2015-12-05 state dict.


class _ConvBN(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35×35 block: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avgpool→1×1 (64+64+96+pool_features channels)."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg3(x))
        return torch.cat([a, b, c, d], 1)


class _ReductionB(nn.Module):
    """35×35 -> 17×17: 3×3/2 | 1×1→3×3→3×3/2 | maxpool/2 (384+96+cin channels)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockC(nn.Module):
    """17×17 block with factorized 7×7 convolutions (1×7 and 7×1); 4×192 = 768 channels out."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg3(x))
        return torch.cat([a, b, c, d], 1)


class _ReductionD(nn.Module):
    """17×17 -> 8×8: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | maxpool/2 (320+192+cin channels)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = layer(b)
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):
    """8×8 block with split 1×3 / 3×1 outputs: 320 + 2·384 + 2·384 + 192 = 2048 channels.

    max_pool: the pool branch max-pools (the last block of the FID graph) instead of averaging.
    """

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        p = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([a, b, c, self.branch_pool(p)], 1)


class InceptionV3(nn.Module):
    """Inception-v3 up to the 2048-d global average pool ("pool3"), FID variant.

    Input (N, 3, 299, 299) scaled to [-1, 1]; output (N, 2048). `fc` (1008 ImageNet-2012 classes of
    the 2015 graph) is kept so that the weight file loads strictly; it is not used for features.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)  # 299 -> 149
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)  # -> 147
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)  # -> 147, then maxpool -> 73
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)  # -> 71, then maxpool -> 35
        self.Mixed_5b = _BlockA(192, 32)  # -> 256
        self.Mixed_5c = _BlockA(256, 64)  # -> 288
        self.Mixed_5d = _BlockA(288, 64)  # -> 288
        self.Mixed_6a = _ReductionB(288)  # -> 768 @ 17×17
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _ReductionD(768)  # -> 1280 @ 8×8
        self.Mixed_7b = _BlockE(1280, max_pool=False)  # -> 2048
        self.Mixed_7c = _BlockE(2048, max_pool=True)  # -> 2048
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))  # (N, 2048) global average pool


def default_inception_path() -> Path:
    """$NOISECRAFT_INCEPTION_WEIGHTS, else <cache>/pt_inception-2015-12-05-6726825d.pth."""
    env = os.environ.get("NOISECRAFT_INCEPTION_WEIGHTS")
    return Path(env).expanduser() if env else cache_root() / INCEPTION_FILENAME


def _read_weights(path: Path) -> dict[str, Tensor]:
    # safetensors (validated), or torch.load(weights_only=True) for .pth: never code from the file
    return read_weights(path)


def inception_extractor(weights: str | Path | None = None) -> FeatureExtractor:
    """The FID Inception-v3 from a local weight file (.pth read with weights_only=True, or .safetensors).

    Preprocessing: gray images repeated to RGB, bilinear resize to 299×299 (align_corners=False, no
    antialiasing), values kept in [-1, 1] — the network's input range.
    """
    path = Path(weights).expanduser() if weights is not None else default_inception_path()
    if not path.is_file():
        raise EvalError(
            f"Inception weight file not found at {str(path)!r}: download {INCEPTION_URL} and put it there "
            f"(or pass its path with --features PATH, or set NOISECRAFT_INCEPTION_WEIGHTS)"
        )
    try:
        state = _read_weights(path)
    except WeightFileError as e:  # a pickle that would run code, a hostile or torn safetensors, NaN/Inf
        raise EvalError(f"Inception weight file {str(path)!r} cannot be read, it is refused: {e.problem}") from None
    except Exception as e:  # noqa: BLE001 - a bad file is one user error
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EvalError(f"Inception weight file {str(path)!r} cannot be read ({msg}); expected {INCEPTION_FILENAME} "
                        f"from {INCEPTION_URL}") from None
    net = InceptionV3()
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    try:
        check_tensors_match(net.state_dict(), state, source=path, strict=False)  # shapes and dtypes of known names
    except ValueError as e:
        raise EvalError(f"{e}; expected {INCEPTION_FILENAME}") from None
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {result.unexpected_keys[0]!r}"
        raise EvalError(f"Inception weight file {str(path)!r} does not match the FID Inception-v3 ({what}, "
                        f"{len(missing)} missing, {len(result.unexpected_keys)} unexpected); expected {INCEPTION_FILENAME}")
    pre = Preprocess(size=299, channels=3, mode="bilinear", antialias=False)
    return FeatureExtractor(net, name="inception-v3-fid", preprocess=pre,
                            info={"kind": "inception", "feature_dim": 2048, "weights": str(path)})
