"""The digits demo: train a class-conditional model on the built-in handwritten digits, then draw it.

`run_demo("runs/demo")` trains the `digits` preset (16x16, unet-small, EDM preconditioning and
loss) and writes, next to the run itself:

    grid.png      one row per digit class 0-9 (classifier-free guidance, EMA weights)
    process.png   a real digit dissolving into noise as σ grows (forward process), and a sample
                  coming out of noise as the solver lowers σ (reverse process), with D(x; σ)
    process.gif   the same for one digit of each class: forward, then reverse

Images are stored upscaled by `sample.scale` (4: 16x16 -> 64x64 pixels per digit) with nearest
neighbour, bright strokes on a dark background like the data. Noisy frames x = x0 + σ·ε are shown
as x / sqrt(1 + σ²) so they keep a visible range at every noise level.
Running the demo again on a finished run only redraws the pictures; on an interrupted run it
resumes training first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..config import load_config
from ..runs import Run, is_run
from ..runtime import num_threads
from .build import build_dataset
from .loop import train

__all__ = ["run_demo", "DEMO_PRESET", "process_frames"]

DEMO_PRESET = "digits"


def _display(x: Tensor, sigma: float) -> Tensor:
    return (x / (1.0 + sigma**2) ** 0.5).clamp(-1, 1)


def process_frames(run: Run, x0: Tensor, labels: Tensor, *, seed: int = 0) -> dict:
    """Forward and reverse frames for images x0 (B, C, H, W) and their labels, sampled with the
    run's [sample] settings.

    Returns {"sigmas": [σ_0 > ... > σ_last] of the sampler steps, "forward": [(σ, frame)] with σ
    increasing from 0, "reverse": [(σ, x)] from σ_max down to 0 and "denoised": [(σ, D(x; σ))]}.
    """
    steps: list[dict] = []

    def grab(info: dict) -> None:
        steps.append({k: (v.detach().clone() if isinstance(v, Tensor) else v) for k, v in info.items()})

    run.generate(run.spec(seed=seed), x0.shape[0], class_labels=labels, callback=grab)
    # The callback reports x after each step (at σ_next) and D at σ; the start is σ_max·noise,
    # with the noise generate() drew for sample i from seed + i.
    start = torch.stack([torch.randn(tuple(x0.shape[1:]), generator=torch.Generator().manual_seed(seed + i))
                         for i in range(x0.shape[0])])
    sig_max = float(steps[0]["sigma"])
    reverse = [(sig_max, _display(start * sig_max, sig_max))]
    reverse += [(float(s["sigma_next"]), _display(s["x"], float(s["sigma_next"]))) for s in steps]
    denoised = [(float(s["sigma"]), s["denoised"].clamp(-1, 1)) for s in steps]
    g = torch.Generator().manual_seed(seed + 12345)
    eps = torch.randn(x0.shape, generator=g)
    levels = [sig for sig, _ in reversed(reverse)]  # 0 = σ_last < ... < σ_max
    forward = [(sig, _display(x0 + sig * eps, sig)) for sig in levels]
    return {"sigmas": [float(s["sigma"]) for s in steps], "forward": forward, "reverse": reverse, "denoised": denoised}


def _pick(seq: list, k: int) -> list:
    if len(seq) <= k:
        return list(seq)
    idx = [round(i * (len(seq) - 1) / (k - 1)) for i in range(k)]
    return [seq[i] for i in idx]


def _process_png(frames: dict, row: int, path: Path, cols: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [("forward: data → noise", _pick(frames["forward"], cols)),
            ("reverse: noise → data", _pick(frames["reverse"], cols))]
    if frames["denoised"]:
        rows.append(("denoiser output D(x; σ)", _pick(frames["denoised"], cols)))
    n = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.55 * len(rows)), dpi=100, squeeze=False)
    fig.patch.set_facecolor("black")
    for r, (title, seq) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_facecolor("black")
            if c >= len(seq):
                ax.axis("off")
                continue
            sigma, img = seq[c]
            im = ((img[row].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
            ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"σ={sigma:.3g}", color="white", fontsize=8)
            if c == 0:
                ax.set_ylabel(title, color="white", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, facecolor="black")
    plt.close(fig)
    tmp.replace(path)
    return path


def _process_gif(frames: dict, path: Path, scale: int) -> Path:
    from ..io import make_grid, save_gif

    seq = [f for _, f in frames["forward"]] + [f for _, f in frames["reverse"]]
    imgs = [make_grid(f, nrow=f.shape[0]) for f in seq]
    nf = len(frames["forward"])
    durations = [80] * len(imgs)
    durations[0] = durations[nf - 1] = 900  # hold the clean data and the pure noise
    durations[-1] = 2000  # hold the samples
    return save_gif(imgs, path, duration_ms=durations, scale=scale)


def run_demo(
    out: str | Path = "runs/demo",
    *,
    steps: int | None = None,
    per_class: int | None = None,
    nfe: int | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train (or resume, or reuse) the digits demo run in `out` and write its pictures."""
    out = Path(out)
    overrides = list(overrides)
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    if per_class is not None:
        overrides.append(f"sample.per_class={per_class}")
    if nfe is not None:
        overrides.append(f"sample.nfe={nfe}")
    cfg = load_config(DEMO_PRESET, overrides)
    t0 = time.perf_counter()
    if is_run(out):
        echo(f"{out} already holds a run: resuming it if unfinished, then redrawing the pictures")
        saved = Run.open(out).config
        if steps is None:
            cfg.train.steps = max(cfg.train.steps, saved.train.steps)
        result = train(cfg, out, resume=True, progress=progress)
    else:
        result = train(cfg, out, progress=progress)
    train_seconds = result.seconds
    with num_threads(cfg.train.threads):
        pictures = _draw(out, cfg)
    return {"run": out, **pictures, "train_seconds": train_seconds, "seconds": time.perf_counter() - t0, "step": result.step}


def _draw(out: Path, cfg) -> dict:
    from ..io import save_grid

    sc = cfg.sample
    run = Run.open(out)
    run.config.sample = sc  # this call's [sample] settings (the demo may override per_class / nfe)
    k = run.num_classes
    labels = torch.arange(k).repeat_interleave(sc.per_class)
    x = run.generate(run.spec(seed=cfg.train.seed), len(labels), class_labels=labels)
    grid = save_grid(x.clamp(-1, 1), out / "grid.png", sc.per_class, scale=sc.scale)

    ds = build_dataset(cfg)
    first = torch.stack([torch.nonzero(ds.labels == c)[0, 0] for c in range(k)])
    frames = process_frames(run, ds.images[first], torch.arange(k), seed=cfg.train.seed)
    png = _process_png(frames, row=min(3, k - 1), path=out / "process.png")
    gif = _process_gif(frames, out / "process.gif", sc.scale)
    return {"grid": grid, "process_png": png, "process_gif": gif}
