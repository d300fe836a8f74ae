"""The training loop: one plain function that counts progress in samples seen and resumes all of its
state from one checkpoint (in the spirit of EDM2's training_loop.py).

Reproducibility contract (CPU, fixed seed): `train(cfg, run)` straight to N steps and
`train(cfg, run, stop_at=k)` followed by `train(None, run, resume=True)` give bitwise identical
weights, EMA, post-hoc EMA tracks and optimizer state. Everything random comes from
  * the trainer's generator (σ and ε of the loss, class dropout, horizontal flips),
  * the data order: a permutation per epoch from a generator seeded by (seed, epoch), read
    sequentially; the position (epoch, index) is part of the checkpoint,
  * torch's global generator (only used by networks with dropout), saved and restored too.
Model initialisation draws from a generator seeded by the config seed, so rebuilding the model on
resume does not disturb anything. Logging, sample grids and timing never touch these generators.

Non-finite steps (train.nonfinite = "skip", the default): a step whose loss or gradient norm is
NaN/Inf applies no update - parameters, AdamW moments, EMA and post-hoc EMA stay as they were and
step / samples seen / the LR schedule do not advance - but its batch and random draws are consumed,
so the retry trains on the next batch. Skips are counted (`nonfinite_steps` in metrics.jsonl, the
checkpoint and RunResult); train.max_nonfinite consecutive ones, or any one with "stop", raise
TrainingError. Checkpoints are only written after applied updates, never with non-finite tensors.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import DenoisingLoss, LogitNormal, LogNormal, LogUniform, UniformTime, get_process
from ..io_safety import check_tensors_match
from .checkpoint import (
    CheckpointError,
    atomic_write_text,
    decode_bytes,
    encode_bytes,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .config import Config, ConfigError, OptimConfig
from .ema import EMA
from .image_cond import build_image_cond, net_overrides, write_cond_grid
from .phema import PowerEMA
from ..runtime import resolve_device
from .run import RUN_FORMAT, RunError, build_denoiser, generate, is_run, list_snapshots, num_threads, read_run

__all__ = ["RunResult", "TrainingError", "train", "learning_rate", "DataOrder", "build_dataset", "build_net", "make_loss"]


class TrainingError(RuntimeError):
    """Training cannot go on (too many non-finite steps, a full disk). One line."""


# hidden temp files of the atomic writers (checkpoint.atomic_write_bytes, io.images, plot_losses)
_TEMP_FILE = re.compile(r"^\..+\.tmp(-\d+|\.png)?$")

# errors of a write that the user can fix (disk full, quota, read-only file system, permissions)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass
class RunResult:
    run_dir: Path
    step: int  # optimizer steps done
    samples_seen: int
    loss: float  # mean loss of the last log window (nan if none)
    checkpoint: Path | None  # newest complete checkpoint
    seconds: float  # wall time spent training in this call
    resumed_from: int  # step this call started from (0 = fresh)
    losses: list[float] = field(default_factory=list)  # per-step losses of this call
    nonfinite_steps: int = 0  # updates skipped for a non-finite loss/gradient, whole run (train.nonfinite)


# ------------------------------------------------------------------------------------------------
# Pieces (public so tests and notebooks can use them one by one)


def learning_rate(cfg: OptimConfig, step: int, total_steps: int) -> float:
    """Learning rate for 0-based `step`: linear warm-up to cfg.lr, then the chosen decay."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = max(cfg.decay_start, cfg.warmup_steps)
    if cfg.decay == "none" or step < start:
        return cfg.lr
    if cfg.decay == "inv_sqrt":  # EDM2 Eq. 16: α_ref / sqrt(max(t / t_ref, 1))
        return cfg.lr / math.sqrt(max(step / max(start, 1), 1.0))
    frac = min(1.0, (step - start) / max(1, total_steps - 1 - start))
    if cfg.decay == "cosine":
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr + (cfg.min_lr - cfg.lr) * frac  # linear


def _mix_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])


class DataOrder:
    """Sequential reader over per-epoch permutations; the state is (epoch, index)."""

    def __init__(self, num_items: int, seed: int, epoch: int = 0, index: int = 0):
        if num_items < 1:
            raise ValueError("cannot train on an empty dataset")
        self.num_items, self.seed, self.epoch, self.index = num_items, seed, epoch, index
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(_mix_seed(self.seed, epoch, 0x0DA7A))
        return torch.randperm(self.num_items, generator=g)

    def take(self, k: int) -> Tensor:
        out = []
        while k > 0:
            if self.index >= self.num_items:
                self.epoch, self.index = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
            m = min(k, self.num_items - self.index)
            out.append(self._perm[self.index : self.index + m])
            self.index += m
            k -= m
        return torch.cat(out)

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "num_items": self.num_items}

    @classmethod
    def from_state(cls, state: Any, num_items: int, seed: int, where: str = "checkpoint") -> "DataOrder":
        if not isinstance(state, dict) or not all(isinstance(state.get(k), int) and not isinstance(state.get(k), bool)
                                                  for k in ("epoch", "index", "num_items")):
            raise CheckpointError(f"{where} has missing or corrupt data-order state {state!r}; cannot resume exactly")
        if state["num_items"] != num_items:
            raise CheckpointError(f"{where} was trained on {state['num_items']} items but the dataset now has {num_items}; "
                                  "the data changed, cannot resume exactly")
        if not (state["epoch"] >= 0 and 0 <= state["index"] <= num_items):
            raise CheckpointError(f"{where} has an invalid data position {state!r}")
        return cls(num_items, seed, state["epoch"], state["index"])


def build_dataset(cfg: Config):
    """The training ImageDataset the config names (DataError for a bad source)."""
    from ..data import load_dataset

    d = cfg.data
    if d.options:  # extra keywords of a built-in loader (validated by DataConfig), e.g. shapes' two_object_fraction
        from ..data import BUILTIN_DATASETS

        return BUILTIN_DATASETS[d.source](resolution=d.resolution or None, split="train", channels=d.channels or None,
                                          labels=d.conditional, hflip=d.hflip, **d.options)
    return load_dataset(d.source, resolution=d.resolution or None, split="train", channels=d.channels or None,
                        labels=d.conditional, hflip=d.hflip, on_error=d.on_error)


def build_net(cfg: Config, *, channels: int, resolution: int, num_classes: int, net_config: dict | None = None,
              context_dim: int = 0) -> nn.Module:
    """The network the config names (or exactly `net_config`, a saved `net.config`, when resuming),
    initialised from a generator seeded by train.seed. context_dim > 0 adds cross-attention (text)."""
    from ..nets import build_net as _build
    from ..nets import build_net_from_config

    image_overrides = net_overrides(cfg, channels, resolution)  # net.overrides + cond_channels for [cond] image
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_mix_seed(cfg.train.seed, 0x1417))
        if net_config:
            return build_net_from_config(net_config)
        overrides = dict(image_overrides)
        if context_dim:  # cross-attention, plus the pooled prompt added to the noise embedding (Imagen)
            overrides = {"pooled_context": True, **overrides, "context_dim": context_dim}
        return _build(cfg.net.name, in_channels=channels, resolution=resolution, num_classes=num_classes, **overrides)


def make_loss(cfg: Config) -> DenoisingLoss:
    lc, pc = cfg.loss, cfg.process
    if lc.levels == "lognormal":
        levels = LogNormal(lc.p_mean, lc.p_std)
    elif lc.levels == "loguniform":
        levels = LogUniform(lc.sigma_min, lc.sigma_max)
    elif lc.levels == "logitnormal":
        levels = LogitNormal(lc.p_mean, lc.p_std)
    else:
        levels = UniformTime(get_process(pc.name, **pc.options))
    return DenoisingLoss(levels, lc.weighting, pc.sigma_data, lc.gamma)


# ------------------------------------------------------------------------------------------------
# Run folder bookkeeping


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _start_leftover(p: Path) -> bool:
    """What a start killed before run.json (the marker, written last) can leave: config.json and
    the temp files of the two atomic writes. Such a folder may be started again."""
    return p.is_file() and (p.name == "config.json" or p.name.startswith((".config.json.tmp-", ".run.json.tmp-")))


def _check_fresh_out(out: Path) -> None:
    """Refuse an --out that cannot hold a new run, before any data is read or anything is created:
    a file, a folder inside a file, an existing run, a non-empty folder, or an unwritable place."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {str(out)!r} is a file, not a folder")
    if out.is_dir():
        if is_run(out):
            raise RunError(f"{str(out)!r} already holds a run; resume it with `noisecraft train --resume {out}` or choose another --out")
        if not all(_start_leftover(p) for p in out.iterdir()):
            raise RunError(f"--out {str(out)!r} is a non-empty folder that is not a run; choose an empty or new folder")
        where = out
    else:  # the nearest existing ancestor is where the folder would be created
        where = next((a for a in out.absolute().parents if a.exists()), Path("/"))
        if not where.is_dir():
            raise RunError(f"--out {str(out)!r} cannot be created: {str(where)!r} is a file, not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise RunError(f"--out {str(out)!r} is not writable: no write permission for {str(where)!r} (or a read-only "
                       "file system); choose a folder you can write to")


def _check_free_space(out: Path, cfg: Config, net: nn.Module) -> None:
    """Refuse to start when the disk cannot hold the run's checkpoints and post-hoc EMA snapshots
    (an estimate from the parameter count; a full disk later still fails cleanly, see save_checkpoint)."""
    n = sum(p.numel() * p.element_size() for p in net.parameters())
    tracks = len(cfg.ema.phema_stds) if cfg.ema.phema_every > 0 else 0
    per_ckpt = n * (4 + tracks)  # model, EMA, two AdamW moments, post-hoc EMA tracks
    snapshots = n * tracks * (cfg.train.steps // cfg.ema.phema_every + 1) if tracks else 0
    need = per_ckpt * (cfg.train.keep_checkpoints + 1) + snapshots + (8 << 20)  # + logs, grids, plots
    where = next((a for a in [out, *out.absolute().parents] if a.exists()), Path("/"))
    free = shutil.disk_usage(where).free
    if free < need:
        raise RunError(f"not enough free space for {str(out)!r}: {free / 2**20:.0f} MiB free on {str(where)!r}, the run "
                       f"needs about {need / 2**20:.0f} MiB (checkpoints + post-hoc EMA snapshots); free space, choose "
                       "another --out, or lower train.keep_checkpoints / raise ema.phema_every")


def _prepare_fresh_run(out: Path, cfg: Config, run_meta: dict) -> None:
    _check_fresh_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", cfg.to_json() + "\n")
        # run.json last: it marks the folder as a run (a start killed before it can simply be redone)
        atomic_write_text(out / "run.json", json.dumps({"format": RUN_FORMAT, "created": _now(), **run_meta}, indent=2) + "\n")
    except OSError as e:
        raise RunError(f"cannot create the run folder {str(out)!r}: {e.strerror or e}; choose a folder you can write to") from None


def _truncate_metrics(path: Path, step: int) -> list[dict]:
    """Keep metric lines up to `step` (lines of steps redone after a resume are dropped)."""
    rows: list[dict] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash
            if row.get("step", math.inf) <= step:
                rows.append(row)
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def plot_losses(rows: list[dict], path: Path) -> None:
    """Loss curve PNG (log-scale loss vs samples seen)."""
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = [r["samples"] for r in rows]
    y = [r["loss"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(x, y, lw=1, label="loss (mean per log interval)")
    if len(y) >= 10:  # a trailing moving average shows the trend through the σ-sampling noise
        k = max(3, len(y) // 20)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1 :], smooth, lw=2, label=f"moving average of {k}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("loss")
    if min(y) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _save_snapshot(run_dir: Path, pema: PowerEMA, samples: int, step: int) -> None:
    from safetensors.torch import save as st_save

    from .checkpoint import atomic_write_bytes

    folder = run_dir / "phema"
    folder.mkdir(exist_ok=True)
    for std, weights in pema.snapshot().items():
        weights = {k: v.cpu() for k, v in weights.items()}
        blob = st_save(weights, metadata={"std": f"{std}", "samples_seen": f"{samples}", "step": f"{step}"})
        atomic_write_bytes(folder / f"snap-{samples:012d}-{std:.3f}.safetensors", blob)


def _write_grid(run_dir: Path, cfg: Config, denoiser, info_shape, num_classes: int, step: int, writer,
                text=None, module=None) -> Path:
    from ..io import save_grid

    sc = cfg.sample
    prompts, conditioner = None, None
    if text is not None:  # one row per training caption
        rows = text.grid_prompts(sc.per_class)
        prompts, conditioner = [p for p in rows for _ in range(sc.per_class)], text.sampling_conditioner(module)
        labels, n, nrow = None, len(prompts), sc.per_class
    elif num_classes > 0:
        labels = torch.arange(num_classes).repeat_interleave(sc.per_class)
        n, nrow = len(labels), sc.per_class
    else:
        labels, n, nrow = None, sc.per_class * sc.per_class, sc.per_class
    x = generate(denoiser, n, info_shape, seed=cfg.train.seed, class_labels=labels, num_classes=num_classes,
                 prompts=prompts, text_conditioner=conditioner, guidance=sc.guidance, solver=sc.solver, nfe=sc.nfe, sigma_min=sc.sigma_min, sigma_max=sc.sigma_max)
    path = save_grid(x.clamp(-1, 1), run_dir / "samples" / f"step-{step:08d}.png", nrow, scale=sc.scale)
    if writer is not None:
        from ..io import make_grid

        writer.add_image("samples", (make_grid(x.clamp(-1, 1), nrow) + 1) / 2, step)
    return path


# ------------------------------------------------------------------------------------------------
# Evaluation during training ([eval])


class _EvalHook:
    """Scores the EMA weights every `eval.every` steps on a fixed seed, logs them, keeps the best.

    The reference (the training images' features, cached on disk) is built once at the start.
    Nothing here touches the trainer's generator, and the global torch RNG is forked around every
    call, so a run with evaluation on trains (and resumes) exactly like one without.
    """

    def __init__(self, cfg: Config, out: Path, ds, shape, num_classes: int, best: Any, progress: bool):
        from ..data import BUILTIN_DATASETS
        from ..eval.evaluate import METRIC_DIRECTIONS, build_reference, default_extractor
        from ..eval.features import load_extractor
        from ..eval.metrics import min_samples_for_stats

        ec, sc = cfg.eval, cfg.sample
        self.cfg, self.out, self.shape, self.num_classes = cfg, out, tuple(shape), num_classes
        self.solver = ec.solver or sc.solver
        self.nfe = ec.nfe or sc.nfe
        self.guidance = sc.guidance if ec.guidance < 0 else ec.guidance
        self.metric = ec.keep_best
        self.direction = METRIC_DIRECTIONS.get(self.metric, "min")
        # the best value so far (from the checkpoint's training state): only if it is for the same metric
        self.best = None
        if self.metric and isinstance(best, dict) and best.get("metric") == self.metric:
            value = best.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.best = {"metric": self.metric, "value": float(value), "step": int(best.get("step", 0))}
        echo = (lambda m: print(m, flush=True)) if progress else None
        with torch.random.fork_rng(devices=[]):
            if ec.features:
                extractor = load_extractor(ec.features)
            elif cfg.data.source in BUILTIN_DATASETS:
                extractor = default_extractor(cfg.data.source, resolution=cfg.data.resolution or None,
                                              channels=cfg.data.channels or None, echo=echo)
            else:
                raise ConfigError(f"eval.every > 0 needs a feature extractor for {cfg.data.source!r}: fit one with "
                                  f"`noisecraft eval fit-features {cfg.data.source} --out F` and set eval.features=F")
            if "fd" in ec.metrics and ec.n < min_samples_for_stats(extractor.feature_dim):
                raise ConfigError(f"eval.n = {ec.n} is too small for FD with {extractor.feature_dim}-d features; valid: "
                                  f">= {min_samples_for_stats(extractor.feature_dim)} (or drop 'fd' from eval.metrics)")
            self.reference = build_reference(ds.images, extractor, name=f"{cfg.data.source}-train", metrics=ec.metrics)

    def __call__(self, ema_module: nn.Module, step: int, samples_seen: int, writer) -> dict:
        from ..eval.evaluate import METRIC_KEYS, evaluate_during_training

        ec, sc = self.cfg.eval, self.cfg.sample
        denoiser = build_denoiser(ema_module, self.cfg).eval()  # the EMA copy stays in eval mode
        with torch.random.fork_rng(devices=[]):
            scores = evaluate_during_training(
                denoiser, self.reference, shape=self.shape, n=ec.n, num_classes=self.num_classes,
                guidance=self.guidance, solver=self.solver, nfe=self.nfe, sigma_min=sc.sigma_min,
                sigma_max=sc.sigma_max, seed=ec.seed, metrics=ec.metrics)
        values = {k: float(scores[k]) for k in METRIC_KEYS if k in scores}
        row = {"step": step, "samples": samples_seen, **values, "n": ec.n,
               "seconds": scores.get("seconds", 0.0) + scores.get("sampling_seconds", 0.0)}
        with open(self.out / "eval.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if writer is not None:
            for k, v in values.items():
                writer.add_scalar(f"eval/{k}", v, step)
        if self.metric and self.metric in values and math.isfinite(values[self.metric]):
            v = values[self.metric]
            if self.best is None or (v < self.best["value"] if self.direction == "min" else v > self.best["value"]):
                self.best = {"metric": self.metric, "value": v, "step": step}
                self._write_best(ema_module, step, samples_seen, v)
        return row

    def _write_best(self, ema_module: nn.Module, step: int, samples_seen: int, value: float) -> None:
        from safetensors.torch import save as st_save

        from .checkpoint import atomic_write_bytes

        folder = self.out / "best"
        folder.mkdir(exist_ok=True)
        tensors = {k: v.detach().clone().contiguous() for k, v in ema_module.state_dict().items()}
        meta = {"step": f"{step}", "samples_seen": f"{samples_seen}", "metric": self.metric, "value": f"{value!r}"}
        blob = st_save(tensors, metadata=meta)
        atomic_write_bytes(folder / "ema.safetensors", blob)  # weights first, then the JSON that describes them
        doc = {"step": step, "samples_seen": samples_seen, "metric": self.metric, "value": value,
               "direction": self.direction, "weights": "ema.safetensors"}
        atomic_write_text(folder / "best.json", json.dumps(doc, indent=1) + "\n")

    def state(self) -> dict | None:
        return dict(self.best) if self.best is not None else None


# ------------------------------------------------------------------------------------------------
# The loop


def _grad_norm(params: list[Tensor]) -> float:
    """Global L2 norm of the gradients (what clip_grad_norm_ reports), without clipping."""
    norms = [torch.linalg.vector_norm(p.grad.detach().float()) for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _nonfinite_message(tc, out: Path, step: int, what: str, streak: int, total: int, ckpt: Path | None) -> str:
    why = ("train.nonfinite = 'stop'" if tc.nonfinite == "stop"
           else f"{streak} consecutive non-finite steps reached train.max_nonfinite = {tc.max_nonfinite}")
    kept = f"checkpoint {ckpt.name} (the newest) is intact" if ckpt is not None else "no checkpoint was written yet"
    return (f"training stopped at step {step}: non-finite {what}; {why} ({total} non-finite steps in this run). "
            f"Lower optim.lr, set optim.grad_clip (e.g. 1.0), check the data, or use train.nonfinite = 'skip' with a "
            f"larger train.max_nonfinite; {kept} in {str(out)!r}")


def _restore_rng(gen: torch.Generator, rng: Any, where: str) -> None:
    if not isinstance(rng, dict):
        raise CheckpointError(f"{where} has no RNG state; cannot resume exactly")
    for key in ("trainer", "torch"):
        text = rng.get(key)
        try:
            state = decode_bytes(text)
            if state.numel() != gen.get_state().numel():
                raise ValueError("wrong length")
            (gen.set_state if key == "trainer" else torch.set_rng_state)(state)
        except Exception:  # noqa: BLE001 - any failure means the state is unusable
            raise CheckpointError(f"{where} has missing or corrupt RNG state {key!r}; cannot resume exactly") from None


def train(
    config: Config | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
    dataset=None,
    on_step: Callable[[int, float], None] | None = None,
) -> RunResult:
    """Train a diffusion model into the run folder `out_dir`.

    config: the resolved Config (None with resume=True: use the run's saved config; with resume,
        a given config must equal the saved one except for train.steps (a run may be extended),
        train.threads, train.device, [sample] and [eval]).
    resume: continue from the newest complete checkpoint of `out_dir` (or from the start if the
        run died before its first checkpoint).
    stop_at: stop after this step (with a checkpoint) - the way to train part of a run.
    dataset: an ImageDataset to use instead of the one the config names (tests, notebooks);
        it must be the same data again on resume.
    on_step: called with (step, loss) after every optimizer step.
    """
    out = Path(out_dir)
    saved_net = None
    if resume:
        if not is_run(out):
            raise RunError(f"cannot resume {str(out)!r}: it is not a noisecraft run (no valid run.json)")
        info = read_run(out)
        saved, saved_net = info.config, info.net
        if config is not None:
            # Only what does not change the training state may differ: the total steps (extending a
            # run), thread count, the [sample] section (how pictures are drawn) and [eval].
            a, b = config.to_dict(), saved.to_dict()
            for d in (a, b):
                d.pop("sample")
                d.pop("eval")
                d["train"].pop("steps")
                d["train"].pop("threads")
                d["train"].pop("device", None)
                d["train"].pop("nonfinite", None)  # the non-finite policy changes no state
                d["train"].pop("max_nonfinite", None)
            if a != b:
                diff = next(f"{sec}.{k}" for sec in a for k in a[sec] if a[sec][k] != b[sec].get(k))
                raise ConfigError(f"{diff} differs from the config saved in {str(out)!r}; resume with the saved config "
                                  "(only train.steps, train.threads, train.device, train.nonfinite, train.max_nonfinite, [sample] "
                                  "and [eval] may change)")
            saved.train.steps, saved.train.threads, saved.sample = config.train.steps, config.train.threads, config.sample
            saved.train.device = config.train.device
            saved.train.nonfinite, saved.train.max_nonfinite = config.train.nonfinite, config.train.max_nonfinite
            saved.eval = config.eval
        cfg = saved
    else:
        if config is None:
            raise ValueError("train() needs a config for a new run")
        cfg = config.validate()
    tc = cfg.train
    resolve_device(tc.device)  # fail before reading data or creating the run folder
    if not resume:
        _check_fresh_out(out)  # an --out that is a file, inside a file or unwritable: fail before reading data

    ds = dataset if dataset is not None else build_dataset(cfg)
    if len(ds) == 0:
        raise RunError(f"dataset {cfg.data.source!r} is empty")
    num_classes = ds.num_classes if cfg.data.conditional else 0
    if cfg.data.conditional and num_classes == 0:
        raise ConfigError(f"data.conditional = true but dataset {cfg.data.source!r} has no class labels; set data.conditional=false")
    shape = (ds.channels, ds.resolution, ds.resolution)
    text = None
    if cfg.text.encoder:  # text-to-image: see train/text_cond.py
        from .text_cond import TextTraining

        with num_threads(tc.threads):
            text = TextTraining(cfg, ds, read_run(out).text if resume else None, progress=progress)
    net = build_net(cfg, channels=ds.channels, resolution=ds.resolution, num_classes=num_classes, net_config=saved_net,
                    context_dim=text.context_dim if text is not None else 0)
    run_meta = {"net": getattr(net, "config", {}), "channels": ds.channels, "resolution": ds.resolution,
                "class_names": list(ds.class_names) if num_classes else [], "dataset_size": len(ds),
                "skipped_files": list(getattr(ds, "skipped_files", None) or [])}
    if run_meta["skipped_files"]:  # data.on_error = "skip": say how many, every time (run.json lists them)
        import sys

        print(f"warning: skipped {len(run_meta['skipped_files'])} unreadable image(s) of {cfg.data.source!r} "
              f"(data.on_error = 'skip'); training on the other {len(ds)}; listed in run.json", file=sys.stderr)
    if text is not None:
        run_meta["text"] = text.meta
        net = text.wrap(net)  # the net plus a trainable text encoder: one module to optimize, average and save

    if not resume:
        _check_free_space(out, cfg, net)
        _prepare_fresh_run(out, cfg, run_meta)
    elif config is not None and cfg.to_dict() != json.loads((out / "config.json").read_text(encoding="utf-8")):
        atomic_write_text(out / "config.json", cfg.to_json() + "\n")

    try:
        with num_threads(tc.threads), torch.random.fork_rng(devices=[]):
            return _run(cfg, out, ds, net, shape, num_classes, resume, stop_at, progress, on_step, text=text)
    except OSError as e:  # disk full / read-only while writing logs, snapshots, grids or a checkpoint
        if isinstance(e, CheckpointError) or e.errno not in _WRITE_ERRNOS:
            raise  # CheckpointWriteError already says what happened and what is intact
        ckpt = latest_checkpoint(out / "checkpoints")
        kept = f"the newest checkpoint {ckpt.name} is intact" if ckpt is not None else "no checkpoint was written yet"
        raise TrainingError(f"cannot write {str(e.filename or out)!r}: {e.strerror or e}; {kept} - free space and "
                            f"continue with `noisecraft train --resume {out}`") from e


def _run(cfg: Config, out: Path, ds, net: nn.Module, shape, num_classes: int, resume: bool, stop_at, progress, on_step,
         text=None) -> RunResult:
    tc, oc = cfg.train, cfg.optim
    # Every random draw comes from CPU generators and is moved to the device, so a seed gives the
    # same data order, σ and ε on every device (results still differ at float rounding on GPU).
    device = resolve_device(tc.device)
    net.to(device)
    denoiser = build_denoiser(net, cfg).train()
    loss_fn = make_loss(cfg)
    groups = text.param_groups(net) if text is not None else net.parameters()  # text: a jointly trained encoder at its own lr
    opt = torch.optim.AdamW(groups, lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps, weight_decay=oc.weight_decay)
    ema = EMA(net, cfg.ema.decay, cfg.ema.warmup)
    pema = PowerEMA(net, cfg.ema.phema_stds) if cfg.ema.phema_every > 0 else None
    gen = torch.Generator().manual_seed(_mix_seed(tc.seed, 0x7EA1))
    torch.manual_seed(_mix_seed(tc.seed, 0x610BA1))
    order = DataOrder(len(ds), tc.seed)
    step, samples_seen = 0, 0
    nonfinite_steps, bad_streak = 0, 0  # skipped updates: whole run / consecutive (train.nonfinite)
    eval_best = None

    ckpt_dir = out / "checkpoints"
    ckpt = latest_checkpoint(ckpt_dir) if resume else None
    if ckpt is not None:
        where = f"checkpoint {ckpt}"
        step, state = load_checkpoint(ckpt)
        try:
            # names, shapes and dtypes first (load_state_dict would cast dtypes, and a wrong-shaped
            # optimizer moment would only fail at the first step): a WeightMismatchError is a ValueError
            check_tensors_match(net.state_dict(), state["model"], source=f"{where} [model]")
            check_tensors_match(ema.module.state_dict(), state["ema"]["module"], source=f"{where} [ema]")
            net.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optim"])
            for p in (q for g in opt.param_groups for q in g["params"]):
                for k, v in opt.state.get(p, {}).items():
                    if k != "step" and isinstance(v, Tensor) and v.shape != p.shape:
                        raise ValueError(f"optimizer state {k!r} has shape {list(v.shape)}, its parameter {list(p.shape)}")
            if pema is not None:
                for i, track in enumerate(pema.tracks):
                    check_tensors_match(dict(zip(pema._names, track)), state["phema"]["tracks"][f"{i}"],
                                        source=f"{where} [phema track {i}]")
                pema.load_state_dict(state["phema"])
            samples_seen = int(state["progress"]["samples_seen"])
            nonfinite_steps = int(state["progress"].get("nonfinite_steps", 0))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where} does not match this run's model/optimizer: {e}".splitlines()[0]) from None
        _restore_rng(gen, state.get("rng"), where)
        order = DataOrder.from_state(state.get("data_order"), len(ds), tc.seed, where)
        eval_best = state.get("eval_best")
    start_step = step
    if resume:  # drop what a crashed process wrote after the checkpoint we continue from
        for t, _, p in list_snapshots(out):
            if t > samples_seen:
                p.unlink()
        for folder in (out, out / "phema", out / "samples", out / "best"):  # temp files of writes it was killed in
            if folder.is_dir():
                for p in folder.iterdir():
                    if _TEMP_FILE.match(p.name) and p.is_file():
                        p.unlink(missing_ok=True)
    rows = _truncate_metrics(out / "metrics.jsonl", step)
    _truncate_metrics(out / "eval.jsonl", step)
    hook = _EvalHook(cfg, out, ds, shape, num_classes, eval_best, progress) if cfg.eval.every > 0 else None

    writer = None
    if tc.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=step if step > 0 else None)

    from tqdm.auto import tqdm

    last = tc.steps if stop_at is None else min(tc.steps, stop_at)
    bar = tqdm(total=tc.steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True,
               desc=f"train {out.name}")
    micro = tc.batch_size // tc.accum_steps
    params = [p for p in net.parameters() if p.requires_grad]
    window: list[float] = []
    losses: list[float] = []
    last_loss = math.nan
    t_start = t_log = time.perf_counter()
    samples_log = samples_seen
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16)
    saved_path = ckpt
    try:
        while step < last:
            lr = learning_rate(oc, step, tc.steps)
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(tc.accum_steps):
                idx = order.take(micro)
                x0 = ds.images[idx]  # (micro, C, H, W)
                if ds.hflip:
                    flip = torch.rand(micro, generator=gen) < 0.5
                    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
                x0 = x0.to(device, non_blocking=True)
                cond = {}
                if num_classes > 0:
                    onehot = F.one_hot(ds.labels[idx], num_classes).float()  # (micro, classes)
                    if tc.class_dropout > 0:  # all-zero rows = "no label" for classifier-free guidance
                        keep = torch.rand(micro, generator=gen) >= tc.class_dropout
                        onehot = onehot * keep[:, None].float()
                    cond["class_labels"] = onehot.to(device)
                if cfg.cond.image:  # concatenation conditioning built from x0 (train/image_cond.py)
                    cond["image_cond"] = build_image_cond(cfg.cond, x0, gen)
                if text is not None:  # a caption per image, caption dropout, encoded (gradients reach a small encoder)
                    cond.update(text.conditioning(net, idx, gen, device))
                with autocast:
                    loss = loss_fn(denoiser, x0, generator=gen, **cond)
                (loss / tc.accum_steps).backward()
                total += float(loss.detach()) / tc.accum_steps
            grad_norm = float(nn.utils.clip_grad_norm_(params, oc.grad_clip)) if oc.grad_clip > 0 else _grad_norm(params)
            if not (math.isfinite(total) and math.isfinite(grad_norm)):
                # Skip the update: parameters, optimizer moments, EMA and post-hoc EMA stay as they are, and
                # step / samples_seen / the LR schedule do not advance. The batch and its random draws (σ, ε,
                # flips, label dropout) are consumed, so the retry takes the next batch; it all stays
                # deterministic, and a checkpoint (only ever after an applied update) resumes it exactly.
                nonfinite_steps += 1
                bad_streak += 1
                what = f"loss ({total})" if not math.isfinite(total) else f"gradient (norm {grad_norm})"
                if tc.nonfinite == "stop" or bad_streak >= tc.max_nonfinite:
                    raise TrainingError(_nonfinite_message(tc, out, step + 1, what, bad_streak, nonfinite_steps, saved_path))
                if progress:
                    bar.write(f"step {step + 1}: non-finite {what}; update skipped ({bad_streak} in a row, "
                              f"{nonfinite_steps} in this run)")
                continue
            bad_streak = 0
            opt.step()
            step += 1
            samples_seen += tc.batch_size
            ema.update(net)
            if pema is not None:
                pema.update(net, samples_seen, tc.batch_size)
            window.append(total)
            losses.append(total)
            if on_step is not None:
                on_step(step, total)
            bar.update(1)

            final = step == last
            if step % tc.log_every == 0 or final:
                now = time.perf_counter()
                speed = (samples_seen - samples_log) / max(now - t_log, 1e-9)
                t_log, samples_log = now, samples_seen
                last_loss = sum(window) / len(window)
                window = []
                row = {"step": step, "samples": samples_seen, "loss": last_loss, "lr": lr, "samples_per_s": speed,
                       "grad_norm": grad_norm, "nonfinite_steps": nonfinite_steps}
                rows.append(row)
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{speed:.0f}")
                if writer is not None:
                    writer.add_scalar("train/loss", last_loss, step)
                    writer.add_scalar("train/lr", lr, step)
                    writer.add_scalar("train/samples_per_s", speed, step)
                    writer.add_scalar("train/samples_seen", samples_seen, step)
            if pema is not None and (step % cfg.ema.phema_every == 0 or step == tc.steps):
                _save_snapshot(out, pema, samples_seen, step)
            if (tc.sample_every and step % tc.sample_every == 0) or step == tc.steps:
                ema_den = build_denoiser(ema.module, cfg).eval()
                if cfg.cond.image:  # conditions | results | originals of the first training images
                    write_cond_grid(out, cfg, ema_den, ds, num_classes, step, writer)
                else:
                    _write_grid(out, cfg, ema_den, shape, num_classes, step, writer, text=text, module=ema.module)
            if hook is not None and (step % cfg.eval.every == 0 or step == tc.steps):
                row = hook(ema.module, step, samples_seen, writer)
                if progress:
                    shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "samples", "n", "seconds"))
                    bar.write(f"eval step {step}: {shown}")
            if step % tc.checkpoint_every == 0 or final:
                state = {
                    "model": net.state_dict(),
                    "ema": ema.state_dict(),
                    "optim": opt.state_dict(),
                    "progress": {"step": step, "samples_seen": samples_seen, "nonfinite_steps": nonfinite_steps},
                    "rng": {"trainer": encode_bytes(gen.get_state()), "torch": encode_bytes(torch.get_rng_state())},
                    "data_order": order.state(),
                    "config": cfg.to_dict(),
                }
                if pema is not None:
                    state["phema"] = pema.state_dict()
                best_state = hook.state() if hook is not None else eval_best
                if best_state is not None:
                    state["eval_best"] = best_state  # so a resumed run continues the comparison
                saved_path = save_checkpoint(ckpt_dir, step, state, keep=tc.keep_checkpoints)
                plot_losses(rows, out / "loss.png")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return RunResult(out, step, samples_seen, last_loss, saved_path, time.perf_counter() - t_start, start_step, losses,
                     nonfinite_steps)
