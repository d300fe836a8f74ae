"""The training loop: one plain function that counts progress in samples seen and resumes all of its
state from one checkpoint (in the spirit of EDM2's training_loop.py). Nothing in it depends on the
kind of signal: a sample is x0 of shape (C, *spatial), its conditions come from conditioners, its
previews from its modality, and the loss is a callable handed in.

Reproducibility contract (CPU, fixed seed): `train(cfg, run)` straight to N steps and
`train(cfg, run, stop_at=k)` followed by `train(None, run, resume=True)` give bitwise identical
weights, EMA, post-hoc EMA tracks and optimizer state - on one process, and on N processes resumed
on N. Everything random comes from
  * per-sample generators keyed by (seed, step attempt, position in the global batch): σ and ε of
    the loss, flips, condition dropout, masks, captions (step.py; the same on 1 or N processes),
  * the data order: a permutation per epoch from a generator seeded by (seed, epoch), read
    sequentially; the position (epoch, index) is part of the checkpoint,
  * torch's global generator (only used by networks with dropout), saved and restored too.
Under torchrun (a process group is initialised: distributed.py) DDP averages the gradients, rank 0
alone writes the run folder, and the other ranks keep the same state without writing.
Model initialisation draws from a generator seeded by the config seed, so rebuilding the model on
resume does not disturb anything. Logging, previews and timing never touch these generators.

Non-finite steps (train.nonfinite = "skip", the default): a step whose loss or gradient norm is
NaN/Inf applies no update - parameters, AdamW moments, EMA and post-hoc EMA stay as they were and
step / samples seen / the LR schedule do not advance - but its batch and random draws are consumed,
so the retry trains on the next batch. Skips are counted (`nonfinite_steps` in metrics.jsonl, the
checkpoint and RunResult); train.max_nonfinite consecutive ones, or any one with "stop", raise
TrainingError. Checkpoints are only written after applied updates, never with non-finite tensors.
"""

from __future__ import annotations

import errno
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..conditioning import Conditioner, conditioners_for_training
from ..config import Config, ConfigError
from ..latent import Autoencoder, DecodedModality, encode_dataset
from ..runs import LATENT_AE_FOLDER, Run, RunError, build_denoiser, is_run, latest_checkpoint, load_checkpoint
from ..runs.checkpoint import CheckpointError, atomic_write_text
from ..runtime import num_threads, resolve_device
from . import folder
from .build import build_dataset, build_net, make_loss, mix_seed
from .distributed import DistributedError, World, current_world
from .ema import EMA, PowerEMA
from .evaluation import Evaluation
from .hooks import Checkpoints, Hook, Previews, ProgressLog, Snapshots, StepInfo
from .state import DataOrder, TrainState
from .step import apply_update, rank_layout, train_step

__all__ = ["RunResult", "TrainingError", "train"]

# errors of a write that the user can fix (disk full, quota, read-only file system, permissions)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, getattr(errno, "EDQUOT", errno.ENOSPC)}
# what may change when a run is resumed: nothing that changes the training state
_RESUMABLE = ("train.steps", "train.threads", "train.device", "train.nonfinite", "train.max_nonfinite",
              "train.channels_last", "train.compile")


class TrainingError(RuntimeError):
    """Training cannot go on (too many non-finite steps, a full disk). One line."""


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


@dataclass
class _Setup:
    """What a run trains on and with, built once per call of train()."""

    cfg: Config
    out: Path
    dataset: Any
    conditioners: list[Conditioner]
    shape: tuple[int, ...]
    modality: Any
    net: nn.Module
    loss: Callable[..., torch.Tensor]


def _comparable(cfg: Config) -> dict:
    d = cfg.to_dict()
    d.pop("sample"), d.pop("eval")
    for key in _RESUMABLE:
        d["train"].pop(key.split(".")[1], None)
    return d


def _resume_config(config: Config | None, out: Path, own_loss: bool = False) -> tuple[Config, Run]:
    """The saved config of the run in `out`, with what may change taken from `config`."""
    if not is_run(out):
        raise RunError(f"out_dir {str(out)!r} cannot be resumed: it is not a noisecraft run (no valid run.json)")
    run = Run.open(out)
    if not own_loss and "distill" in run.meta:  # its loss needs the teacher: the config's loss would train it anew
        raise RunError(f"{str(out)!r} is a distilled run; resume it with `noisecraft distill --resume {out}`")
    saved = run.config
    if config is not None:
        a, b = _comparable(config), _comparable(saved)
        if a != b:
            diff = next(f"{sec}.{k}" for sec in a for k in a[sec] if a[sec][k] != b[sec].get(k))
            raise ConfigError(f"{diff} differs from the config saved in {str(out)!r}; resume with the saved config "
                              f"(only {', '.join(_RESUMABLE)}, [sample] and [eval] may change)")
        for key in _RESUMABLE:
            sec, k = key.split(".")
            setattr(getattr(saved, sec), k, getattr(getattr(config, sec), k))
        saved.sample, saved.eval = config.sample, config.eval
    return saved, run


def _saved_conditioners(run: Run | None) -> list[dict] | None:
    if run is None:
        return None
    return [c.meta() for c in run.conditioners]


def _setup(cfg: Config, out: Path, run: Run | None, dataset: Any, loss: Callable | None, progress: bool,
           write: bool = True, run_meta: dict | None = None) -> _Setup:
    """Data, conditioners, network and loss; a new run's folder is created here (run.json last)."""
    from ..modalities import get_modality

    if cfg.cond.guidance_range and loss is None:
        raise ConfigError(f"cond.guidance_range = {cfg.cond.guidance_range!r} makes the guidance weight a net input, which "
                          "only a guided teacher's targets teach; use `noisecraft distill --guidance-range` (valid here: [])")
    ds = dataset if dataset is not None else build_dataset(cfg)
    if len(ds) == 0:
        raise RunError(f"dataset {cfg.data.source!r} is empty")
    ae = latent_autoencoder(cfg, run) if cfg.latent.autoencoder else None
    if ae is not None:  # latent diffusion: the data is encoded once, the net sees only scaled latents
        with num_threads(cfg.train.threads):
            ds = encode_dataset(ds, ae)
    shape = tuple(int(s) for s in ds.sample_shape)
    _check_image_frames(cfg, shape)
    with num_threads(cfg.train.threads):
        conds = conditioners_for_training(cfg, ds, saved=_saved_conditioners(run), progress=progress)
    net = build_net(cfg, shape, conds, net_config=run.net_config if run is not None else None)
    if ds.skipped_files and write:  # data.on_error = "skip": say how many, every time (run.json lists them)
        print(f"warning: skipped {len(ds.skipped_files)} unreadable {ds.modality} file(s) of {cfg.data.source!r} "
              f"(data.on_error = 'skip'); training on the {len(ds)} examples read; "
              "listed in run.json", file=sys.stderr)
    options = dict(getattr(ds, "modality_options", None) or {})  # e.g. audio's sample rate
    if run is None and write:
        meta = {"net": net.config, "shape": list(shape), "modality": ds.modality, "modality_options": options,
                "conditioners": [c.meta() for c in conds], "class_names": list(ds.class_names) if cfg.data.conditional else [],
                "dataset_size": len(ds), "skipped_files": list(ds.skipped_files), **(run_meta or {})}
        if ae is not None:
            meta["latent"] = {"autoencoder": LATENT_AE_FOLDER, **ae.meta()}
        folder.check_free_space(out, cfg, net)
        if ae is not None:  # the run keeps its own copy (written before run.json, which marks the folder)
            folder.check_fresh_out(out)
            ae.copy_to(out / LATENT_AE_FOLDER)
        folder.prepare_fresh_run(out, cfg, meta)
    modality = get_modality(ds.modality, options)
    if ae is not None:
        modality = DecodedModality(modality, ae)  # previews show decoded images
    return _Setup(cfg, out, ds, conds, shape, modality, net, loss or make_loss(cfg))


def _check_image_frames(cfg: Config, shape: tuple[int, ...]) -> None:
    """train.image_frames trains single frames of video clips as one-frame clips: video data only, and
    no image condition (its masks and low-resolution inputs are made for the whole clip)."""
    k = cfg.train.image_frames
    if not k:
        return
    if len(shape) != 4:
        raise ConfigError(f"train.image_frames = {k} trains single frames of video clips, but the data has samples of "
                          f"shape {shape}; valid for (C, T, H, W) video data only (0 turns it off)")
    if cfg.cond.image:
        raise ConfigError(f"train.image_frames = {k} cannot be combined with cond.image = {cfg.cond.image!r}: the image "
                          "condition is built for whole clips; valid: train.image_frames = 0")


def latent_autoencoder(cfg: Config, run: Run | None) -> Autoencoder:
    """The frozen autoencoder of a latent run: the run's own copy when resuming, else latent.autoencoder."""
    if run is not None:
        ae = run.autoencoder
        assert ae is not None
        return ae
    return Autoencoder.open(cfg.latent.autoencoder)


def _new_state(s: _Setup, device: torch.device, init_state: dict | None = None) -> TrainState:
    cfg, net = s.cfg, s.net
    if init_state is not None:  # e.g. a distillation student starts as its teacher; a checkpoint overrides it
        # Parameters it lacks keep their seeded init (a student's new input, e.g. the zero-output guidance
        # embedding); names the net does not have are an error.
        unexpected = net.load_state_dict(init_state, strict=False).unexpected_keys
        if unexpected:
            raise RunError(f"init_state has {len(unexpected)} tensor(s) this network lacks (e.g. {unexpected[0]!r}); "
                           "valid: a state_dict of the same architecture")
    net.to(device)
    oc = cfg.optim
    groups = next((g for g in (c.param_groups(net) for c in s.conditioners) if g is not None), None)
    # the fused CUDA kernel: one launch per step instead of one per parameter tensor (same AdamW math)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(groups or net.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps,
                            weight_decay=oc.weight_decay, **fused)
    ema = EMA(net, cfg.ema.decay, cfg.ema.warmup)
    pema = PowerEMA(net, cfg.ema.phema_stds) if cfg.ema.phema_every > 0 else None
    gen = torch.Generator().manual_seed(mix_seed(cfg.train.seed, 0x7EA1))
    torch.manual_seed(mix_seed(cfg.train.seed, 0x610BA1))
    return TrainState(net, opt, ema, pema, gen, DataOrder(len(s.dataset), cfg.train.seed))


def _restore(state: TrainState, s: _Setup, world: World) -> Path | None:
    """Continue from the newest complete checkpoint (none: from the start) and drop what a crashed
    process wrote after it (rank 0, once every rank has read the checkpoint)."""
    ckpt = latest_checkpoint(s.out / "checkpoints")
    if world.size > 1:  # every rank must continue from the same checkpoint: rank 0's choice
        name = world.broadcast(ckpt.name if ckpt is not None else "", "choosing the checkpoint to resume")
        ckpt = s.out / "checkpoints" / name if name else None
    if ckpt is not None:
        step, saved = load_checkpoint(ckpt)
        state.load_state_dict(step, saved, s.cfg.train.seed, f"checkpoint {ckpt}")
    world.agree(True, "reading the checkpoint")
    if world.is_main:
        folder.clean_after_crash(s.out, state.samples_seen)
    return ckpt


def _nonfinite_message(cfg: Config, out: Path, step: int, what: str, streak: int, total: int,
                       ckpt: Path | None) -> str:
    tc = cfg.train
    why = ("train.nonfinite = 'stop'" if tc.nonfinite == "stop"
           else f"{streak} consecutive non-finite steps reached train.max_nonfinite = {tc.max_nonfinite}")
    kept = f"checkpoint {ckpt.name} (the newest) is intact" if ckpt is not None else "no checkpoint was written yet"
    return (f"training stopped at step {step}: non-finite {what}; {why} ({total} non-finite steps in this run). "
            f"Lower optim.lr, set optim.grad_clip (e.g. 1.0), check the data, or use train.nonfinite = 'skip' with a "
            f"larger train.max_nonfinite; {kept} in {str(out)!r}")


def _hooks(s: _Setup, state: TrainState, rows: list[dict], saved: Path | None, writer: Any, bar: Any,
           progress: bool, world: World) -> list[Hook]:
    if not world.is_main:  # only rank 0 writes; EMA and post-hoc EMA are updated by apply_update on every rank
        return []
    hooks: list[Hook] = [ProgressLog(s.out, s.cfg, rows, writer, bar, state.samples_seen), Snapshots(s.out, s.cfg),
                         Previews(s.out, s.cfg, s.dataset, s.shape, s.conditioners, s.modality, writer)]
    if s.cfg.eval.every > 0:
        hooks.append(Evaluation(s.cfg, s.out, s.dataset, s.shape, s.conditioners, state.eval_best, writer, bar, progress))
    hooks.append(Checkpoints(s.out, s.cfg, rows, saved))
    return hooks


def _loop(s: _Setup, state: TrainState, hooks: list[Hook], last: int, bar: Any, on_step, progress: bool,
          world: World) -> list[float]:
    """Steps until `last`; the non-finite policy (the same decision on every rank: the loss is
    all-reduced with a non-finite flag, the gradient norm is of the averaged gradient); the hooks
    after every applied update."""
    device = next(state.net.parameters()).device
    tc = s.cfg.train
    if tc.channels_last and len(s.shape) == 3:  # (C, H, W) samples: 4-D convolutions
        state.net.to(memory_format=torch.channels_last)
    ddp = None
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # buffers are equal on every rank (same seed, no batch statistics): not re-broadcast every forward
        import inspect

        no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})  # the older name (torch < 2.13)
        ddp = DistributedDataParallel(state.net, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)
    forward = ddp if ddp is not None else state.net
    if tc.compile:  # the weights stay in state.net (checkpoints keep their names); only the call is compiled
        forward = torch.compile(forward)
    denoiser = build_denoiser(forward, s.cfg).train()
    losses, bad_streak = [], 0
    checkpoints = hooks[-1] if hooks else None
    set_step = getattr(s.loss, "set_step", None)  # a loss with a schedule of its own (consistency training's curriculum)
    while state.step < last:
        if set_step is not None:
            set_step(state.step)
        try:
            loss, norm, lr = train_step(state, s.cfg, s.dataset, denoiser, s.loss, s.conditioners, device, world, ddp)
        except RuntimeError as e:  # DDP's gradient all-reduce raises the backend's own errors
            if world.size > 1 and _collective_failed(e):
                raise world.failure(f"step {state.step + 1}", e) from e
            raise
        if not (math.isfinite(loss) and math.isfinite(norm)):
            # Skip the update; the batch and its random draws are consumed, so the retry takes the next
            # batch deterministically, and a checkpoint (only ever after an applied update) resumes it exactly.
            state.nonfinite_steps += 1
            bad_streak += 1
            what = f"loss ({loss})" if not math.isfinite(loss) else f"gradient (norm {norm})"
            if tc.nonfinite == "stop" or bad_streak >= tc.max_nonfinite:
                saved = checkpoints.saved if checkpoints is not None else latest_checkpoint(s.out / "checkpoints")
                raise TrainingError(_nonfinite_message(s.cfg, s.out, state.step + 1, what, bad_streak,
                                                       state.nonfinite_steps, saved))
            if progress and world.is_main:
                bar.write(f"step {state.step + 1}: non-finite {what}; update skipped ({bad_streak} in a row, "
                          f"{state.nonfinite_steps} in this run)")
            continue
        bad_streak = 0
        apply_update(state, tc.batch_size)
        losses.append(loss)
        if on_step is not None:
            on_step(state.step, loss)
        bar.update(1)
        info = StepInfo(loss, lr, norm, last, tc.steps)
        for hook in hooks:
            hook.after_step(state, info)
    return losses


def _collective_failed(e: RuntimeError) -> bool:
    """Whether an error of a distributed step came from the process group (a peer died or timed out)."""
    text = str(e)
    return isinstance(e, (DistributedError, torch.distributed.DistError)) or any(
        w in text for w in ("gloo", "NCCL", "nccl", "Connection", "connection", "timed out", "Timed out", "Timeout"))


def _device(name: str, world: World) -> torch.device:
    dev = resolve_device(name)
    if world.size > 1 and dev.type == "cuda":
        dev = torch.device("cuda", world.local_rank)  # one GPU per process on each machine (cuda:N is not shared)
    return dev


def _run(s: _Setup, resume: bool, stop_at: int | None, progress: bool, on_step, world: World,
         init_state: dict | None = None) -> RunResult:
    from tqdm.auto import tqdm

    tc = s.cfg.train
    progress = progress and world.is_main
    # Every random draw comes from CPU generators and is moved to the device, so a seed gives the
    # same data order, σ and ε on every device (results still differ at float rounding on GPU).
    state = _new_state(s, _device(tc.device, world), init_state)
    saved = _restore(state, s, world) if resume else None
    start_step = state.step
    rows: list[dict] = []
    if world.is_main:
        rows = folder.truncate_metrics(s.out / "metrics.jsonl", state.step)  # lines of steps redone after a crash go
        folder.truncate_metrics(s.out / "eval.jsonl", state.step)
    writer = None
    if tc.tensorboard and world.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(s.out / "tb"), purge_step=state.step if state.step > 0 else None)
    last = tc.steps if stop_at is None else min(tc.steps, stop_at)
    bar = tqdm(total=tc.steps, initial=state.step, disable=not progress, unit="step", dynamic_ncols=True,
               desc=f"train {s.out.name}")
    t_start = time.perf_counter()
    hooks = _hooks(s, state, rows, saved, writer, bar, progress, world)
    try:
        losses = _loop(s, state, hooks, last, bar, on_step, progress, world)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    world.agree(True, "the last checkpoint")  # the other ranks return once rank 0 has written it
    if hooks:
        last_loss, ckpt = hooks[0].last_loss, hooks[-1].saved
    else:
        last_loss, ckpt = (losses[-1] if losses else math.nan), latest_checkpoint(s.out / "checkpoints")
    return RunResult(s.out, state.step, state.samples_seen, last_loss, ckpt,
                     time.perf_counter() - t_start, start_step, losses, state.nonfinite_steps)


def train(config: Config | None, out_dir: str | Path, *, resume: bool = False, stop_at: int | None = None,
          progress: bool = True, dataset: Any = None, on_step: Callable[[int, float], None] | None = None,
          loss: Callable[..., torch.Tensor] | None = None, init_state: dict[str, torch.Tensor] | None = None,
          run_meta: dict[str, Any] | None = None) -> RunResult:
    """Train a diffusion model into the run folder `out_dir` (any signal: x0 of shape (C, *spatial)).

    config: the resolved Config (None with resume=True: use the run's saved config; with resume,
        a given config must equal the saved one except for train.steps (a run may be extended),
        train.threads, train.device, the non-finite policy, [sample] and [eval]).
    resume: continue from the newest complete checkpoint of `out_dir` (or from the start if the
        run died before its first checkpoint).
    stop_at: stop after this step (with a checkpoint) - the way to train part of a run.
    dataset: a dataset to use instead of the one the config names (tests, notebooks); it must be
        the same data again on resume.
    on_step: called with (step, loss) after every optimizer step.
    loss: `(denoiser, x0, generator=, **cond) -> loss` instead of the config's [loss] (a
        distillation teacher, a latent encoder, ...); it must draw randomness from `generator`,
        which is a list of per-sample generators (draw with noisecraft.core.rng).
    init_state: the network's initial state_dict instead of the seeded initialisation (a distillation
        student starts as its teacher: noisecraft.distill); tensors it lacks keep the seeded init (a
        guidance-distilled student's new guidance embedding); a resumed run takes its checkpoint's.
    run_meta: extra keys for a new run's run.json (e.g. {"distill": {...}}: what a resume rebuilds the loss from).

    Under torchrun (torch.distributed initialised, e.g. by `noisecraft train`): every rank calls
    train() alike; train.batch_size is the global batch; rank 0 writes the run folder.
    """
    out = Path(out_dir)
    world = current_world()
    run = None
    if resume:
        cfg, run = _resume_config(config, out, loss is not None)
    elif config is None:
        raise ValueError("train() needs a config for a new run")
    else:
        cfg = config.validate()
    resolve_device(cfg.train.device)  # fail before reading data or creating the run folder
    rank_layout(cfg.train, world)  # a global batch that does not split over the ranks: fail now

    def first() -> _Setup:  # rank 0 (or the only process): checks, then creates or updates the folder
        if not resume:
            folder.check_fresh_out(out)  # a file, inside a file or unwritable: fail before reading data
        elif config is not None and cfg.to_dict() != json.loads((out / "config.json").read_text(encoding="utf-8")):
            atomic_write_text(out / "config.json", cfg.to_json() + "\n")
        return _setup(cfg, out, run, dataset, loss, progress, run_meta=run_meta)

    try:
        s = world.rank0_first(first, "creating the run folder") if world.size > 1 else first()
        if s is None:  # the other ranks build the same data and network, writing nothing
            s = _setup(cfg, out, Run.open(out) if not resume else run, dataset, loss, False, write=False)
        with num_threads(cfg.train.threads), torch.random.fork_rng(devices=[]):
            return _run(s, resume, stop_at, progress, on_step, world, init_state)
    except DistributedError as e:
        raise TrainingError(str(e)) from e
    except OSError as e:  # disk full / read-only while writing logs, snapshots, grids or a checkpoint
        if isinstance(e, CheckpointError) or e.errno not in _WRITE_ERRNOS:
            raise  # CheckpointWriteError already says what happened and what is intact
        ckpt = latest_checkpoint(out / "checkpoints")
        kept = f"the newest checkpoint {ckpt.name} is intact" if ckpt is not None else "no checkpoint was written yet"
        raise TrainingError(f"cannot write {str(e.filename or out)!r}: {e.strerror or e}; {kept} - free space and "
                            f"continue with `noisecraft train --resume {out}`") from e
