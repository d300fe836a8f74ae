"""GPU training throughput and sampling latency next to diffusers, in one command.

    python benchmarks/gpu_train_speed.py --out benchmarks/out/gpu-speed            # needs a CUDA GPU
    python benchmarks/gpu_train_speed.py --device cpu --net unet-tiny --batch 8 --steps 3 --resolution 16
                                                                                   # checks the script on a CPU

1. Training samples/s of one noisecraft U-Net preset (the real `train_step` + `apply_update`: per-
   sample generators, EDM loss, AdamW (fused on CUDA), EMA) against a diffusers `UNet2DModel` whose
   base width is chosen so its parameter count is the nearest to ours, trained the way diffusers'
   examples do (DDPMScheduler.add_noise, ε-MSE, AdamW, EMAModel), same batch, same resolution, same
   precision options (--bf16 autocast, --channels-last, --compile), medians over timed windows after
   warm-up, the two interleaved so clocks and thermals affect both alike.
2. Sampling-loop latency: diffusers' DPMSolverMultistepScheduler loop vs noisecraft's
   `sample(..., solver="dpmpp_2m", nfe=20)` on the same UNet2DModel (gpu_smoke.sampling_vs_diffusers).
Writes gpu_train_speed.json and prints a markdown table. No figure from this script is in the docs
until it has run on a GPU (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_smoke  # noqa: E402 - the sampling comparison lives there

DEVICE = "cuda"


def _sync() -> None:
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _diffusers_unet(width: int, resolution: int):
    from diffusers import UNet2DModel

    # diffusers' default 32 GroupNorm groups where the width allows it (widths step by 8 to match params)
    return UNet2DModel(sample_size=resolution, in_channels=3, out_channels=3, layers_per_block=2,
                       norm_num_groups=math.gcd(width, 32),
                       block_out_channels=(width, 2 * width, 2 * width, 2 * width),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))


def matched_peer(target: int, resolution: int):
    """The UNet2DModel (DDPM CIFAR-10 layout) whose width (a multiple of 8) gives the parameter count
    nearest to `target`; counted on the meta device, built for real once."""
    best = None
    for width in range(8, 513, 8):
        with torch.device("meta"):
            n = _params(_diffusers_unet(width, resolution))
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (width, n)
        if n > 2 * target:
            break
    torch.manual_seed(0)
    return _diffusers_unet(best[0], resolution), best[0]


def _windows(step, warmup: int, steps: int, windows: int) -> list[float]:
    for _ in range(warmup):
        step()
    _sync()
    out = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _sync()
        out.append(time.perf_counter() - t0)
    return out


def ours_step(args):
    from noisecraft.config import load_config
    from noisecraft.data import ImageDataset
    from noisecraft.runs import build_denoiser
    from noisecraft.nets import build_net as build_named
    from noisecraft.train import apply_update, loop, make_loss, train_step

    cfg = load_config("digits", [f"train.batch_size={args.batch}", "train.accum_steps=1", f"train.device='{DEVICE}'",
                                 f"train.bf16={str(args.bf16).lower()}", "ema.phema_every=0",
                                 f"train.channels_last={str(args.channels_last).lower()}", "data.conditional=false"])
    gen = torch.Generator().manual_seed(0)
    ds = ImageDataset(torch.rand(args.batch * 8, 3, args.resolution, args.resolution, generator=gen) * 2 - 1)
    torch.manual_seed(0)
    net = build_named(args.net, in_channels=3, resolution=args.resolution)
    dev = torch.device(DEVICE)
    state = loop._new_state(SimpleNamespace(cfg=cfg, net=net, conditioners=[], dataset=ds), dev)
    if args.channels_last:
        state.net.to(memory_format=torch.channels_last)
    forward = torch.compile(state.net) if args.compile else state.net
    denoiser = build_denoiser(forward, cfg).train()
    loss = make_loss(cfg)

    def step() -> None:
        train_step(state, cfg, ds, denoiser, loss, [], dev)
        apply_update(state, args.batch)

    return state.net, step


def peer_step(args, unet):
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    unet = unet.to(DEVICE).train()
    if args.channels_last:
        unet.to(memory_format=torch.channels_last)
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, **({"fused": True} if DEVICE != "cpu" else {}))
    ema = EMAModel(unet.parameters(), decay=0.999)
    forward = torch.compile(unet) if args.compile else unet
    gen = torch.Generator().manual_seed(0)
    data = (torch.rand(args.batch * 8, 3, args.resolution, args.resolution, generator=gen) * 2 - 1)
    if DEVICE != "cpu":
        data = data.pin_memory()
    pos = [0]

    def step() -> None:
        i = pos[0] % 8
        pos[0] += 1
        x0 = data[i * args.batch:(i + 1) * args.batch].to(DEVICE, non_blocking=True)
        if args.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (args.batch,), device=x0.device)
        with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=args.bf16):
            pred = forward(sched.add_noise(x0, noise, t), t).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.step(unet.parameters())

    return step


def training(args) -> dict:
    net, ours = ours_step(args)
    unet, width = matched_peer(_params(net), args.resolution)
    peer = peer_step(args, unet)
    t_ours, t_peer = [], []
    for _ in range(2):  # interleaved
        t_ours += _windows(ours, args.warmup, args.steps, args.windows)
        t_peer += _windows(peer, args.warmup, args.steps, args.windows)
    per = args.batch * args.steps
    s_ours, s_peer = per / statistics.median(t_ours), per / statistics.median(t_peer)
    return {"noisecraft_net": args.net, "noisecraft_params": _params(net), "diffusers_width": width,
            "diffusers_params": _params(unet), "batch": args.batch, "resolution": args.resolution, "bf16": args.bf16,
            "channels_last": args.channels_last, "compile": args.compile,
            "noisecraft_samples_per_s": s_ours, "diffusers_samples_per_s": s_peer, "speedup": s_ours / s_peer,
            "windows": len(t_ours), "steps_per_window": args.steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/gpu-speed"))
    ap.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (to test the script)")
    ap.add_argument("--net", default="unet-base", help="noisecraft net preset (unet-base: the CIFAR-size U-Net)")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed window")
    ap.add_argument("--windows", type=int, default=3, help="timed windows per side and round (2 rounds)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--sampling-batch", type=int, default=64)
    ap.add_argument("--no-sampling", action="store_true")
    args = ap.parse_args()
    global DEVICE
    DEVICE = gpu_smoke.DEVICE = args.device
    if DEVICE != "cpu" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU here; run with --device cpu only to check the script")
    if DEVICE == "cpu":
        torch.set_num_threads(1)
    import diffusers

    report = {"device": torch.cuda.get_device_name(0) if DEVICE != "cpu" else "cpu", "torch": torch.__version__,
              "diffusers": diffusers.__version__, "training": training(args)}
    print("training", json.dumps(report["training"]), flush=True)
    if not args.no_sampling:
        report["sampling_vs_diffusers"] = gpu_smoke.sampling_vs_diffusers(3 if DEVICE == "cpu" else 7, args.sampling_batch)
        print("sampling", json.dumps(report["sampling_vs_diffusers"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_train_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    tr = report["training"]
    print(f"\n| device | net (params) | diffusers width (params) | batch | noisecraft samples/s | diffusers samples/s | ratio |\n"
          f"|---|---|---|---|---|---|---|\n| {report['device']} | {tr['noisecraft_net']} ({tr['noisecraft_params']:,}) | "
          f"{tr['diffusers_width']} ({tr['diffusers_params']:,}) | {tr['batch']} | {tr['noisecraft_samples_per_s']:.1f} | "
          f"{tr['diffusers_samples_per_s']:.1f} | {tr['speedup']:.2f} |")
    if "sampling_vs_diffusers" in report:
        sv = report["sampling_vs_diffusers"]
        print(f"\nsampling (20 steps, batch {sv['batch']}): noisecraft {sv['noisecraft_dpmpp_2m_s'] * 1e3:.1f} ms, "
              f"diffusers {sv['diffusers_dpmsolver_s'] * 1e3:.1f} ms, ratio {sv['ratio_noisecraft_over_diffusers']:.2f}")


if __name__ == "__main__":
    main()
