"""Training speed to a given quality: noisecraft's `digits` recipe versus a typical diffusers recipe.

    python benchmarks/train_digits.py                      # snapshots at 1, 2, 4, 8 CPU-minutes
    python benchmarks/train_digits.py --budget 1,2,4,6     # a shorter schedule
    python benchmarks/train_digits.py --quick              # smoke test (< 2 minutes)

Both models train on the same data (built-in digits, 16x16, train split), with the same batch size,
in the same process, one after the other, with the same torch thread count:

* noisecraft: the `digits` preset unchanged (unet-small, EDM preconditioning and loss, EMA, AdamW
  with warm-up and cosine decay, class dropout for guidance), trained by `noisecraft.train.train`.
  Only bookkeeping is switched off (TensorBoard, sample grids, intermediate checkpoints), and the
  thread count follows --threads. The preset is a fixed-length recipe (train.steps); if it ends
  before the last budget, the later snapshots are its final model.
* diffusers: a plain training loop as diffusers users write it: UNet2DModel (~1M parameters,
  class conditioning through `num_class_embeds`), DDPMScheduler (1000 linear betas), ε-prediction
  MSE, AdamW at 5e-4 with 50 warm-up steps then constant, gradient clipping 1.0, diffusers'
  EMAModel at decay 0.99 (the same EMA length as the preset); sampled with DDIMScheduler, 50 steps.

The clock is process CPU time of the training (time.process_time: all threads of this process),
excluding evaluation and snapshot copies. The machine may be shared, so CPU time is the fair clock;
wall time and load averages are reported next to it.

Quality at every snapshot, same protocol for both: `per_class` samples per digit from fixed seeds,
scored by noisecraft's default digits feature classifier (noisecraft.eval.default_extractor):
class accuracy, and Fréchet distance in its 64-d feature space against the real held-out test
split, with the real-vs-real noise floor (as many train digits as samples, against the test split).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402

NUM_CLASSES = 10
RESOLUTION = 16
BASELINE_LR = 5e-4
BASELINE_WARMUP = 50
BASELINE_EMA = 0.99
DDIM_STEPS = 50


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


class _BudgetReached(Exception):
    """Raised from the training callback once the last CPU budget is used up."""


class TrainClock:
    """Training CPU/wall seconds since start, minus the time spent taking snapshots."""

    def __init__(self):
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        self.excluded_cpu = self.excluded_wall = 0.0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0 - self.excluded_cpu

    def wall(self) -> float:
        return time.perf_counter() - self.wall0 - self.excluded_wall

    def exclude(self, fn):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        self.excluded_cpu += time.process_time() - c
        self.excluded_wall += time.perf_counter() - w
        return out


def _snapshot(budget: float, clock: TrainClock, step: int, batch: int, state: dict) -> dict:
    return {"budget_min": budget, "cpu_s": clock.cpu(), "wall_s": clock.wall(), "step": step,
            "samples": step * batch, "state": state, "load": load_average()}


# ------------------------------------------------------------------------------------------------
# noisecraft: the preset, trained by the library's own loop


def noisecraft_config(threads: int):
    from noisecraft.config import load_config

    base = load_config("digits")
    steps = base.train.steps
    return load_config("digits", [f"train.threads={threads}", "train.tensorboard=false", "train.sample_every=0",
                                  f"train.checkpoint_every={steps}"])


def train_noisecraft(budgets: list[float], threads: int, workdir: Path) -> tuple[list[dict], dict]:
    from noisecraft.train import loop as nc_loop
    from noisecraft.train import train

    cfg = noisecraft_config(threads)
    holder: dict = {}

    class RecordingEMA(nc_loop.EMA):  # lets the benchmark read the EMA weights mid-run
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            holder["ema"] = self

    snaps: list[dict] = []
    last = {"step": 0}
    clock = TrainClock()

    def on_step(step: int, loss: float) -> None:
        last["step"], last["cpu"], last["wall"] = step, clock.cpu(), clock.wall()
        while len(snaps) < len(budgets) and clock.cpu() >= budgets[len(snaps)] * 60:
            state = clock.exclude(lambda: copy.deepcopy(holder["ema"].module.state_dict()))
            snaps.append(_snapshot(budgets[len(snaps)], clock, step, cfg.train.batch_size, state))
        if len(snaps) == len(budgets):
            raise _BudgetReached

    original = nc_loop.EMA
    nc_loop.EMA = RecordingEMA
    clock = TrainClock()
    finished = False
    try:
        train(cfg, workdir / "noisecraft", progress=False, on_step=on_step)
        finished = True
    except _BudgetReached:
        pass
    finally:
        nc_loop.EMA = original
    end_cpu, end_wall = last.get("cpu", clock.cpu()), last.get("wall", clock.wall())
    if finished:  # the recipe ended before the last budget: its final EMA stands in for the rest
        state = copy.deepcopy(holder["ema"].module.state_dict())
        for b in budgets[len(snaps):]:
            snaps.append({"budget_min": b, "cpu_s": end_cpu, "wall_s": end_wall, "step": last["step"],
                          "samples": last["step"] * cfg.train.batch_size, "state": state, "load": load_average(),
                          "recipe_finished": True})
    info = {"steps_done": last["step"], "recipe_steps": cfg.train.steps, "recipe_finished": finished,
            "train_cpu_s": end_cpu, "train_wall_s": end_wall, "batch_size": cfg.train.batch_size,
            "samples_per_cpu_s": last["step"] * cfg.train.batch_size / max(end_cpu, 1e-9),
            "samples_per_wall_s": last["step"] * cfg.train.batch_size / max(end_wall, 1e-9)}
    return snaps, info


def _classes():
    from noisecraft.conditioning import ClassLabels

    return ClassLabels([str(i) for i in range(NUM_CLASSES)])


def noisecraft_denoiser(cfg, state: dict):
    from noisecraft.runs import build_denoiser
    from noisecraft.train import build_net

    net = build_net(cfg, (1, RESOLUTION, RESOLUTION), [_classes()])
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    return build_denoiser(net, cfg).eval()


def noisecraft_samples(cfg, state: dict, labels: torch.Tensor, seed: int, guidance: float) -> torch.Tensor:
    from noisecraft.runs import generate

    spec = cfg.sample.spec(seed=seed, guidance=guidance)
    return generate(noisecraft_denoiser(cfg, state), len(labels), (1, RESOLUTION, RESOLUTION), spec, [_classes()],
                    {"class_labels": labels}, batch_size=len(labels)).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------
# diffusers: a plain training loop


def diffusers_unet(seed: int):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=RESOLUTION, in_channels=1, out_channels=1,
        block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        class_embed_type=None, num_class_embeds=NUM_CLASSES,
    )


class DiffusersTrainer:
    """The usual diffusers recipe, one optimizer step at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_constant_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.unet = diffusers_unet(seed).train()
        self.scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=BASELINE_LR, betas=(0.95, 0.999), weight_decay=1e-6,
                                     eps=1e-8)
        self.lr_schedule = get_constant_schedule_with_warmup(self.opt, num_warmup_steps=BASELINE_WARMUP)
        self.ema = EMAModel(self.unet.parameters(), decay=BASELINE_EMA)
        self.gen = torch.Generator().manual_seed(seed)
        self.perm, self.pos, self.step_count = torch.randperm(len(images), generator=self.gen), 0, 0

    def _batch(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.perm):
            self.perm, self.pos = torch.randperm(len(self.images), generator=self.gen), 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def step(self) -> float:
        idx = self._batch()
        x0, y = self.images[idx], self.labels[idx]
        noise = torch.randn(x0.shape, generator=self.gen)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(idx),), generator=self.gen)
        noisy = self.scheduler.add_noise(x0, noise, t)
        pred = self.unet(noisy, t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        self.lr_schedule.step()
        self.ema.step(self.unet.parameters())
        self.step_count += 1
        return float(loss.detach())

    def ema_state(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.ema.shadow_params]


def train_diffusers(budgets: list[float], batch_size: int, seed: int) -> tuple[list[dict], dict]:
    from noisecraft.data import load_dataset

    clock = TrainClock()  # like noisecraft's train(), the clock includes loading the data and building the net
    ds = load_dataset("digits", resolution=RESOLUTION, split="train")
    tr = DiffusersTrainer(ds.images, ds.labels, batch_size, seed)
    snaps: list[dict] = []
    while len(snaps) < len(budgets):
        tr.step()
        while len(snaps) < len(budgets) and clock.cpu() >= budgets[len(snaps)] * 60:
            state = clock.exclude(tr.ema_state)
            snaps.append(_snapshot(budgets[len(snaps)], clock, tr.step_count, batch_size, state))
    cpu, wall = clock.cpu(), clock.wall()
    info = {"steps_done": tr.step_count, "train_cpu_s": cpu, "train_wall_s": wall, "batch_size": batch_size,
            "samples_per_cpu_s": tr.step_count * batch_size / cpu, "samples_per_wall_s": tr.step_count * batch_size / wall}
    return snaps, info


def diffusers_samples(params: list[torch.Tensor], labels: torch.Tensor, seed: int) -> torch.Tensor:
    from diffusers import DDIMScheduler, DDPMScheduler

    unet = diffusers_unet(0).eval().requires_grad_(False)
    with torch.no_grad():
        for p, q in zip(unet.parameters(), params):
            p.copy_(q)
    ddim = DDIMScheduler.from_config(DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").config)
    ddim.set_timesteps(DDIM_STEPS)
    x = torch.stack([torch.randn((1, RESOLUTION, RESOLUTION), generator=torch.Generator().manual_seed(seed + i))
                     for i in range(len(labels))])
    with torch.no_grad():
        for t in ddim.timesteps:
            eps = unet(x, t, class_labels=labels).sample
            x = ddim.step(eps, t, x).prev_sample
    return x.clamp(-1, 1)


# ------------------------------------------------------------------------------------------------
# Evaluation


class Judge:
    """The default digits feature classifier, the test-split feature statistics and the noise floor."""

    def __init__(self, n_samples: int, seed: int = 0):
        from noisecraft.data import load_dataset
        from noisecraft.eval import default_extractor, feature_stats, frechet_distance_from_stats

        self.ext = default_extractor("digits", resolution=RESOLUTION)
        test = load_dataset("digits", resolution=RESOLUTION, split="test")
        train = load_dataset("digits", resolution=RESOLUTION, split="train")
        feats, pred = self.ext.features_and_predictions(test.images)
        self.test_stats = feature_stats(feats)
        self.held_out_accuracy = float((pred == test.labels.numpy()).mean())
        self.n_test = len(test)
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(train), generator=g)[: min(n_samples, len(train))]
        self.floor_fd = frechet_distance_from_stats(self.test_stats, feature_stats(self.ext.features(train.images[pick])))
        self.floor_n = len(pick)
        self.floor_acc = float((self.ext.predict(train.images[pick]) == train.labels[pick].numpy()).mean())

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        from noisecraft.eval import feature_stats, frechet_distance_from_stats

        feats, pred = self.ext.features_and_predictions(x)
        return {"accuracy": float((pred == labels.numpy()).mean()),
                "fd": frechet_distance_from_stats(self.test_stats, feature_stats(feats))}


def evaluate_snapshots(name: str, snaps: list[dict], sample_fn, judge: Judge, labels, seed: int) -> list[dict]:
    rows, cache = [], {}
    for s in snaps:
        key = id(s["state"])
        if key not in cache:
            c, w = time.process_time(), time.perf_counter()
            x = sample_fn(s["state"], labels, seed)
            c, w = time.process_time() - c, time.perf_counter() - w
            cache[key] = {**judge(x, labels), "sample_cpu_s": c, "sample_wall_s": w}
        row = {k: v for k, v in s.items() if k != "state"}
        row.update(cache[key])
        rows.append(row)
        print(f"  {name:<24} {s['budget_min']:>5.2f} CPU-min (step {s['step']:>5}): accuracy {row['accuracy']:.3f}, "
              f"FD {row['fd']:.2f}  [sampling {row['sample_wall_s']:.0f} s]", flush=True)
    return rows


def time_to_reach(rows: list[dict], target: float, higher_better: bool) -> float | None:
    """CPU-minutes at which a curve first reaches `target`, interpolated linearly between snapshots."""
    prev = None
    for r in rows:
        t, v = r["cpu_s"] / 60, r["accuracy" if higher_better else "fd"]
        if (v >= target) if higher_better else (v <= target):
            if prev is None:
                return t  # already there at the first snapshot: an upper bound
            t0, v0 = prev
            frac = 1.0 if v == v0 else (target - v0) / (v - v0)
            return t0 + frac * (t - t0)
        prev = (t, v)
    return None


# ------------------------------------------------------------------------------------------------
# Matched throughput: one optimizer step of each recipe, interleaved to share the same load


def throughput(threads: int, batch_size: int, steps: int, rounds: int) -> dict:
    from noisecraft.data import load_dataset
    from noisecraft.runs import build_denoiser
    from noisecraft.train import EMA, build_net, make_loss

    cfg = noisecraft_config(threads)
    ds = load_dataset("digits", resolution=RESOLUTION, split="train")
    net = build_net(cfg, (1, RESOLUTION, RESOLUTION), [_classes()])
    den, loss_fn = build_denoiser(net, cfg).train(), make_loss(cfg)
    oc = cfg.optim
    opt = torch.optim.AdamW(net.parameters(), lr=oc.lr, betas=(oc.beta1, oc.beta2), eps=oc.eps, weight_decay=oc.weight_decay)
    ema = EMA(net, cfg.ema.decay, cfg.ema.warmup)
    gen = torch.Generator().manual_seed(0)

    def nc_step():
        idx = torch.randint(0, len(ds), (batch_size,), generator=gen)
        onehot = F.one_hot(ds.labels[idx], NUM_CLASSES).float()
        loss = loss_fn(den, ds.images[idx], generator=gen, class_labels=onehot)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), oc.grad_clip)
        opt.step()
        ema.update(net)

    dt = DiffusersTrainer(ds.images, ds.labels, batch_size, 0)
    fns = {"noisecraft": nc_step, "diffusers": dt.step}
    totals = {k: [0.0, 0.0] for k in fns}
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for f in fns.values():  # warm-up
            for _ in range(2):
                f()
        for _ in range(rounds):
            for k, f in fns.items():
                c, w = time.process_time(), time.perf_counter()
                for _ in range(steps):
                    f()
                totals[k][0] += time.process_time() - c
                totals[k][1] += time.perf_counter() - w
    finally:
        torch.set_num_threads(old)
    n = rounds * steps * batch_size
    return {k: {"params": p, "samples_per_cpu_s": n / totals[k][0], "samples_per_wall_s": n / totals[k][1]}
            for k, p in (("noisecraft", sum(q.numel() for q in net.parameters())),
                         ("diffusers", sum(q.numel() for q in dt.unet.parameters())))}


# ------------------------------------------------------------------------------------------------
# Report


def plot(path: Path, curves: dict[str, list[dict]], floor_acc: float, floor_fd: float) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for name, rows in curves.items():
        t = [r["cpu_s"] / 60 for r in rows]
        axes[0].plot(t, [r["accuracy"] for r in rows], "o-", label=name)
        axes[1].plot(t, [r["fd"] for r in rows], "o-", label=name)
    axes[0].axhline(floor_acc, color="gray", ls="--", lw=1, label="real train digits")
    axes[1].axhline(floor_fd, color="gray", ls="--", lw=1, label="real-vs-real floor")
    axes[0].set_ylabel("class accuracy (digits classifier)")
    axes[1].set_ylabel("FD in classifier features (vs test split)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training CPU-minutes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("digits 16x16: quality vs training CPU time (same data, batch and machine)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fmt_ratio(t_nc: float | None, t_base: float, t_first: float) -> str:
    if t_nc is None:
        return "not reached"
    le = "≤ " if abs(t_nc - t_first) < 1e-9 else ""  # reached at the first snapshot: an upper bound
    return f"{le}{t_nc:.2f} CPU-min (ratio {le}{t_nc / t_base:.2f})"


def thread_note(threads: int) -> str:
    if threads == 1:
        return ("Both recipes run at 1 torch thread (the preset's own train.threads = 1). A first attempt at 2 "
                "threads on this shared machine (load average ~4 on 2 cores) was abandoned: noisecraft managed 70 "
                "steps in 4.8 CPU-minutes, because OpenMP threads spin while their partner is descheduled, so the "
                "CPU-time clock measured contention, not training.")
    return (f"Both recipes run at {threads} torch threads (the preset says train.threads = 1). On a shared machine "
            "multi-thread CPU time includes OpenMP spin-waiting; compare with care.")


def render(json_path: Path) -> tuple[Path, Path]:
    """Rewrite the markdown and plot from a saved JSON result (after a change to the report only)."""
    data = json.loads(json_path.read_text())
    name = json_path.stem
    md = json_path.with_suffix(".md")
    md.write_text(report(data))
    r, g, j = data["results"], data["settings"]["nc_guidance"], data["judge"]
    plot(json_path.with_suffix(".png"), {f"noisecraft CFG {g}": r["noisecraft_cfg"],
                                         "noisecraft no guidance": r["noisecraft_no_guidance"],
                                         "diffusers DDIM-50": r["diffusers"]}, j["floor_acc"], j["floor_fd"])
    print(md.read_text())
    return md, json_path.with_suffix(".png")


def report(data: dict) -> str:
    r, m = data["results"], data["machine"]
    nc, ncu, df = r["noisecraft_cfg"], r["noisecraft_no_guidance"], r["diffusers"]
    j, g = data["judge"], data["settings"]
    lines = [
        "# Training to quality: noisecraft `digits` recipe vs a typical diffusers recipe",
        "",
        machine_markdown(m),
        f"Load averages: start {data['loads']['start']}, after noisecraft training {data['loads']['after_noisecraft']}, "
        f"after diffusers training {data['loads']['after_diffusers']}, end {data['loads']['end']}.",
        "",
        f"Command: `{data['command']}`",
        "",
        f"Clock: training process CPU time (all {g['threads']} torch threads), excluding evaluation and snapshot "
        "copies; wall time alongside. Same data (digits train split, 16x16), batch "
        f"{g['batch_size']}, machine and process. Quality: {g['per_class']} samples per digit "
        f"({g['per_class'] * NUM_CLASSES} in all, fixed seeds), judged by noisecraft's default digits feature "
        f"classifier (held-out test accuracy {j['held_out_accuracy']:.4f}); FD in its 64-d feature space against the "
        f"{j['n_test']} real test digits. Real-vs-real floor ({j['floor_n']} train digits vs test): "
        f"FD {j['floor_fd']:.2f}, accuracy {j['floor_acc']:.3f}.",
        "",
        f"* noisecraft: `digits` preset ({data['params']['noisecraft']:,} parameters, EDM, EMA {g['nc_ema']}, lr "
        f"{g['nc_lr']} cosine over {data['train']['noisecraft']['recipe_steps']} steps, class dropout "
        f"{g['nc_class_dropout']}), sampled with {g['nc_solver']} at NFE {g['nc_nfe']}, guidance {g['nc_guidance']} "
        "(preset default) and 1.0 (no guidance).",
        f"* diffusers: UNet2DModel ({data['params']['diffusers']:,} parameters, `num_class_embeds=10`), DDPM 1000 "
        f"linear betas, ε-MSE, AdamW {BASELINE_LR} with {BASELINE_WARMUP} warm-up steps then constant, EMAModel "
        f"{BASELINE_EMA}; sampled with DDIM, {DDIM_STEPS} steps, no guidance.",
        "",
        "| budget (CPU-min) | noisecraft step | nc CFG acc | nc CFG FD | nc no-guid. acc | nc no-guid. FD "
        "| diffusers step | diffusers acc | diffusers FD |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b, c in zip(nc, ncu, df):
        mark = " (recipe done)" if a.get("recipe_finished") else ""
        lines.append(f"| {a['budget_min']:g} | {a['step']}{mark} | {a['accuracy']:.3f} | {a['fd']:.2f} | "
                     f"{b['accuracy']:.3f} | {b['fd']:.2f} | {c['step']} | {c['accuracy']:.3f} | {c['fd']:.2f} |")
    lines.append(f"| real floor | | {j['floor_acc']:.3f} | {j['floor_fd']:.2f} | | | | | |")
    t = data["time_to_baseline"]
    first = nc[0]["cpu_s"] / 60
    notes = [n for n in data["notes"] if not n.startswith("The preset sets train.threads")] + [thread_note(g["threads"])]
    lines += [
        "",
        f"## Time for noisecraft to reach the baseline's final ({df[-1]['budget_min']:g} CPU-min) quality",
        "",
        f"Baseline at {df[-1]['cpu_s'] / 60:.2f} CPU-min: accuracy {df[-1]['accuracy']:.3f}, FD {df[-1]['fd']:.2f}. "
        "Linear interpolation between snapshots; a time equal to the first snapshot means it was already reached "
        "there (an upper bound).",
        "",
        "| noisecraft sampling | to baseline accuracy | to baseline FD |",
        "|---|---|---|",
        f"| guidance {g['nc_guidance']} (preset) | {fmt_ratio(t['cfg_accuracy'], t['base_cpu_min'], first)} | "
        f"{fmt_ratio(t['cfg_fd'], t['base_cpu_min'], first)} |",
        f"| no guidance | {fmt_ratio(t['nog_accuracy'], t['base_cpu_min'], first)} | "
        f"{fmt_ratio(t['nog_fd'], t['base_cpu_min'], first)} |",
        "",
        "## Training throughput",
        "",
        "| | parameters | samples/CPU-s (run) | samples/wall-s (run) | samples/CPU-s (matched, interleaved) "
        "| samples/wall-s (matched) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in ("noisecraft", "diffusers"):
        tr, tp = data["train"][k], data["throughput"][k]
        lines.append(f"| {k} | {tp['params']:,} | {tr['samples_per_cpu_s']:.0f} | {tr['samples_per_wall_s']:.0f} | "
                     f"{tp['samples_per_cpu_s']:.0f} | {tp['samples_per_wall_s']:.0f} |")
    lines += [
        "",
        "Run columns: samples seen over the training clock of the whole run (noisecraft's includes its loop's "
        "bookkeeping: metrics lines, post-hoc EMA snapshots). Matched columns: one optimizer step of each recipe "
        f"(loss, backward, clipping, AdamW, EMA), {data['throughput_settings']['rounds']} interleaved rounds of "
        f"{data['throughput_settings']['steps']} steps each, so both see the same machine load.",
        "",
        "Notes: " + " ".join(notes),
        "",
    ]
    return "\n".join(lines)


def warm_imports() -> None:
    """Import both stacks before any clock starts, so neither pays for first imports."""
    import diffusers.optimization  # noqa: F401
    import diffusers.training_utils  # noqa: F401
    import safetensors.torch  # noqa: F401
    import tqdm.auto  # noqa: F401
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel  # noqa: F401

    import noisecraft.train.loop  # noqa: F401
    from noisecraft.data import load_dataset
    from noisecraft.nets import build_net  # noqa: F401

    load_dataset("digits", resolution=RESOLUTION, split="train")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="1,2,4,8", help="snapshot CPU-minutes, comma separated (default 1,2,4,8)")
    ap.add_argument("--per-class", type=int, default=50, help="samples per digit at each snapshot")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both recipes (default 1: on shared cores, more threads spin and spoil the "
                         "CPU-time clock)")
    ap.add_argument("--seed", type=int, default=1000, help="first sample seed (sample i uses seed + i)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets for a smoke test")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    ap.add_argument("--render", metavar="JSON", help="only rewrite the markdown and plot of a saved result")
    args = ap.parse_args(argv)
    if args.render:
        render(Path(args.render))
        return 0
    budgets = [0.05, 0.1] if args.quick else sorted(float(b) for b in args.budget.split(","))
    per_class = 10 if args.quick else args.per_class
    tp_steps, tp_rounds = (3, 1) if args.quick else (20, 3)
    name = "train_digits_quick" if args.quick else "train_digits"
    torch.set_num_threads(args.threads)
    wall0, usage0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    info = machine_info()
    loads = {"start": load_average()}
    cfg = noisecraft_config(args.threads)
    warm_imports()
    print(f"budgets {budgets} CPU-min, {per_class} samples/class, threads {args.threads}, load {loads['start']}", flush=True)

    with tempfile.TemporaryDirectory(prefix="train_digits_") as tmp:
        print("training noisecraft (digits preset) ...", flush=True)
        nc_snaps, nc_info = train_noisecraft(budgets, args.threads, Path(tmp))
    loads["after_noisecraft"] = load_average()
    print(f"  {nc_info['steps_done']} steps, {nc_info['train_cpu_s']:.0f} CPU-s, {nc_info['train_wall_s']:.0f} wall-s, "
          f"load {loads['after_noisecraft']}", flush=True)
    print("training diffusers baseline ...", flush=True)
    df_snaps, df_info = train_diffusers(budgets, cfg.train.batch_size, cfg.train.seed)
    loads["after_diffusers"] = load_average()
    print(f"  {df_info['steps_done']} steps, {df_info['train_cpu_s']:.0f} CPU-s, {df_info['train_wall_s']:.0f} wall-s, "
          f"load {loads['after_diffusers']}", flush=True)

    print("evaluating ...", flush=True)
    judge = Judge(per_class * NUM_CLASSES)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    g = cfg.sample.guidance
    results = {
        "noisecraft_cfg": evaluate_snapshots(f"noisecraft CFG {g}", nc_snaps,
                                             lambda s, y, sd: noisecraft_samples(cfg, s, y, sd, g), judge, labels, args.seed),
        "noisecraft_no_guidance": evaluate_snapshots("noisecraft no guidance", nc_snaps,
                                                     lambda s, y, sd: noisecraft_samples(cfg, s, y, sd, 1.0), judge,
                                                     labels, args.seed),
        "diffusers": evaluate_snapshots("diffusers DDIM-50", df_snaps, diffusers_samples, judge, labels, args.seed),
    }
    print("matched throughput ...", flush=True)
    tp = throughput(args.threads, cfg.train.batch_size, tp_steps, tp_rounds)
    loads["end"] = load_average()

    base = results["diffusers"][-1]
    ttb = {"base_cpu_min": base["cpu_s"] / 60}
    for key, rows in (("cfg", results["noisecraft_cfg"]), ("nog", results["noisecraft_no_guidance"])):
        ttb[f"{key}_accuracy"] = time_to_reach(rows, base["accuracy"], True)
        ttb[f"{key}_fd"] = time_to_reach(rows, base["fd"], False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    notes = [
        "The machine is shared with other work; CPU time is the clock, wall time and load averages are shown "
        "for context (under contention, multi-thread CPU time also includes OpenMP spin-waiting).",
        f"noisecraft's preset is a fixed {nc_info['recipe_steps']}-step recipe; "
        + ("it finished at " + f"{nc_info['train_cpu_s'] / 60:.2f} CPU-min, so later snapshots are its final model."
           if nc_info["recipe_finished"] else "it had not finished at the last budget (cosine decay incomplete)."),
        "Bookkeeping off for noisecraft: TensorBoard, sample grids, intermediate checkpoints (post-hoc EMA "
        "snapshots and metrics lines stay on and are counted).",
        "The diffusers baseline is untuned: one typical learning rate, no guidance (no class dropout).",
    ]
    if args.quick:
        notes.insert(0, "QUICK smoke test: tiny budgets and 10 samples per digit; the numbers mean nothing.")
    data = {
        "command": "python benchmarks/train_digits.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": info, "loads": loads, "budgets_cpu_min": budgets,
        "settings": {"threads": args.threads, "batch_size": cfg.train.batch_size, "per_class": per_class,
                     "seed": args.seed, "nc_solver": cfg.sample.solver, "nc_nfe": cfg.sample.nfe, "nc_guidance": g,
                     "nc_lr": cfg.optim.lr, "nc_ema": cfg.ema.decay, "nc_class_dropout": cfg.train.class_dropout,
                     "baseline_lr": BASELINE_LR, "baseline_ema": BASELINE_EMA, "ddim_steps": DDIM_STEPS},
        "judge": {"held_out_accuracy": judge.held_out_accuracy, "n_test": judge.n_test, "floor_fd": judge.floor_fd,
                  "floor_n": judge.floor_n, "floor_acc": judge.floor_acc},
        "params": {"noisecraft": tp["noisecraft"]["params"], "diffusers": tp["diffusers"]["params"]},
        "train": {"noisecraft": nc_info, "diffusers": df_info},
        "results": results, "time_to_baseline": ttb, "throughput": tp,
        "throughput_settings": {"steps": tp_steps, "rounds": tp_rounds},
        "process": {"wall_s": time.perf_counter() - wall0,
                    "cpu_s": usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime},
        "notes": notes,
    }
    out = Path(args.out)
    md, js = write_outputs(out, name, report(data), data)
    plot(out / f"{name}.png", {f"noisecraft CFG {g}": results["noisecraft_cfg"],
                               "noisecraft no guidance": results["noisecraft_no_guidance"],
                               "diffusers DDIM-50": results["diffusers"]}, judge.floor_acc, judge.floor_fd)
    print(md.read_text())
    print(f"wrote {md}, {js}, {out / (name + '.png')} in {data['process']['wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
