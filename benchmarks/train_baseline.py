"""An honest training baseline: noisecraft's `digits` recipe vs a tuned diffusers recipe, guided vs guided.

    # 1. tune the peer's learning rate on a tuning training seed (100)
    python benchmarks/train_baseline.py train --recipe diffusers --lr 1e-3 --seed 100 --out B/d-1e-3-s100
    python benchmarks/train_baseline.py train --recipe diffusers --lr 2e-3 --seed 100 --out B/d-2e-3-s100
    python benchmarks/train_baseline.py train --recipe diffusers --lr 4e-3 --seed 100 --out B/d-4e-3-s100
    python benchmarks/train_baseline.py train --recipe noisecraft --seed 100 --out B/nc-s100
    python benchmarks/train_baseline.py tune B/*-s100 --json B/tune.json     # sample seeds 5000+
    (or one `tune` per folder in parallel, then `combine B/tune-*.json --out B/tune.json`; likewise `report`)
    # 2. report seeds 0, 1, 2 of both recipes at the chosen settings, judged on other sample seeds
    python benchmarks/train_baseline.py train --recipe diffusers --lr LR --seed 0 --out B/d-s0   (and 1, 2)
    python benchmarks/train_baseline.py train --recipe noisecraft --seed 0 --out B/nc-s0       (and 1, 2)
    python benchmarks/train_baseline.py report B/tune.json B/d-s0 ... B/nc-s0 ... --out docs-section.md

Same data (built-in digits, 16x16, train split), batch 32 and number of optimizer steps (1200, the demo's
38,400 samples) for both; one torch thread each; the clock is process CPU time of training.

* noisecraft: the `digits` preset unchanged (unet-small, EDM, AdamW 3e-3 cosine, EMA 0.99, class dropout 0.1).
* diffusers, given the same care: UNet2DModel (1.11 M parameters, `num_class_embeds=11`: 10 digits + a null
  class), DDPM 1000 linear betas, ε-MSE, AdamW (β 0.9/0.99, as ours) with 50 warm-up steps and cosine decay
  (diffusers' `get_cosine_schedule_with_warmup`), grad clip 1.0, diffusers' EMAModel at 0.99 (its default
  warm-up (1+n)/(10+n) is the same as ours), class dropout 0.1 to the null class for classifier-free
  guidance; sampled with DDIM, 50 steps, ε_u + w(ε_c − ε_u).

Selection (the same rule for both recipes, on the tuning seed's model and sample seeds 5000+, judged by
noisecraft's own digits feature classifier): unguided = guidance 1; guided = the weight in GUIDANCE
with the lowest FD among those with accuracy ≥ 0.97 (if none reaches it, the most accurate). The peer's
learning rate is chosen by its guided score, then its unguided score. The report draws other sample seeds
(1000+) from three other training seeds and uses two judges: noisecraft's feature classifier, and an
independent one (benchmarks/digits_quality.py: an SVM for accuracy, the hidden layer of an MLP for FD),
each FD divided by its real-vs-real floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown  # noqa: E402
import digits_quality  # noqa: E402
from demo_tuning import OwnJudge  # noqa: E402

NUM_CLASSES, RES, STEPS, BATCH, WARMUP, EMA_DECAY, DROPOUT, DDIM_STEPS = 10, 16, 1200, 32, 50, 0.99, 0.1, 50
GUIDANCE = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
ACC_GOAL = 0.97


# ------------------------------------------------------------------------------------------------
# the diffusers recipe


def diffusers_unet(seed: int):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(sample_size=RES, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), num_class_embeds=NUM_CLASSES + 1)


def train_diffusers(lr: float, seed: int, steps: int) -> tuple[dict, dict]:
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from noisecraft.data import load_dataset

    c0 = time.process_time()
    ds = load_dataset("digits", resolution=RES, split="train")
    unet = diffusers_unet(seed).train()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    lrs = get_cosine_schedule_with_warmup(opt, num_warmup_steps=WARMUP, num_training_steps=steps)
    ema = EMAModel(unet.parameters(), decay=EMA_DECAY)
    gen = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(len(ds), generator=gen), 0
    losses = []
    for _ in range(steps):
        if pos + BATCH > len(perm):
            perm, pos = torch.randperm(len(ds), generator=gen), 0
        idx = perm[pos:pos + BATCH]
        pos += BATCH
        x0, y = ds.images[idx], ds.labels[idx].clone()
        y[torch.rand(len(idx), generator=gen) < DROPOUT] = NUM_CLASSES  # the null class
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (len(idx),), generator=gen)
        loss = F.mse_loss(unet(sched.add_noise(x0, noise, t), t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lrs.step()
        ema.step(unet.parameters())
        losses.append(float(loss.detach()))
    ema.copy_to(unet.parameters())
    info = {"recipe": "diffusers", "lr": lr, "seed": seed, "steps": steps, "train_cpu_s": time.process_time() - c0,
            "final_loss_mean100": float(np.mean(losses[-100:])),
            "params": sum(p.numel() for p in unet.parameters())}
    return {k: v.detach().clone().contiguous() for k, v in unet.state_dict().items()}, info


def diffusers_sample(state: dict, labels: torch.Tensor, seed: int, guidance: float) -> torch.Tensor:
    from diffusers import DDIMScheduler, DDPMScheduler

    unet = diffusers_unet(0).eval().requires_grad_(False)
    unet.load_state_dict(state)
    ddim = DDIMScheduler.from_config(DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").config)
    ddim.set_timesteps(DDIM_STEPS)
    x = torch.stack([torch.randn((1, RES, RES), generator=torch.Generator().manual_seed(seed + i))
                     for i in range(len(labels))])
    null = torch.full_like(labels, NUM_CLASSES)
    with torch.no_grad():
        for t in ddim.timesteps:
            if guidance == 1.0:
                eps = unet(x, t, class_labels=labels).sample
            else:
                e = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
                eps = e[len(x):] + guidance * (e[:len(x)] - e[len(x):])
            x = ddim.step(eps, t, x).prev_sample
    return x.clamp(-1, 1)


# ------------------------------------------------------------------------------------------------
# train / load either recipe


def cmd_train(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    if args.recipe == "diffusers":
        from safetensors.torch import save_file

        state, info = train_diffusers(args.lr, args.seed, args.steps)
        save_file(state, str(out / "ema.safetensors"))
    else:
        from noisecraft.config import load_config
        from noisecraft.train import train

        cfg = load_config("digits", [f"train.seed={args.seed}", f"train.steps={args.steps}", "train.tensorboard=false",
                                     "train.sample_every=0", f"train.checkpoint_every={args.steps}", "train.threads=1"])
        c0 = time.process_time()
        train(cfg, out / "run", progress=False)
        info = {"recipe": "noisecraft", "lr": cfg.optim.lr, "seed": args.seed, "steps": args.steps,
                "train_cpu_s": time.process_time() - c0}
    info["machine"] = machine_info()
    (out / "info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps({k: v for k, v in info.items() if k != "machine"}))


def sampler_of(folder: Path):
    info = json.loads((folder / "info.json").read_text())
    if info["recipe"] == "diffusers":
        from noisecraft.io_safety import read_safetensors

        state, _ = read_safetensors(folder / "ema.safetensors")
        return info, lambda labels, seed, g: diffusers_sample(state, labels, seed, g)
    from noisecraft.runs import Run

    run = Run.open(folder / "run")
    return info, lambda labels, seed, g: run.generate(run.spec(guidance=g, seed=seed), len(labels),
                                                       class_labels=labels).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------
# judges


class IndependentJudge:
    """benchmarks/digits_quality.py's judge (SVM accuracy, MLP-feature FD, pixel diversity), under the keys
    this script reports; never used to choose settings."""

    def __init__(self):
        self.judge = digits_quality.IndependentJudge(RES)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        r = self.judge(x, labels)
        return {"accuracy": r["accuracy"], "fd_ratio": r["fd_mlp_ratio"], "diversity": r["diversity_ratio"],
                "diversity_min": min(r["diversity_ratio_per_class"])}


def pick_guidance(rows: list[dict]) -> dict:
    """The selection rule: lowest FD among weights with accuracy ≥ ACC_GOAL, else the most accurate."""
    ok = [r for r in rows if r["accuracy"] >= ACC_GOAL]
    return min(ok, key=lambda r: r["fd_ratio"]) if ok else max(rows, key=lambda r: r["accuracy"])


def cmd_tune(args) -> None:
    torch.set_num_threads(1)
    judge = OwnJudge(RES)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(args.per_class)
    out = {}
    for folder in map(Path, args.folders):
        info, sample = sampler_of(folder)
        rows = []
        for g in GUIDANCE:
            r = {"guidance": g, **judge(sample(labels, args.seed, g), labels)}
            rows.append(r)
            print(f"{folder.name}: g {g}: acc {r['accuracy']:.3f} FD {r['fd_ratio']:.2f}x div {r['diversity']:.3f}", flush=True)
        out[str(folder)] = {"info": {k: v for k, v in info.items() if k != "machine"}, "rows": rows,
                            "guided": pick_guidance([r for r in rows if r["guidance"] > 1]), "unguided": rows[0]}
    Path(args.json).write_text(json.dumps(out, indent=2))


# ------------------------------------------------------------------------------------------------
# report


def cmd_report(args) -> None:
    torch.set_num_threads(1)
    tune = json.loads(Path(args.tune).read_text())
    best_w = {}
    for v in tune.values():  # the chosen guidance of each recipe (the tuned lr for diffusers)
        key = v["info"]["recipe"]
        if key == "diffusers" and key in best_w and not _better(v, best_w[key]):
            continue
        best_w[key] = v
    own, ind = OwnJudge(RES), IndependentJudge()
    labels = torch.arange(NUM_CLASSES).repeat_interleave(args.per_class)
    results = []
    for folder in map(Path, args.folders):
        info, sample = sampler_of(folder)
        w = best_w[info["recipe"]]["guided"]["guidance"]
        for mode, g in (("guided", w), ("unguided", 1.0)):
            x = sample(labels, args.seed, g)
            r = {"folder": str(folder), "recipe": info["recipe"], "lr": info["lr"], "seed": info["seed"],
                 "train_cpu_s": info["train_cpu_s"], "mode": mode, "guidance": g,
                 "own": own(x, labels), "independent": ind(x, labels)}
            results.append(r)
            print(f"{folder.name} {mode} g {g}: own acc {r['own']['accuracy']:.3f} FD {r['own']['fd_ratio']:.2f}x | "
                  f"indep acc {r['independent']['accuracy']:.3f} FD {r['independent']['fd_ratio']:.2f}x "
                  f"div {r['independent']['diversity']:.3f}", flush=True)
    data = {"tune": tune, "chosen": {k: {"lr": v["info"]["lr"], "guidance": v["guided"]["guidance"]}
                                     for k, v in best_w.items()},
            "results": results, "machine": machine_info(), "per_class": args.per_class, "seed": args.seed}
    Path(args.out).with_suffix(".json").write_text(json.dumps(data, indent=2))
    Path(args.out).write_text(render(data))
    print(render(data))


def cmd_combine(args) -> None:
    """Merge tune or report JSONs written by separate processes (one per folder, run in parallel)."""
    parts = [json.loads(Path(p).read_text()) for p in args.parts]
    if "results" in parts[0]:
        data = {**parts[0], "results": [r for p in parts for r in p["results"]]}
        Path(args.out).with_suffix(".json").write_text(json.dumps(data, indent=2))
        Path(args.out).write_text(render(data))
        print(render(data))
    else:
        Path(args.out).write_text(json.dumps({k: v for p in parts for k, v in p.items()}, indent=2))


def _better(a: dict, b: dict) -> bool:
    """Is tuning entry a better diffusers recipe than b (guided score first, then unguided FD)?"""
    ka = (a["guided"]["accuracy"] >= ACC_GOAL, -a["guided"]["fd_ratio"], -a["unguided"]["fd_ratio"])
    kb = (b["guided"]["accuracy"] >= ACC_GOAL, -b["guided"]["fd_ratio"], -b["unguided"]["fd_ratio"])
    return ka > kb


def _spread(vals: list[float], fmt: str) -> str:
    return f"{statistics.median(vals):{fmt}} ({min(vals):{fmt}}–{max(vals):{fmt}})"


def render(data: dict) -> str:
    lines = ["Learning-rate sweep of the diffusers recipe on training seed 100 (sample seeds 5000+, "
             "noisecraft's own judge; FD as a multiple of its real-vs-real floor):", "",
             "| recipe | lr | train CPU-s | unguided acc | unguided FD | chosen w | guided acc | guided FD |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in data["tune"].values():
        i, u, g = v["info"], v["unguided"], v["guided"]
        lines.append(f"| {i['recipe']} | {i['lr']:g} | {i['train_cpu_s']:.0f} | {u['accuracy']:.3f} | {u['fd_ratio']:.2f} "
                     f"| {g['guidance']} | {g['accuracy']:.3f} | {g['fd_ratio']:.2f} |")
    lines += ["", "Report: median (min–max) over training seeds 0, 1, 2; sample seeds 1000+, "
              f"{data['per_class']} per digit.", "",
              "| recipe | mode | w | train CPU-s | own acc | own FD/floor | indep. acc | indep. FD/floor | diversity |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for recipe in ("noisecraft", "diffusers"):
        for mode in ("guided", "unguided"):
            rs = [r for r in data["results"] if r["recipe"] == recipe and r["mode"] == mode]
            if not rs:
                continue
            lines.append(
                f"| {recipe} (lr {rs[0]['lr']:g}) | {mode} | {rs[0]['guidance']} | {_spread([r['train_cpu_s'] for r in rs], '.0f')} | "
                f"{_spread([r['own']['accuracy'] for r in rs], '.3f')} | {_spread([r['own']['fd_ratio'] for r in rs], '.2f')} | "
                f"{_spread([r['independent']['accuracy'] for r in rs], '.3f')} | "
                f"{_spread([r['independent']['fd_ratio'] for r in rs], '.2f')} | "
                f"{_spread([r['independent']['diversity'] for r in rs], '.3f')} |")
    lines += ["", machine_markdown(data["machine"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--recipe", choices=("noisecraft", "diffusers"), required=True)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=STEPS)
    t.add_argument("--out", required=True)
    u = sub.add_parser("tune")
    u.add_argument("folders", nargs="+")
    u.add_argument("--per-class", type=int, default=50)
    u.add_argument("--seed", type=int, default=5000)
    u.add_argument("--json", required=True)
    r = sub.add_parser("report")
    r.add_argument("tune")
    r.add_argument("folders", nargs="+")
    r.add_argument("--per-class", type=int, default=100)
    r.add_argument("--seed", type=int, default=1000)
    r.add_argument("--out", required=True)
    c = sub.add_parser("combine", help="merge tune JSONs, or report JSONs (then also render the markdown)")
    c.add_argument("parts", nargs="+")
    c.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    {"train": cmd_train, "tune": cmd_tune, "report": cmd_report, "combine": cmd_combine}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
