"""The shapes judge: a small CNN that reads colour, shape and position off single-object `shapes` images.

It measures text-to-image accuracy on the built-in `shapes` dataset: generate an image for each
caption of the "test_seen" / "heldout" split, then

    judge = load_or_train_shapes_judge()                      # trains once (under a minute), then cached
    judge.prompt_match_rate(samples, dataset.attributes)      # fraction with colour, shape AND position right

The judge is trained on fresh renders of all 90 single-object classes - the held-out colour-shape
pairs included, since it must recognise them when a generator draws them - with a little Gaussian
pixel noise (σ up to 0.1) so slightly imperfect samples are still read. It never sees the images
of the dataset's own splits, which serve as its validation sets (`judge.metrics`).

    images (B, 3, 32, 32) in [-1, 1]
      -> conv3x3 (w) -> conv3x3 stride 2 (w) -> conv3x3 stride 2 (2w) -> conv3x3 (2w), SiLU after each
      -> "what": global mean ++ max (4w) -> Linear(hidden) -> SiLU -> colour (6) and shape (3) heads
      -> "where": 2x2 average pool to 4x4, flatten (2w·16) -> Linear(hidden) -> SiLU -> position (5) head

Colour and shape read translation-invariant pooled features, so what is learned at one position
serves all five; position reads a coarse map that keeps where things are.
Weights are saved as safetensors, the config and validation metrics as JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from .. import runtime
from torch import Tensor, nn

from ..data.dataset import to_unit_range
from ..data.shapes import COLORS, NUM_SHAPES_CLASSES, POSITIONS, SHAPES, SHAPES_VERSION, load_shapes, render_single_objects

__all__ = [
    "ShapesJudge", "ShapesJudgeConfig", "train_shapes_judge", "load_or_train_shapes_judge",
    "attributes_to_tensor", "attribute_id", "default_judge_folder", "ATTRIBUTES",
]

ATTRIBUTES = ("color", "shape", "position")
_NAMES = {"color": COLORS, "shape": SHAPES, "position": POSITIONS}
_FORMAT = "noisecraft-shapes-judge"
JUDGE_RESOLUTION = 32


@dataclass(frozen=True)
class ShapesJudgeConfig:
    width: int = 16
    hidden: int = 128

    def __post_init__(self) -> None:
        for key in ("width", "hidden"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ShapesJudgeConfig.{key} must be an integer >= 1, got {value!r}")


def attributes_to_tensor(attributes: Sequence[Mapping[str, Any]] | Mapping[str, Any], n: int | None = None) -> Tensor:
    """(N, 3) long tensor of (colour, shape, position) ids.

    Accepts the `attributes` list of a shapes dataset (dicts with "color", "shape", "position" as
    ids or names; two-object scenes are judged by their first object, which is not meaningful - use
    single-object splits), or a dict of three (N,) sequences keyed the same way.
    """
    if isinstance(attributes, Mapping):
        cols = [torch.as_tensor(_ids(key, attributes[key]), dtype=torch.long) for key in ATTRIBUTES]
        out = torch.stack(cols, dim=1)
    else:
        out = torch.tensor([[_id(key, a[key]) for key in ATTRIBUTES] for a in attributes], dtype=torch.long)
        out = out.reshape(len(attributes), 3)
    if n is not None and out.shape[0] != n:
        raise ValueError(f"got {out.shape[0]} attribute rows for {n} images")
    return out


def attribute_id(key: str, value: Any, names: Sequence[str]) -> int:
    """The index of attribute `key`'s value in `names`, given as a name or an id (ValueError naming
    the value and what is valid). Shared by the still and the moving shapes judges."""
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {key} {value!r}; valid: {', '.join(names)}")
        return list(names).index(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < len(names):
        raise ValueError(f"{key} id {value!r} is out of range; valid: 0..{len(names) - 1} or a name "
                         f"({', '.join(names)})")
    return int(value)


def _id(key: str, value: Any) -> int:
    return attribute_id(key, value, _NAMES[key])


def _ids(key: str, values: Any) -> list[int]:
    values = values.tolist() if isinstance(values, (Tensor, np.ndarray)) else list(values)
    return [_id(key, v) for v in values]


class ShapesJudge(nn.Module):
    """`judge(images)` -> predicted colour / shape / position ids of single-object shapes images."""

    def __init__(self, config: ShapesJudgeConfig | None = None) -> None:
        super().__init__()
        cfg = self.cfg = config or ShapesJudgeConfig()
        w = cfg.width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.SiLU(),  # (B, w, 32, 32)
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),  # (B, w, 16, 16)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.SiLU(),  # (B, 2w, 8, 8); receptive field 17 px
        )
        # What: translation-invariant (global mean and max); where: a coarse 4x4 map, flattened.
        self.what = nn.Sequential(nn.Linear(4 * w, cfg.hidden), nn.SiLU())
        self.where = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, cfg.hidden), nn.SiLU())
        self.heads = nn.ModuleDict({k: nn.Linear(cfg.hidden, len(_NAMES[k])) for k in ATTRIBUTES})
        self.metrics: dict[str, Any] = {}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Logits {"color": (B, 6), "shape": (B, 3), "position": (B, 5)} for images (B, 3, 32, 32)."""
        f = self.features(images)  # (B, 2w, 8, 8)
        what = self.what(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))  # (B, hidden)
        where = self.where(F.avg_pool2d(f, 2))  # (B, hidden)
        return {"color": self.heads["color"](what), "shape": self.heads["shape"](what),
                "position": self.heads["position"](where)}

    @staticmethod
    def prepare(images: Tensor) -> Tensor:
        """Check and bring images to (N, 3, 32, 32) float32 in [-1, 1] (resized with antialiasing if needed)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"the shapes judge reads RGB images (N, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            images = to_unit_range(images)
        x = images.float()
        if x.shape[-2:] != (JUDGE_RESOLUTION, JUDGE_RESOLUTION):
            x = F.interpolate(x, size=(JUDGE_RESOLUTION, JUDGE_RESOLUTION), mode="bilinear", antialias=True,
                              align_corners=False)
        return x.clamp(-1.0, 1.0)

    @torch.no_grad()
    def judge(self, images: Tensor, batch_size: int = 500) -> dict[str, Tensor]:
        """Predicted ids {"color", "shape", "position", "class"} (each (N,) long) and "confidence" (N,):
        the product of the three heads' top probabilities. "class" is color*15 + shape*5 + position."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        x = self.prepare(images)
        out: dict[str, list[Tensor]] = {k: [] for k in (*ATTRIBUTES, "confidence")}
        for start in range(0, len(x), batch_size):
            logits = self(x[start:start + batch_size].to(device))
            conf = torch.ones(logits["color"].shape[0], device=device)
            for k in ATTRIBUTES:
                p = logits[k].softmax(-1)
                out[k].append(p.argmax(-1).cpu())
                conf = conf * p.max(-1).values
            out["confidence"].append(conf.cpu())
        self.train(was_training)
        res = {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.long if k != "confidence" else torch.float32)
               for k, v in out.items()}
        res["class"] = res["color"] * (len(SHAPES) * len(POSITIONS)) + res["shape"] * len(POSITIONS) + res["position"]
        return res

    def evaluate(self, images: Tensor, attributes: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, float]:
        """Accuracy per attribute and "all" (every attribute right) against the intended attributes."""
        want = attributes_to_tensor(attributes, images.shape[0])
        got = self.judge(images)
        hits = torch.stack([got[k] == want[:, i] for i, k in enumerate(ATTRIBUTES)], dim=1)  # (N, 3)
        n = max(len(want), 1)
        res = {k: float(hits[:, i].sum()) / n for i, k in enumerate(ATTRIBUTES)}
        res["all"] = float(hits.all(dim=1).sum()) / n
        return res

    def prompt_match_rate(self, images: Tensor, attributes: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> float:
        """Fraction of images whose colour, shape and position all match the prompt's attributes."""
        return self.evaluate(images, attributes)["all"]

    # --- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write judge.safetensors (weights) and judge.json (config, metrics, versions) into `folder`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "judge.safetensors"))
        meta = {"format": _FORMAT, "version": 1, "shapes_version": SHAPES_VERSION, "config": asdict(self.cfg),
                "metrics": self.metrics}
        (folder / "judge.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "ShapesJudge":
        from ..io_safety import check_tensors_match, read_safetensors

        folder = Path(folder)
        for name in ("judge.json", "judge.safetensors"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"no shapes judge in {str(folder)!r}: {name} is missing")
        meta = json.loads((folder / "judge.json").read_text(encoding="utf-8"))
        if meta.get("format") != _FORMAT or meta.get("version") != 1:
            raise ValueError(f"{str(folder)!r} does not hold a version-1 shapes judge (format {meta.get('format')!r}, "
                             f"version {meta.get('version')!r})")
        judge = cls(ShapesJudgeConfig(**meta["config"]))
        state = read_safetensors(folder / "judge.safetensors")[0]  # validated: header, offsets, NaN/Inf
        check_tensors_match(judge.state_dict(), state, source=folder / "judge.safetensors")
        judge.load_state_dict(state)
        judge.metrics = dict(meta.get("metrics", {}))
        judge.shapes_version = meta.get("shapes_version")
        return judge.to(device).eval()


def _balanced_renders(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """n single-object renders cycling through all 90 classes (held-out pairs included), shuffled."""
    cls = np.random.RandomState([seed, 7]).permutation(np.arange(n) % NUM_SHAPES_CLASSES)
    c, rest = np.divmod(cls, len(SHAPES) * len(POSITIONS))
    s, p = np.divmod(rest, len(POSITIONS))
    images = to_unit_range(torch.from_numpy(render_single_objects(c, s, p, seed=seed)))  # (n, 3, 32, 32)
    return images, torch.from_numpy(np.stack([c, s, p], axis=1)).long()


def train_shapes_judge(
    *,
    num_images: int = 6000,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 5e-3,
    noise: float = 0.1,
    seed: int = 0,
    config: ShapesJudgeConfig | None = None,
    validate: bool = True,
    num_threads: int | None = 1,
    progress: bool = False,
) -> ShapesJudge:
    """Train a judge on `num_images` fresh single-object renders (seed 100 + seed) for `epochs` epochs.

    Adam with a linearly decaying learning rate, cross-entropy summed over the three heads, and
    Gaussian pixel noise of a per-image σ ~ U(0, noise). With `validate`, `judge.metrics` holds the
    accuracies on the dataset's "test_seen" and "heldout" splits (600 images each, never trained on),
    plus the training time in seconds.

    num_threads: torch CPU threads while training (restored afterwards). Convolutions this small run
        fastest on one thread; on a busy 2-core machine two threads were 10x slower. None keeps
        torch's setting.
    """
    with runtime.num_threads(num_threads or 0):
        return _train(num_images, epochs, batch_size, lr, noise, seed, config, validate, progress)


def _train(
    num_images: int, epochs: int, batch_size: int, lr: float, noise: float, seed: int,
    config: ShapesJudgeConfig | None, validate: bool, progress: bool,
) -> ShapesJudge:
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    images, target = _balanced_renders(num_images, seed=100 + seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = ShapesJudge(config)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    steps_per_epoch = max(1, num_images // batch_size)  # the last partial batch is dropped
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="shapes-judge", unit="step", dynamic_ncols=True)
    judge.train()
    for _ in range(epochs):
        order = torch.randperm(num_images, generator=gen)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            x = images[idx]
            sigma = noise * torch.rand(len(idx), 1, 1, 1, generator=gen)
            x = x + sigma * torch.randn(x.shape, generator=gen)
            logits = judge(x)
            loss = sum(F.cross_entropy(logits[k], target[idx, i]) for i, k in enumerate(ATTRIBUTES))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.3f}")
    if bar is not None:
        bar.close()
    judge.eval()
    judge.metrics = {"train_images": num_images, "epochs": epochs, "seed": seed,
                     "train_seconds": round(time.perf_counter() - t0, 1)}
    if validate:
        for split in ("test_seen", "heldout"):
            ds = load_shapes(split=split)
            for k, v in judge.evaluate(ds.images, ds.attributes).items():
                judge.metrics[f"{split}_{k}"] = v
    return judge


def default_judge_folder() -> Path:
    """<cache>/shapes-judge-v<shapes version>, cache being $NOISECRAFT_CACHE or ~/.cache/noisecraft."""
    env = os.environ.get("NOISECRAFT_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "noisecraft"
    return base / f"shapes-judge-v{SHAPES_VERSION}"


def load_or_train_shapes_judge(folder: str | os.PathLike | None = None, *, progress: bool = False) -> ShapesJudge:
    """Load the judge cached in `folder` (default `default_judge_folder()`), or train one and save it there."""
    folder = Path(folder) if folder is not None else default_judge_folder()
    if (folder / "judge.json").is_file():
        return ShapesJudge.load(folder)
    judge = train_shapes_judge(progress=progress)
    judge.save(folder)
    return judge
