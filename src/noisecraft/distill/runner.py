"""`distill`: train a few-step student of a saved run into a new, ordinary run folder.

The student has the teacher's architecture and starts from its weights (`train(init_state=)`); the
loss is a distillation callable (distill.losses) handed to the one trainer, so checkpoints, EMA,
previews and bitwise resume are the trainer's own. What a resume needs to rebuild the loss (method,
teacher path, K, ...) is recorded in the run's run.json under "distill".

Guidance: a teacher sampled with classifier-free guidance is distilled at its own fixed weight and
interval (its [sample] guidance, or `guidance=`): the teacher in the loss is the CFG-wrapped
denoiser, so the student learns the guided ODE and is sampled with guidance 1. With
`guidance_range=(lo, hi)` the weight is an input of the student instead (Meng et al. 2023, "On
Distillation of Guided Diffusion Models", Sec. 4): every training sample draws w ~ U[lo, hi]
(conditioning.GuidanceWeight, the run's cond.guidance_range), the teacher target is CFG at that w
(and the teacher's interval), and the student - the teacher's weights plus a zero-output w
embedding, so it starts as the teacher - is sampled at any w in the range, one call per step.

Progressive distillation runs its stages in one run: `train_steps` split evenly over the stages
start_steps → start_steps/2 → ... → K. At each stage boundary the student's raw weights become the
next teacher; they are written to distill/stage-<j>.safetensors so a resume rebuilds that teacher
exactly (and each file is the student of its step count, for evaluation).
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..config import Config
from ..conditioning import check_guidance_range
from ..guidance.cfg import cfg as cfg_wrapper
from ..guidance.cfg import cfg_weight_input
from ..runs import Run, RunError, latest_checkpoint
from ..train import RunResult, train
from .losses import TEACHER_SOLVERS, ConsistencyDistillationLoss, ProgressiveDistillationLoss

__all__ = ["METHODS", "DistillError", "DistillSettings", "ProgressiveStages", "distill", "resume_distill", "stage_weights"]

METHODS = ("consistency", "progressive")
SAMPLERS = {"consistency": "consistency", "progressive": "euler_open"}


class DistillError(ValueError):
    """A distillation setting out of range; one line naming the value and what is valid."""


@dataclass
class DistillSettings:
    method: str
    steps: int  # K: the student's denoiser calls per sample
    teacher: str  # the teacher run folder (absolute)
    weights: str = "ema"  # the teacher's weights
    guidance: float = 1.0  # the teacher's CFG weight, distilled in (with guidance_range: the student's default weight)
    guidance_interval: list = field(default_factory=list)
    guidance_range: list = field(default_factory=list)  # [lo, hi]: w is a student input drawn from it; [] = fixed weight
    guidance_lr_scale: float = 10.0  # with guidance_range: the w embedding's lr / lr (it starts at zero); 10: digits tuning
    train_steps: int = 600
    batch_size: int = 32
    lr: float = 2e-4
    ema_decay: float = 0.99
    seed: int = 0
    solver: str = "heun"  # the teacher's ODE step (consistency: every step; progressive: the first stage)
    n_levels: int = 18  # consistency: N of the Karras discretization (Song et al. 2023 use 18 on CIFAR-10)
    start_steps: int = 32  # progressive: the first teacher's steps; start_steps / steps a power of two >= 2

    def validate(self) -> "DistillSettings":
        if self.method not in METHODS:
            raise DistillError(f"method {self.method!r} is not a distillation method; valid: {', '.join(METHODS)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= 1024:
            raise DistillError(f"steps {self.steps!r} is out of range; valid: an integer 1..1024")
        if self.solver not in TEACHER_SOLVERS:
            raise DistillError(f"solver {self.solver!r} is not a teacher solver; valid: {', '.join(TEACHER_SOLVERS)}")
        if self.method == "progressive":
            ratio = self.start_steps / self.steps
            if not (ratio >= 2 and ratio == int(ratio) and int(ratio) & (int(ratio) - 1) == 0):
                raise DistillError(f"steps {self.steps} is not reached by halving from {self.start_steps} teacher steps; "
                                   f"valid: start_steps / steps a power of two >= 2 (e.g. 32 -> 16 -> 8 -> 4 -> 2 -> 1)")
            if self.train_steps < self.stages:
                raise DistillError(f"train_steps {self.train_steps} is fewer than the {self.stages} stages; valid: >= {self.stages}")
        if self.method == "consistency" and not 2 <= self.n_levels <= 10_000:
            raise DistillError(f"n_levels {self.n_levels} is out of range; valid: 2..10000")
        for name, lo in (("train_steps", 1), ("batch_size", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise DistillError(f"{name} {v!r} is out of range; valid: an integer >= {lo}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise DistillError(f"lr {self.lr} is out of range; valid: > 0")
        if not 0 <= self.ema_decay < 1:
            raise DistillError(f"ema_decay {self.ema_decay} is out of range; valid: 0 <= decay < 1")
        if not (isinstance(self.guidance_lr_scale, (int, float)) and 0 < self.guidance_lr_scale <= 1000):
            raise DistillError(f"guidance_lr_scale {self.guidance_lr_scale!r} is out of range; valid: 0 < scale <= 1000")
        if self.guidance_range:
            try:
                self.guidance_range = list(check_guidance_range(self.guidance_range))
            except ValueError as e:
                raise DistillError(str(e)) from None
        return self

    @property
    def stages(self) -> int:
        return int(round(math.log2(self.start_steps / self.steps))) if self.method == "progressive" else 1

    @property
    def steps_per_stage(self) -> int:
        return self.train_steps // self.stages


def _teacher_denoiser(run: Run, s: DistillSettings) -> Callable[..., Tensor]:
    """The teacher's frozen denoiser, CFG-wrapped when it is guided: at the fixed weight, or (with a
    guidance range) at the per-sample weight of the `guidance` keyword, which the teacher net never sees."""
    den = run.denoiser(s.weights)
    guided = [c for c in run.conditioners if c.guided]
    if s.guidance_range and not guided:
        raise DistillError(f"guidance_range {s.guidance_range} needs a teacher with classifier-free guidance (class labels "
                           f"or prompts); {run.path} is unconditional: valid: no guidance range")
    if not guided or (s.guidance == 1.0 and not s.guidance_range):
        return den

    def uncond(cond: dict[str, Any]) -> dict[str, Any]:
        for c in guided:
            cond = c.null_inputs(den.net, cond)
        return cond

    if s.guidance_range:
        return cfg_weight_input(den, interval=s.guidance_interval or None, uncond=uncond)
    return cfg_wrapper(den, s.guidance, interval=s.guidance_interval or None, uncond=uncond)


def _student_config(teacher: Config, s: DistillSettings) -> Config:
    cfg = copy.deepcopy(teacher)
    tc = cfg.train
    tc.steps, tc.batch_size, tc.accum_steps, tc.seed = s.train_steps, s.batch_size, 1, s.seed
    tc.checkpoint_every = max(1, s.train_steps // 4)
    tc.sample_every, tc.tensorboard = s.train_steps, False
    oc = cfg.optim
    oc.lr, oc.warmup_steps, oc.decay, oc.decay_start = s.lr, min(20, s.train_steps // 10), "cosine", 0
    oc.min_lr = min(oc.min_lr, s.lr / 10)
    cfg.ema.decay, cfg.ema.phema_every = s.ema_decay, 0
    cfg.sample.solver, cfg.sample.nfe = SAMPLERS[s.method], s.steps
    cfg.sample.guidance, cfg.sample.guidance_interval = 1.0, []
    if s.guidance_range:  # w is an input; sampled by default at the teacher's weight (clamped into the range)
        lo, hi = s.guidance_range
        cfg.cond.guidance_range = [lo, hi]
        cfg.cond.guidance_lr_scale = float(s.guidance_lr_scale)
        cfg.sample.guidance = min(max(s.guidance, lo), hi)
    cfg.eval.every = 0
    return cfg.validate()


def stage_weights(run_dir: str | Path, stage: int) -> Path:
    """Progressive distillation: the student's raw weights at the end of `stage` (0-based)."""
    return Path(run_dir) / "distill" / f"stage-{stage}.safetensors"


class ProgressiveStages:
    """The staged progressive-distillation loss; `after_step` (the trainer's on_step) moves the stages."""

    def __init__(self, teacher: Callable[..., Tensor], s: DistillSettings, out: Path, step: int, sigma_min: float,
                 sigma_max: float):
        self.first_teacher, self.s, self.out, self.step = teacher, s, out, step
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self._loss: ProgressiveDistillationLoss | None = None
        self._stage = -1
        self._student: torch.nn.Module | None = None

    def stage_of(self, step: int) -> int:
        return min(step // self.s.steps_per_stage, self.s.stages - 1)

    def student_steps(self, stage: int) -> int:
        return self.s.start_steps // 2 ** (stage + 1)

    def _build(self, stage: int, denoiser: torch.nn.Module) -> None:
        if stage == 0:
            teacher, solver = self.first_teacher, self.s.solver
        else:  # the previous stage's student, frozen (from its file, so a resume gets the same teacher)
            from ..io_safety import read_safetensors

            teacher = copy.deepcopy(denoiser).eval().requires_grad_(False)
            tensors, _ = read_safetensors(stage_weights(self.out, stage - 1))  # header checked, NaN/Inf refused
            teacher.net.load_state_dict(tensors)
            solver = "euler"  # the student is an Euler sampler: two of its steps are the target
        self._loss = ProgressiveDistillationLoss(teacher, self.student_steps(stage), solver=solver,
                                                 sigma_min=self.sigma_min, sigma_max=self.sigma_max)
        self._stage = stage

    def __call__(self, denoiser: torch.nn.Module, x0: Tensor, *, generator=None, **cond: Any) -> Tensor:
        self._student = denoiser
        stage = self.stage_of(self.step)
        if stage != self._stage:
            self._build(stage, denoiser)
        return self._loss(denoiser, x0, generator=generator, **cond)

    def after_step(self, step: int, loss: float | None = None) -> None:
        self.step = step
        done = step // self.s.steps_per_stage  # stages finished; the last stage's student is the run itself
        if step % self.s.steps_per_stage == 0 and 1 <= done < self.s.stages and self._student is not None:
            from safetensors.torch import save_file

            path = stage_weights(self.out, done - 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            state = {k: v.detach().cpu().contiguous() for k, v in self._student.net.state_dict().items()}
            save_file(state, str(tmp))
            os.replace(tmp, path)


def _loss_for(run: Run, s: DistillSettings, out: Path, step: int, cfg: Config):
    teacher = _teacher_denoiser(run, s)
    sc = cfg.sample
    if s.method == "consistency":
        return ConsistencyDistillationLoss(teacher, s.n_levels, solver=s.solver, sigma_min=sc.sigma_min,
                                           sigma_max=sc.sigma_max, sigma_data=cfg.process.sigma_data)
    return ProgressiveStages(teacher, s, out, step, sc.sigma_min, sc.sigma_max)


def distill(teacher_dir: str | Path, out_dir: str | Path, *, method: str, steps: int, progress: bool = True,
            stop_at: int | None = None, **settings: Any) -> RunResult:
    """Distill the run `teacher_dir` into a `steps`-call student in the new run `out_dir`; settings
    are the fields of DistillSettings (train_steps, lr, guidance, guidance_range, n_levels, start_steps, ...).
    guidance_range=(lo, hi): the CFG weight becomes a student input (one run serves every w in the
    range); `guidance` is then the student's default sampling weight."""
    teacher = Run.open(teacher_dir)
    if any(c.spec_guidance for c in teacher.conditioners):
        raise DistillError(f"teacher {str(teacher_dir)!r} is a guidance-distilled student (it takes w as an input); "
                           "valid: a run trained with `noisecraft train` (or a fixed-weight student)")
    sample = teacher.config.sample
    base = dict(guidance=sample.guidance, guidance_interval=list(sample.guidance_interval))
    s = DistillSettings(method=method, steps=steps, teacher=str(Path(teacher_dir).resolve()), **{**base, **settings}).validate()
    cfg = _student_config(teacher.config, s)
    out = Path(out_dir)
    init = teacher.denoiser(s.weights).net.state_dict()
    loss = _loss_for(teacher, s, out, 0, cfg)
    on_step = getattr(loss, "after_step", None)
    return train(cfg, out, loss=loss, init_state={k: v.clone() for k, v in init.items()}, stop_at=stop_at,
                 progress=progress, on_step=on_step, run_meta={"distill": asdict(s)})


def resume_distill(out_dir: str | Path, *, progress: bool = True, stop_at: int | None = None) -> RunResult:
    """Continue an interrupted `distill` run from its newest checkpoint (bitwise, like train --resume)."""
    out = Path(out_dir)
    run = Run.open(out)
    meta = run.meta.get("distill")
    if not isinstance(meta, dict):
        raise RunError(f"{str(out)!r} is not a distilled run (no 'distill' entry in run.json); resume it with "
                       f"`noisecraft train --resume {out}`")
    s = DistillSettings(**meta).validate()
    teacher = Run.open(s.teacher)
    ckpt = latest_checkpoint(out / "checkpoints")
    step = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))["step"] if ckpt is not None else 0
    loss = _loss_for(teacher, s, out, int(step), run.config)
    return train(None, out, resume=True, loss=loss, stop_at=stop_at, progress=progress,
                 on_step=getattr(loss, "after_step", None))
