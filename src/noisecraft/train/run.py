"""Run folders: what a training run writes, and how to turn one back into a denoiser and images.

    RUN_DIR/
        run.json            marker + what is needed to rebuild the model (net config, classes, shape)
        config.json         the resolved training config
        checkpoints/        see noisecraft.train.checkpoint
        phema/              post-hoc EMA snapshots (snap-*.safetensors) and reconstructions (phema-*.safetensors)
        samples/            sample grids written during training
        metrics.jsonl       one JSON line per log interval: step, samples, loss, lr, samples/s, grad norm
        eval.jsonl          one JSON line per evaluation ([eval] every > 0): step, samples, metrics
        best/               ema.safetensors + best.json: the EMA weights of the best evaluation (eval.keep_best)
        loss.png            the loss curve
        tb/                 TensorBoard event files

`load_denoiser(run_dir, weights="ema")` rebuilds the preconditioned network from a run;
`generate(denoiser, n, ...)` draws images with per-sample seeds (seed + i), optional class labels
and classifier-free guidance.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import Tensor, nn

from ..core import Precond, get_process
from ..runtime import num_threads  # noqa: F401  (re-exported: CLI and eval import it from here)
from .checkpoint import CheckpointError, atomic_write_bytes, latest_checkpoint, load_checkpoint
from .config import Config, config_from_dict

__all__ = [
    "RunError",
    "RunInfo",
    "RUN_FORMAT",
    "is_run",
    "read_run",
    "build_denoiser",
    "load_denoiser",
    "weight_choices",
    "resolve_class",
    "generate",
    "sample_to_images",
    "list_snapshots",
    "num_threads",
]

RUN_FORMAT = "noisecraft-run/1"
_PHEMA_FILE = re.compile(r"^phema-(\d+\.\d+)\.safetensors$")
_SNAP_FILE = re.compile(r"^snap-(\d{12})-(\d+\.\d+)\.safetensors$")


class RunError(ValueError):
    """A user error about a run folder: not a run, no weights yet, unknown weights or class. One line."""


@dataclass
class RunInfo:
    """What run.json records: enough to rebuild the network and label its outputs."""

    path: Path
    config: Config
    net: dict  # net.config of noisecraft.nets (JSON)
    channels: int
    resolution: int
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def conditional(self) -> bool:
        return self.config.data.conditional and self.num_classes > 0




def is_run(path: str | Path) -> bool:
    p = Path(path) / "run.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("format") == RUN_FORMAT
    except (ValueError, OSError):
        return False


def read_run(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {str(run_dir)!r} does not exist")
    if not is_run(run_dir):
        raise RunError(f"{str(run_dir)!r} is not a noisecraft run (no valid run.json); give a folder written by `noisecraft train`")
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        cfg = config_from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
        return RunInfo(run_dir, cfg, dict(meta["net"]), int(meta["channels"]), int(meta["resolution"]), list(meta["class_names"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"run {str(run_dir)!r} has an unreadable run.json/config.json: {e}".splitlines()[0]) from None


def build_denoiser(net: nn.Module, config: Config) -> Precond:
    """Wrap a network in the preconditioning the config names."""
    p = config.process
    return Precond(net, p.prediction, get_process(p.name, **p.options), p.sigma_data)


def list_snapshots(run_dir: str | Path) -> list[tuple[int, float, Path]]:
    """Post-hoc EMA snapshots (samples seen, std, file), oldest first."""
    folder = Path(run_dir) / "phema"
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _SNAP_FILE.match(p.name)
            if m:
                out.append((int(m.group(1)), float(m.group(2)), p))
    return sorted(out)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def phema_path(run_dir: str | Path, std: float) -> Path:
    return Path(run_dir) / "phema" / f"phema-{std:.3f}.safetensors"


def reconstruct_phema(run_dir: str | Path, std: float, *, write: bool = True) -> tuple[dict[str, Tensor], Path | None]:
    """EMA weights of relative std `std` at the end of the run, from the post-hoc snapshots."""
    from .phema import MAX_STD, reconstruct

    if not 0 < std < MAX_STD:
        raise RunError(f"--std {std} is out of range; valid: 0 < std < {MAX_STD}")
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise RunError(f"run {str(run_dir)!r} has no post-hoc EMA snapshots (ema.phema_every = 0, or no snapshot saved yet)")
    loaded = [(float(t), s, _read_safetensors(p)[0]) for t, s, p in snaps]
    weights = reconstruct(loaded, std)
    out = None
    if write:
        out = phema_path(run_dir, std)
        meta = {"std": f"{std}", "samples_seen": f"{max(t for t, _, _ in snaps)}", "snapshots": f"{len(snaps)}"}
        atomic_write_bytes(out, st_save({k: v.contiguous() for k, v in weights.items()}, metadata=meta))
    return weights, out


def best_path(run_dir: str | Path) -> Path:
    """The EMA weights of the best evaluation during training (eval.keep_best)."""
    return Path(run_dir) / "best" / "ema.safetensors"


def weight_choices(run_dir: str | Path) -> list[str]:
    """Valid `weights=` values for this run."""
    choices = ["raw", "ema"]
    if best_path(run_dir).is_file():
        choices.append("best")
    if list_snapshots(run_dir):
        choices.append("phema-<std>")
    return choices


def _sub(state: dict, prefix: str) -> dict[str, Tensor]:
    node = state
    for part in prefix.split("/"):
        node = node[part]
    return node


def load_denoiser(run_dir: str | Path, weights: str = "ema", *, build_net: Callable[[dict], nn.Module] | None = None) -> tuple[Precond, RunInfo]:
    """(denoiser in eval mode, run info) from the newest complete checkpoint of a run.

    weights: "raw" (the trained weights), "ema" (classic EMA), "best" (the EMA weights of the best
    evaluation during training, RUN_DIR/best/, written with eval.keep_best), or "phema-<std>"
    (post-hoc EMA reconstructed for relative std <std>; uses phema/phema-<std>.safetensors if
    `noisecraft ema` wrote it, otherwise reconstructs it from the snapshots in memory).
    """
    info = read_run(run_dir)
    if build_net is None:
        from ..nets import build_net_from_config as build_net
    if weights == "best":
        path = best_path(run_dir)
        if not path.is_file():
            raise RunError(f"weights 'best' is not available: run {str(run_dir)!r} has no best/ weights (train with "
                           f"eval.every > 0 and eval.keep_best set); valid: {', '.join(weight_choices(run_dir))}")
        try:
            params = _read_safetensors(path)[0]
            net = build_net(info.net)
            net.load_state_dict(params)
        except Exception as e:  # noqa: BLE001 - a torn or foreign file
            raise RunError(f"best weights {path} cannot be loaded: {e}".splitlines()[0]) from None
        net.eval().requires_grad_(False)
        return build_denoiser(net, info.config).eval(), info
    ckpt = latest_checkpoint(Path(run_dir) / "checkpoints")
    if ckpt is None:
        raise RunError(f"run {str(run_dir)!r} has no complete checkpoint yet; train it first (or resume it with `noisecraft train --resume`)")
    try:
        _, state = load_checkpoint(ckpt)
    except CheckpointError as e:
        raise RunError(str(e)) from None
    net = build_net(info.net)
    net.load_state_dict(state["model"])  # raw weights (and buffers) first
    if weights == "ema":
        net.load_state_dict(state["ema"]["module"])
    elif weights.startswith("phema-"):
        try:
            std = float(weights[len("phema-"):])
        except ValueError:
            raise RunError(f"weights {weights!r} is not valid; valid: {', '.join(weight_choices(run_dir))}") from None
        path = phema_path(run_dir, std)
        params = _read_safetensors(path)[0] if path.is_file() else reconstruct_phema(run_dir, std, write=False)[0]
        missing = set(dict(net.named_parameters())) - set(params)
        if missing:
            raise RunError(f"post-hoc EMA weights for std {std} do not match the network (missing {sorted(missing)[0]!r})")
        net.load_state_dict(params, strict=False)
    elif weights != "raw":
        raise RunError(f"weights {weights!r} is not valid; valid: {', '.join(weight_choices(run_dir))}")
    net.eval().requires_grad_(False)
    return build_denoiser(net, info.config).eval(), info


def resolve_class(info: RunInfo, value: str | int) -> int:
    """Class index from an index or a class name; RunError naming the valid classes otherwise."""
    if not info.conditional:
        raise RunError(f"--class {value} was given but the run {str(info.path)!r} trained an unconditional model (no classes)")
    names = info.class_names
    text = str(value)
    if text.lstrip("-").isdigit():
        idx = int(text)
        if 0 <= idx < len(names):
            return idx
    if text in names:
        return names.index(text)
    shown = ", ".join(names) if len(names) <= 20 else f"{', '.join(names[:20])}, ..."
    raise RunError(f"--class {value} is not a class of this model; valid: 0..{len(names) - 1} or a class name ({shown})")


def generate(
    denoiser: Callable[..., Tensor],
    n: int,
    shape: Sequence[int],
    *,
    seed: int = 0,
    class_labels: Tensor | Sequence[int] | int | None = None,
    num_classes: int = 0,
    guidance: float = 1.0,
    solver: str = "heun",
    nfe: int = 35,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    batch_size: int = 250,
    callback: Callable[[dict], None] | None = None,
) -> Tensor:
    """n images (n, *shape) in σ-space units (data range), sample i drawn from seed + i.

    class_labels: one class for all, one per sample, or None (unconditional). With labels,
    guidance ≠ 1 applies classifier-free guidance against all-zero label rows.
    """
    from ..guidance.cfg import classifier_free_guidance
    from ..sampling import sample, seeded_generators

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    labels = None
    if class_labels is not None:
        if num_classes < 1:
            raise ValueError("class labels need num_classes >= 1")
        labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        if labels.numel() == 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} class labels for {n} samples")
        if bool((labels < 0).any() or (labels >= num_classes).any()):
            raise ValueError(f"class labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
    den = denoiser if labels is None else classifier_free_guidance(denoiser, guidance, num_classes=num_classes)
    out = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        gens = seeded_generators(range(seed + start, seed + stop))
        noise = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens])  # (b, *shape)
        cond: dict[str, Any] = {}
        if labels is not None:
            cond["class_labels"] = torch.nn.functional.one_hot(labels[start:stop], num_classes).float()
        with torch.no_grad():
            out.append(sample(den, noise, solver=solver, nfe=nfe, sigma_min=sigma_min, sigma_max=sigma_max,
                              generator=gens, callback=callback, **cond))
    return torch.cat(out)


def sample_to_images(x: Tensor) -> Tensor:
    """Clamp samples to the data range [-1, 1] for saving."""
    return x.clamp(-1.0, 1.0)
