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
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import DenoisingLoss, LogitNormal, LogNormal, LogUniform, UniformTime, get_process
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
from .phema import PowerEMA
from .run import RUN_FORMAT, RunError, build_denoiser, generate, is_run, list_snapshots, num_threads, read_run

__all__ = ["RunResult", "TrainingError", "train", "learning_rate", "DataOrder", "build_dataset", "build_net", "make_loss"]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became non-finite)."""


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
    return load_dataset(d.source, resolution=d.resolution or None, split="train", channels=d.channels or None,
                        labels=d.conditional, hflip=d.hflip)


def build_net(cfg: Config, *, channels: int, resolution: int, num_classes: int, net_config: dict | None = None) -> nn.Module:
    """The network the config names (or exactly `net_config`, a saved `net.config`, when resuming),
    initialised from a generator seeded by train.seed."""
    from ..nets import build_net as _build
    from ..nets import build_net_from_config

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_mix_seed(cfg.train.seed, 0x1417))
        if net_config:
            return build_net_from_config(net_config)
        return _build(cfg.net.name, in_channels=channels, resolution=resolution, num_classes=num_classes,
                      **cfg.net.overrides)


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


def _prepare_fresh_run(out: Path, cfg: Config, run_meta: dict) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {str(out)!r} is a file, not a folder")
    if out.is_dir():
        if is_run(out):
            raise RunError(f"{str(out)!r} already holds a run; resume it with `noisecraft train --resume {out}` or choose another --out")
        if any(out.iterdir()):
            raise RunError(f"--out {str(out)!r} is a non-empty folder that is not a run; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", cfg.to_json() + "\n")
    atomic_write_text(out / "run.json", json.dumps({"format": RUN_FORMAT, "created": _now(), **run_meta}, indent=2) + "\n")


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
        blob = st_save(weights, metadata={"std": f"{std}", "samples_seen": f"{samples}", "step": f"{step}"})
        atomic_write_bytes(folder / f"snap-{samples:012d}-{std:.3f}.safetensors", blob)


def _write_grid(run_dir: Path, cfg: Config, denoiser, info_shape, num_classes: int, step: int, writer) -> Path:
    from ..io import save_grid

    sc = cfg.sample
    if num_classes > 0:
        labels = torch.arange(num_classes).repeat_interleave(sc.per_class)
        n, nrow = len(labels), sc.per_class
    else:
        labels, n, nrow = None, sc.per_class * sc.per_class, sc.per_class
    x = generate(denoiser, n, info_shape, seed=cfg.train.seed, class_labels=labels, num_classes=num_classes,
                 guidance=sc.guidance, solver=sc.solver, nfe=sc.nfe, sigma_min=sc.sigma_min, sigma_max=sc.sigma_max)
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
        train.threads and the [sample] section).
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
            if a != b:
                diff = next(f"{sec}.{k}" for sec in a for k in a[sec] if a[sec][k] != b[sec].get(k))
                raise ConfigError(f"{diff} differs from the config saved in {str(out)!r}; resume with the saved config "
                                  "(only train.steps, train.threads, [sample] and [eval] may change)")
            saved.train.steps, saved.train.threads, saved.sample = config.train.steps, config.train.threads, config.sample
            saved.eval = config.eval
        cfg = saved
    else:
        if config is None:
            raise ValueError("train() needs a config for a new run")
        cfg = config.validate()
    tc = cfg.train

    ds = dataset if dataset is not None else build_dataset(cfg)
    if len(ds) == 0:
        raise RunError(f"dataset {cfg.data.source!r} is empty")
    num_classes = ds.num_classes if cfg.data.conditional else 0
    if cfg.data.conditional and num_classes == 0:
        raise ConfigError(f"data.conditional = true but dataset {cfg.data.source!r} has no class labels; set data.conditional=false")
    shape = (ds.channels, ds.resolution, ds.resolution)
    net = build_net(cfg, channels=ds.channels, resolution=ds.resolution, num_classes=num_classes, net_config=saved_net)
    run_meta = {"net": getattr(net, "config", {}), "channels": ds.channels, "resolution": ds.resolution,
                "class_names": list(ds.class_names) if num_classes else [], "dataset_size": len(ds)}

    if not resume:
        _prepare_fresh_run(out, cfg, run_meta)
    elif config is not None and cfg.to_dict() != json.loads((out / "config.json").read_text(encoding="utf-8")):
        atomic_write_text(out / "config.json", cfg.to_json() + "\n")

    with num_threads(tc.threads), torch.random.fork_rng(devices=[]):
        return _run(cfg, out, ds, net, shape, num_classes, resume, stop_at, progress, on_step)


def _run(cfg: Config, out: Path, ds, net: nn.Module, shape, num_classes: int, resume: bool, stop_at, progress, on_step) -> RunResult:
    tc, oc = cfg.train, cfg.optim
    denoiser = build_denoiser(net, cfg).train()
    loss_fn = make_loss(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps, weight_decay=oc.weight_decay)
    ema = EMA(net, cfg.ema.decay, cfg.ema.warmup)
    pema = PowerEMA(net, cfg.ema.phema_stds) if cfg.ema.phema_every > 0 else None
    gen = torch.Generator().manual_seed(_mix_seed(tc.seed, 0x7EA1))
    torch.manual_seed(_mix_seed(tc.seed, 0x610BA1))
    order = DataOrder(len(ds), tc.seed)
    step, samples_seen = 0, 0
    eval_best = None

    ckpt_dir = out / "checkpoints"
    ckpt = latest_checkpoint(ckpt_dir) if resume else None
    if ckpt is not None:
        where = f"checkpoint {ckpt}"
        step, state = load_checkpoint(ckpt)
        try:
            net.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optim"])
            if pema is not None:
                pema.load_state_dict(state["phema"])
            samples_seen = int(state["progress"]["samples_seen"])
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
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=tc.bf16)
    saved_path = ckpt
    try:
        while step < last:
            lr = learning_rate(oc, step, tc.steps)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(tc.accum_steps):
                idx = order.take(micro)
                x0 = ds.images[idx]  # (micro, C, H, W)
                if ds.hflip:
                    flip = torch.rand(micro, generator=gen) < 0.5
                    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
                cond = {}
                if num_classes > 0:
                    onehot = F.one_hot(ds.labels[idx], num_classes).float()  # (micro, classes)
                    if tc.class_dropout > 0:  # all-zero rows = "no label" for classifier-free guidance
                        keep = torch.rand(micro, generator=gen) >= tc.class_dropout
                        onehot = onehot * keep[:, None].float()
                    cond["class_labels"] = onehot
                with autocast:
                    loss = loss_fn(denoiser, x0, generator=gen, **cond)
                (loss / tc.accum_steps).backward()
                total += float(loss.detach()) / tc.accum_steps
            if not math.isfinite(total):
                raise TrainingError(f"loss became non-finite ({total}) at step {step}; lower optim.lr or set optim.grad_clip")
            grad_norm = float(nn.utils.clip_grad_norm_(params, oc.grad_clip)) if oc.grad_clip > 0 else math.nan
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
                       "grad_norm": grad_norm}
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
                _write_grid(out, cfg, ema_den, shape, num_classes, step, writer)
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
                    "progress": {"step": step, "samples_seen": samples_seen},
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
    return RunResult(out, step, samples_seen, last_loss, saved_path, time.perf_counter() - t_start, start_step, losses)
