"""Evaluation during training (`[eval] every = N`): score the EMA weights, log them, keep the best.

The reference (the training examples' features, cached on disk) is built once at the start.
Nothing here touches the trainer's generator, and the global torch RNG is forked around every
call, so a run with evaluation on trains (and resumes) exactly like one without.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config import METRIC_DIRECTIONS, METRIC_KEYS, Config, ConfigError
from ..runs import build_denoiser
from ..runs.checkpoint import atomic_write_bytes, atomic_write_text
from .hooks import Hook, StepInfo, due
from .state import TrainState

__all__ = ["Evaluation"]


def _previous_best(metric: str, best: Any) -> dict | None:
    """The best value so far (from the checkpoint's training state), only if it is for the same metric."""
    if metric and isinstance(best, dict) and best.get("metric") == metric:
        value = best.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return {"metric": metric, "value": float(value), "step": int(best.get("step", 0))}
    return None


def _extractor(cfg: Config, modality: str, progress: bool):
    from ..data import BUILTIN_DATASETS
    from ..eval.evaluate import default_extractor
    from ..eval.features import load_extractor
    from ..modalities import get_modality

    ec = cfg.eval
    echo = (lambda m: print(m, flush=True)) if progress else None
    if ec.features:
        return load_extractor(ec.features)
    kind = get_modality(modality).eval_features
    if kind != "classifier":  # the hook scores with image-classifier features (build_reference/evaluate_samples)
        what = "has no default evaluation features yet" if kind is None else (
            f"is evaluated after training (`noisecraft eval RUN`, {kind} features), not by this hook yet")
        raise ConfigError(f"eval.every > 0 needs image evaluation features, and the {modality} modality {what}; "
                          "set eval.every = 0 (or eval.features to a feature-extractor folder)")
    if cfg.data.source in BUILTIN_DATASETS:
        return default_extractor(cfg.data.source, resolution=cfg.data.resolution or None,
                                 channels=cfg.data.channels or None, echo=echo)
    raise ConfigError(f"eval.every > 0 needs a feature extractor for {cfg.data.source!r}: fit one with "
                      f"`noisecraft eval fit-features {cfg.data.source} --out F` and set eval.features=F")


class Evaluation(Hook):
    def __init__(self, cfg: Config, out: Path, dataset: Any, shape: Sequence[int], conditioners: Sequence[Any],
                 best: Any, writer: Any, bar: Any, progress: bool) -> None:
        from ..eval.evaluate import build_reference
        from ..eval.metrics import min_samples_for_stats

        ec, sc = cfg.eval, cfg.sample
        self.cfg, self.out, self.shape, self.conditioners = cfg, out, tuple(shape), list(conditioners)
        self.writer, self.bar, self.progress = writer, bar, progress
        self.spec = sc.spec(solver=ec.solver or None, nfe=ec.nfe or None,
                            guidance=None if ec.guidance < 0 else ec.guidance, seed=ec.seed)
        self.metric = ec.keep_best
        self.direction = METRIC_DIRECTIONS.get(self.metric, "min")
        self.best = _previous_best(self.metric, best)
        with torch.random.fork_rng(devices=[]):
            extractor = _extractor(cfg, dataset.modality, progress)
            if "fd" in ec.metrics and ec.n < min_samples_for_stats(extractor.feature_dim):
                raise ConfigError(f"eval.n = {ec.n} is too small for FD with {extractor.feature_dim}-d features; valid: "
                                  f">= {min_samples_for_stats(extractor.feature_dim)} (or drop 'fd' from eval.metrics)")
            self.reference = build_reference(dataset.images, extractor, name=f"{cfg.data.source}-train",
                                             metrics=ec.metrics)

    def after_step(self, state: TrainState, info: StepInfo) -> None:
        if due(state.step, self.cfg.eval.every, info):
            row = self.evaluate(state.ema.module, state.step, state.samples_seen)
            if self.progress:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "samples", "n", "seconds"))
                self.bar.write(f"eval step {state.step}: {shown}")
        state.eval_best = dict(self.best) if self.best is not None else None  # saved with the next checkpoint

    def evaluate(self, ema_module: nn.Module, step: int, samples_seen: int) -> dict:
        from ..eval.evaluate import evaluate_during_training

        denoiser = build_denoiser(ema_module, self.cfg).eval()  # the EMA copy stays in eval mode
        with torch.random.fork_rng(devices=[]):
            scores = evaluate_during_training(denoiser, self.reference, shape=self.shape, spec=self.spec,
                                              conditioners=self.conditioners, n=self.cfg.eval.n,
                                              metrics=self.cfg.eval.metrics)
        values = {k: float(scores[k]) for k in METRIC_KEYS if k in scores}
        row = {"step": step, "samples": samples_seen, **values, "n": self.cfg.eval.n,
               "seconds": scores.get("seconds", 0.0) + scores.get("sampling_seconds", 0.0)}
        with open(self.out / "eval.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"eval/{k}", v, step)
        v = values.get(self.metric, math.nan) if self.metric else math.nan
        if math.isfinite(v) and (self.best is None or (v < self.best["value"] if self.direction == "min"
                                                       else v > self.best["value"])):
            self.best = {"metric": self.metric, "value": v, "step": step}
            self._write_best(ema_module, step, samples_seen, v)
        return row

    def _write_best(self, ema_module: nn.Module, step: int, samples_seen: int, value: float) -> None:
        from safetensors.torch import save as st_save

        best = self.out / "best"
        best.mkdir(exist_ok=True)
        tensors = {k: v.detach().clone().contiguous() for k, v in ema_module.state_dict().items()}
        meta = {"step": f"{step}", "samples_seen": f"{samples_seen}", "metric": self.metric, "value": f"{value!r}"}
        atomic_write_bytes(best / "ema.safetensors", st_save(tensors, metadata=meta))  # weights first, then the JSON
        doc = {"step": step, "samples_seen": samples_seen, "metric": self.metric, "value": value,
               "direction": self.direction, "weights": "ema.safetensors"}
        atomic_write_text(best / "best.json", json.dumps(doc, indent=1) + "\n")
