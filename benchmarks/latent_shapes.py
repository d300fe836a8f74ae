"""Latent vs pixel diffusion on `shapes` (32x32): autoencoder reconstruction and sampling latency.

    python benchmarks/latent_shapes.py --ae runs/shapes-ae --latent-run runs/shapes-latent [--pixel-run runs/shapes]
        [--repeats 5] [--batch 16] [--nfe 20] [--guidance 3]

Quality (FD, prompt match) of both runs comes from `benchmarks/shapes_text.py RUN`, which works on latent
runs unchanged (`Run.generate` decodes). This script adds what is specific to latent diffusion:

* reconstruction PSNR of the autoencoder on real images it never trained on: the shapes `test_seen`
  and `heldout` splits (600 each; mean over images of 10·log10(2² / MSE), [-1, 1] data, clamped);
* sampling latency: wall time of `Run.generate` for one batch of `--batch` prompts (latent: sampling
  plus decoding), dpmpp_2m at the same NFE and guidance for both, median (and min / max) of `--repeats`
  timed runs after one warm-up, 1 torch thread. Without --pixel-run the pixel model is the `shapes`
  preset's network trained for 1 step: latency does not depend on the weights.
* training cost: the autoencoder's CPU seconds (recorded in autoencoder.json by its trainer) and the
  CPU seconds of each training process when the launcher wrote RUN.cpu.json next to the run
  ({"cpu_user": s, "cpu_sys": s}; as benchmarks/shapes_text.py reads them).

Writes benchmarks/out/latent_shapes.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _cpu_json(run: Path) -> float | None:
    p = run.parent / f"{run.name}.cpu.json"
    if not p.is_file():
        return None
    return round(sum(v for k, v in json.loads(p.read_text()).items() if k.startswith("cpu_")), 1)


def _latency(run, prompts: list[str], nfe: int, guidance: float, repeats: int) -> dict:
    spec = run.spec(solver="dpmpp_2m", nfe=nfe, guidance=guidance, seed=0)
    run.generate(spec, len(prompts), prompts=prompts)  # warm-up (weights read, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run.generate(spec, len(prompts), prompts=prompts)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def _pixel_run(path: Path | None, tmp: Path):
    from noisecraft.config import load_config
    from noisecraft.runs import Run
    from noisecraft.train import train

    if path is not None:
        return Run.open(path), False
    cfg = load_config("shapes", ["train.steps=1", "train.checkpoint_every=1", "ema.phema_every=0"])
    train(cfg, tmp / "pixel", progress=False)
    return Run.open(tmp / "pixel"), True


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ae", type=Path, required=True)
    p.add_argument("--latent-run", type=Path, required=True)
    p.add_argument("--pixel-run", type=Path)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--nfe", type=int, default=20)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from noisecraft.data import load_dataset
    from noisecraft.latent import Autoencoder
    from noisecraft.runs import Run
    from noisecraft.train.autoencoder import reconstruction_psnr

    ae = Autoencoder.open(args.ae)
    recon = {}
    for split in ("test_seen", "heldout"):
        ds = load_dataset("shapes", split=split, labels=False)
        recon[split] = reconstruction_psnr(ae, ds.images)
        print(f"reconstruction PSNR on {split}: {recon[split]['psnr']:.2f} dB (min {recon[split]['psnr_min']:.2f}, n {recon[split]['n']})", flush=True)
    prompts = load_dataset("shapes", split="test_seen", labels=False).sample_captions(
        range(args.batch), generator=torch.Generator().manual_seed(0))
    latent = Run.open(args.latent_run)
    with tempfile.TemporaryDirectory() as tmp:
        pixel, untrained = _pixel_run(args.pixel_run, Path(tmp))
        lat = {"pixel": _latency(pixel, prompts, args.nfe, args.guidance, args.repeats),
               "latent": _latency(latent, prompts, args.nfe, args.guidance, args.repeats)}
        # the decoder's share of the latent time
        z = latent.generate(latent.spec(solver="dpmpp_2m", nfe=args.nfe, guidance=args.guidance), args.batch,
                            prompts=prompts, decode=False)
        t = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            latent.decode(z)
            t.append(time.perf_counter() - t0)
        lat["latent"]["decode_median_s"] = statistics.median(t)
    speedup = lat["pixel"]["median_s"] / lat["latent"]["median_s"]
    print(f"latency of {args.batch} samples (dpmpp_2m NFE {args.nfe}, guidance {args.guidance}): pixel "
          f"{lat['pixel']['median_s']:.3f} s, latent {lat['latent']['median_s']:.3f} s "
          f"(decode {lat['latent']['decode_median_s']:.3f} s): {speedup:.2f}x", flush=True)
    result = {
        "autoencoder": {"path": str(args.ae), "latent_shape": list(ae.latent_shape), "scale": ae.scale,
                        "config": ae.net.config, "holdout_psnr_at_training": (ae.info.get("holdout") or {}).get("psnr"),
                        "train_cpu_s": ae.info.get("cpu_seconds"), "steps": ae.info.get("steps"), "recon": recon},
        "latent_run": {"path": str(args.latent_run), "net": latent.config.net.name, "steps": latent.config.train.steps,
                       "train_cpu_s": _cpu_json(args.latent_run)},
        "pixel_run": {"path": str(args.pixel_run) if args.pixel_run else "shapes preset net, 1 training step (latency only)",
                      "net": pixel.config.net.name, "untrained": untrained},
        "latency": {**lat, "batch": args.batch, "solver": "dpmpp_2m", "nfe": args.nfe, "guidance": args.guidance,
                    "speedup": speedup},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latent_shapes.json").write_text(json.dumps(result, indent=1) + "\n")
    l = result["latency"]
    table = "\n".join([
        "| | pixel (`shapes`) | latent (`shapes-latent`) |", "|---|---|---|",
        f"| sampling {args.batch} images, median of {args.repeats} (min-max) | {l['pixel']['median_s']:.3f} s "
        f"({l['pixel']['min_s']:.3f}-{l['pixel']['max_s']:.3f}) | {l['latent']['median_s']:.3f} s "
        f"({l['latent']['min_s']:.3f}-{l['latent']['max_s']:.3f}; decoding {l['latent']['decode_median_s']:.3f}) |",
        f"| speed-up | 1 | {speedup:.2f}x |",
        f"| autoencoder PSNR test_seen / heldout | - | {recon['test_seen']['psnr']:.2f} / {recon['heldout']['psnr']:.2f} dB |",
    ])
    (args.out / "latent_shapes.md").write_text(table + "\n")
    print(table)
    return result


if __name__ == "__main__":
    main()
