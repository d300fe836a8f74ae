"""Training the KL autoencoder of latent diffusion (Rombach et al. 2022, Sec. 3.1).

    cfg = AutoencoderTrainConfig(downsample=4, latent_channels=4, steps=2000)
    ae = train_autoencoder("shapes", "runs/shapes-ae", cfg)      # -> latent.Autoencoder, saved
    ae = train_autoencoder(None, "runs/shapes-ae", resume=True)   # continue an interrupted run

Loss per batch (per pixel, so the weight means the same at every resolution):

    L = mean |x - D(z)|  +  kl_weight · Σ KL(q(z|x) || N(0, I)) / #pixels,    z = μ + σ·ε

with KL = ½ Σ (μ² + σ² - 1 - log σ²) over the latent elements (LDM's KL-reg autoencoders use
L1 + LPIPS + a patch GAN with KL weight 1e-6 on per-image sums; here the perceptual and adversarial
terms are left out, so reconstructions are blurrier on detailed images). AdamW with linear warm-up
and cosine decay, gradient clipping.

Held-out images: `holdout` images (at most a tenth) of the training split, drawn with the seed, are
never trained on; the reconstruction PSNR reported is on them (mean over images of
10·log10(2² / MSE), data in [-1, 1], decoded from the posterior mean and clamped). The latent scale
is 1 / std of the posterior means over the training images (all elements pooled).

Reproducibility: batch indices and ε of step k come from a generator seeded by (seed, k), so a
resumed run (checkpoint: weights, AdamW moments, step, CPU seconds) continues bitwise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..config import ConfigError, _parse_value
from ..io.files import atomic_write_text
from ..io_safety import check_tensors_match
from ..latent.autoencoder import AE_JSON, Autoencoder, AutoencoderError
from ..nets.autoencoder import DOWNSAMPLE_FACTORS, AutoencoderConfig, KLAutoencoder
from ..runs.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from ..runtime import num_threads
from .build import mix_seed

__all__ = ["AutoencoderTrainConfig", "train_autoencoder", "reconstruction_psnr", "latent_scale", "ae_config_with"]

TRAIN_JSON = "train_config.json"


@dataclass
class AutoencoderTrainConfig:
    source: str = ""  # dataset: a built-in name or a folder of images
    resolution: int = 0  # 0 = the dataset's native size
    data_channels: int = 0  # 1 or 3 to convert; 0 = as stored
    hflip: bool = False  # random horizontal flips (folders of photos; not shapes, whose captions name sides)
    downsample: int = 4  # f: latents are (latent_channels, H/f, W/f)
    latent_channels: int = 4
    channels: int = 32  # width at full resolution
    num_blocks: int = 1
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr: float = 1e-5
    grad_clip: float = 1.0
    kl_weight: float = 1e-6
    holdout: int = 256  # held-out images for the PSNR (at most a tenth of the data)
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 500

    def validate(self) -> "AutoencoderTrainConfig":
        def bad(key: str, valid: str) -> ConfigError:
            return ConfigError(f"{key} = {getattr(self, key)!r} is out of range; valid: {valid}")

        if self.downsample not in (4, 8) and self.downsample not in DOWNSAMPLE_FACTORS:
            raise bad("downsample", "4 or 8 (2 for tests)")
        for key, lo, hi in (("latent_channels", 1, 64), ("channels", 4, 512), ("num_blocks", 1, 8),
                            ("steps", 1, 10_000_000), ("batch_size", 1, 65536), ("warmup_steps", 0, 10_000_000),
                            ("holdout", 1, 100_000), ("threads", 0, 1024), ("checkpoint_every", 1, 10_000_000),
                            ("resolution", 0, 4096)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise bad(key, f"an integer {lo}..{hi}")
        if self.data_channels not in (0, 1, 3):
            raise bad("data_channels", "0 (as stored), 1 or 3")
        if not (0 < self.lr <= 1):
            raise bad("lr", "0 < lr <= 1")
        if not (0 <= self.min_lr <= self.lr):
            raise bad("min_lr", f"0..lr ({self.lr})")
        if not (0 <= self.grad_clip < 1e6):
            raise bad("grad_clip", "0 (off) or a positive number")
        if not (0 <= self.kl_weight <= 1):
            raise bad("kl_weight", "0..1 (LDM: 1e-6)")
        return self

    def with_overrides(self, sets: Sequence[str]) -> "AutoencoderTrainConfig":
        """This config with `key=value` overrides (values parsed as TOML); ConfigError for an unknown key."""
        valid = [f.name for f in dataclasses.fields(self)]
        changes: dict[str, Any] = {}
        for item in sets:
            key, eq, text = item.partition("=")
            key = key.strip()
            if not eq or key not in valid:
                raise ConfigError(f"--set {item!r}: unknown autoencoder key {key!r}; valid keys: {', '.join(valid)}")
            value = _parse_value(text.strip())
            want = type(getattr(self, key))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not want:
                raise ConfigError(f"--set {item!r}: {key} must be a {want.__name__}, got {value!r}")
            changes[key] = value
        return dataclasses.replace(self, **changes)


def ae_config_with(cfg: AutoencoderTrainConfig, in_channels: int) -> AutoencoderConfig:
    return AutoencoderConfig(in_channels=in_channels, latent_channels=cfg.latent_channels, downsample=cfg.downsample,
                             channels=cfg.channels, num_blocks=cfg.num_blocks)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _lr(cfg: AutoencoderTrainConfig, step: int) -> float:
    """Linear warm-up to lr, then cosine decay to min_lr at the last step (step counts from 0)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def ae_loss(net: KLAutoencoder, x: Tensor, kl_weight: float, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(total, L1, KL per pixel) of a batch x (B, C, H, W)."""
    rec, mean, logvar = net(x, generator=generator)
    l1 = (rec - x).abs().mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum() / x.numel()
    return l1 + kl_weight * kl, l1, kl


@torch.no_grad()
def reconstruction_psnr(ae: Autoencoder, images: Tensor, *, batch_size: int = 256) -> dict[str, float]:
    """Mean PSNR (dB, peak-to-peak 2 for [-1, 1]) and MSE of decode(encode(x)) over `images` (N, C, H, W)."""
    rec = ae.decode(ae.encode(images, batch_size=batch_size), batch_size=batch_size).clamp(-1, 1)
    mse = (rec - images).pow(2).flatten(1).mean(1).double()  # (N,)
    psnr = 10 * torch.log10(4.0 / mse.clamp_min(1e-12))
    return {"psnr": float(psnr.mean()), "psnr_min": float(psnr.min()), "mse": float(mse.mean()), "n": int(images.shape[0])}


@torch.no_grad()
def latent_scale(net: KLAutoencoder, images: Tensor, *, batch_size: int = 256) -> float:
    """1 / std of the posterior means of `images` (all elements pooled; LDM's scale factor)."""
    means = torch.cat([net.encode(images[i:i + batch_size])[0] for i in range(0, images.shape[0], batch_size)])
    return float(1.0 / means.double().std())


def _split(n: int, holdout: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train indices, held-out indices): a seeded permutation, holdout = min(holdout, n // 10)."""
    k = min(holdout, n // 10)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, 0xAE5)))
    return perm[k:], perm[:k]


def _load_images(cfg: AutoencoderTrainConfig, dataset: Any) -> tuple[Tensor, str, dict]:
    from ..data import load_dataset

    ds = dataset if dataset is not None else load_dataset(
        cfg.source, resolution=cfg.resolution or None, split="train", channels=cfg.data_channels or None, labels=False)
    x = ds.data
    if x.ndim != 4:
        raise AutoencoderError(f"the autoencoder takes images (N, C, H, W); dataset {cfg.source!r} has samples of "
                               f"shape {list(x.shape[1:])}")
    if x.shape[-1] % cfg.downsample or x.shape[-2] % cfg.downsample:
        raise AutoencoderError(f"image size {x.shape[-2]}x{x.shape[-1]} is not a multiple of downsample "
                               f"{cfg.downsample}; set resolution to a multiple of it")
    if x.shape[0] < 2:
        raise AutoencoderError(f"dataset {cfg.source!r} has {x.shape[0]} image(s); the autoencoder needs at least 2")
    return x, getattr(ds, "modality", "image"), dict(getattr(ds, "modality_options", {}) or {})


def _resolve(source: str | None, out: Path, cfg: AutoencoderTrainConfig | None, resume: bool) -> AutoencoderTrainConfig:
    """The config of a new run (checked against `out`), or the saved one of a resumed run (steps may grow)."""
    if resume:
        if not (out / TRAIN_JSON).is_file():
            raise AutoencoderError(f"{str(out)!r} cannot be resumed: it holds no autoencoder training ({TRAIN_JSON})")
        saved = AutoencoderTrainConfig(**json.loads((out / TRAIN_JSON).read_text(encoding="utf-8")))
        if cfg is not None and cfg.steps != saved.steps:
            if cfg.steps < saved.steps:
                raise AutoencoderError(f"--steps {cfg.steps} is less than the autoencoder's steps ({saved.steps}); "
                                       f"give a value >= {saved.steps}")
            saved.steps = cfg.steps  # extended: the cosine schedule stretches from here on
            saved.validate()
            atomic_write_text(out / TRAIN_JSON, json.dumps(dataclasses.asdict(saved), indent=2) + "\n")
        return saved.validate()
    cfg = cfg or AutoencoderTrainConfig()
    if source is not None:
        cfg = dataclasses.replace(cfg, source=source)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AutoencoderError(f"--out {str(out)!r} exists and is not an empty folder; choose a new folder (or --resume it)")
    return cfg.validate()


def _steps(cfg: AutoencoderTrainConfig, net: KLAutoencoder, opt: torch.optim.Optimizer, images: Tensor,
           train_idx: Tensor, step: int, last: int, out: Path, cpu_at: Callable[[], float], bar: Any,
           on_step: Callable[[int, float], None] | None) -> float:
    """Optimizer steps from `step` to `last`, checkpoints on the way; returns the smoothed loss."""
    n_train, loss_avg = train_idx.numel(), math.nan
    net.train()
    while step < last:
        g = torch.Generator().manual_seed(mix_seed(cfg.seed, 0xAE2, step))  # batch, flips and ε of this step
        x = images[train_idx[torch.randint(n_train, (cfg.batch_size,), generator=g)]]
        if cfg.hflip:
            flip = torch.rand(cfg.batch_size, generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step)
        loss, l1, kl = ae_loss(net, x, cfg.kl_weight, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        value = float(loss.detach())
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        if on_step is not None:
            on_step(step, value)
        bar.update(1)
        bar.set_postfix(l1=f"{float(l1.detach()):.4f}", kl=f"{float(kl.detach()):.3g}")
        if step % cfg.checkpoint_every == 0 or step == last:
            save_checkpoint(out / "checkpoints", step, {"model": net.state_dict(), "optim": opt.state_dict(),
                                                        "progress": {"step": step, "cpu_seconds": cpu_at()}}, keep=1)
    net.eval()
    return loss_avg


def train_autoencoder(source: str | None, out_dir: str | Path, cfg: AutoencoderTrainConfig | None = None, *,
                      resume: bool = False, dataset: Any = None, stop_at: int | None = None,
                      progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> Autoencoder:
    """Train (or, resume=True, continue) an autoencoder into `out_dir`; returns it, saved there.

    source: a built-in dataset name or an image folder (overrides cfg.source); `dataset`: an
    in-memory dataset instead (tests; the same again on resume). stop_at: stop after that step
    with a checkpoint and no final files (a partial run, for resume; 0 = the untrained net)."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    cfg = _resolve(source, out, cfg, resume)
    cpu0 = _cpu_seconds()
    with num_threads(cfg.threads):
        images, modality, options = _load_images(cfg, dataset)
        train_idx, hold_idx = _split(images.shape[0], cfg.holdout, cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(cfg.seed, 0xAE1))
            net = KLAutoencoder(ae_config_with(cfg, int(images.shape[1])))
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.5, 0.9), weight_decay=0.0)
        step, cpu_before = 0, 0.0
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / TRAIN_JSON, json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
        elif (ckpt := latest_checkpoint(out / "checkpoints")) is not None:
            step, state = load_checkpoint(ckpt)
            check_tensors_match(net.state_dict(), state["model"], source=f"checkpoint {ckpt}")
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optim"])
            cpu_before = float(state["progress"]["cpu_seconds"])
        last = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
        bar = tqdm(total=cfg.steps, initial=step, disable=not progress, unit="step", desc=f"autoencoder {out.name}")
        loss_avg = _steps(cfg, net, opt, images, train_idx, step, last, out,
                          lambda: cpu_before + _cpu_seconds() - cpu0, bar, on_step)
        bar.close()
        ae = Autoencoder(net, tuple(images.shape[1:]), latent_scale(net, images[train_idx]), modality=modality,
                         modality_options=options)
        if last < cfg.steps:  # a partial run (stop_at): no final files yet
            return ae
        held = reconstruction_psnr(ae, images[hold_idx]) if hold_idx.numel() else {}
        ae.info = {"source": cfg.source, "train_images": int(train_idx.numel()), "holdout": held, "steps": cfg.steps,
                   "batch_size": cfg.batch_size, "kl_weight": cfg.kl_weight,
                   "cpu_seconds": round(cpu_before + _cpu_seconds() - cpu0, 1), "final_loss": loss_avg}
        ae.save(out)
    return ae


def describe(ae: Autoencoder) -> str:
    """One line for the CLI: shapes, scale, held-out PSNR, CPU time."""
    h = ae.info.get("holdout") or {}
    psnr = f", held-out PSNR {h['psnr']:.2f} dB on {h['n']} images" if h else ""
    return (f"autoencoder {ae.path}: {list(ae.data_shape)} -> {list(ae.latent_shape)}, latent scale {ae.scale:.4g}"
            f"{psnr}, {ae.info.get('cpu_seconds', 0):.0f} CPU-s")


__all__ += ["describe", "AE_JSON"]
