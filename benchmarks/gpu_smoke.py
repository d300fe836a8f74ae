"""GPU check: CUDA training, sampling and resume smoke test, and timings against diffusers on the same GPU.

    python benchmarks/gpu_smoke.py --out benchmarks/out/gpu        # needs a CUDA GPU

What it runs (one short script, a few minutes on one H100):
1. the digits demo recipe (configs/digits.toml, unet-small) trained on `cuda`; samples/s and wall time,
   then 1000 CFG samples drawn on the GPU and judged by the eval suite's digits classifier;
2. determinism: the tiny recipe trained twice on the GPU (bitwise equal or not) and once on the CPU
   (max |Δ| of the final weights CPU vs GPU) - the documented GPU tolerance;
3. sampling speed next to the peer: one diffusers UNet2DModel (3x32x32, batch 64), 20 steps of
   diffusers' DPMSolverMultistepScheduler loop vs noisecraft's `sample(..., solver="dpmpp_2m", nfe=20)`
   through `from_diffusers` - same network, same GPU, medians of 7 runs after warm-up.
Writes gpu_smoke.json and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


DEVICE = "cuda"  # --device cpu runs the same script on a CPU (to check the script itself)


def _sync() -> None:
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def train_digits(out: Path, steps: int) -> dict:
    from noisecraft.eval.evaluate import build_reference, default_extractor, evaluate_samples
    from noisecraft.data import load_dataset
    from noisecraft.train import loop
    from noisecraft.config import load_config
    from noisecraft.runs import Run

    cfg = load_config("digits", [f"train.steps={steps}", f"train.device='{DEVICE}'", "train.threads=4"])
    t0 = time.perf_counter()
    res = loop.train(cfg, out / "digits-cuda", progress=False)
    wall = time.perf_counter() - t0
    run = Run.open(res.run_dir)
    run.denoiser(device=DEVICE)  # load the weights before timing
    labels = torch.arange(1000) % 10
    _sync()
    t1 = time.perf_counter()
    x = run.generate(run.spec(seed=0), 1000, device=DEVICE, batch_size=1000, class_labels=labels)
    _sync()
    sample_s = time.perf_counter() - t1
    ext = default_extractor("digits", resolution=16)
    test = load_dataset("digits", resolution=16, split="test")
    ref = build_reference(test.images, ext, use_cache=False, metrics=("fd", "acc"))
    m = evaluate_samples(x.clamp(-1, 1), ref, labels=labels, metrics=("fd", "acc"))
    rows = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"steps": res.step, "batch": cfg.train.batch_size, "train_wall_s": wall, "train_seconds_in_loop": res.seconds,
            "median_samples_per_s": statistics.median(r["samples_per_s"] for r in rows[1:]),
            "final_loss": res.loss, "sample_1000_s": sample_s, "accuracy": m.get("accuracy"), "fd": m.get("fd")}


def determinism(out: Path) -> dict:
    from noisecraft.train import loop
    from noisecraft.config import load_config
    from noisecraft.runs import Run

    def run(name: str, device: str) -> dict:
        cfg = load_config("tiny", ["train.steps=50", f"train.device='{device}'", "train.tensorboard=false"])
        loop.train(cfg, out / name, progress=False)
        den = Run.open(out / name).denoiser("raw")
        return {k: v.detach().cpu() for k, v in den.net.state_dict().items()}

    a, b, c = run("gpu-a", DEVICE), run("gpu-b", DEVICE), run("cpu", "cpu")
    bitwise = all(torch.equal(a[k], b[k]) for k in a)
    max_gpu_gpu = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    max_cpu_gpu = max(float((a[k].float() - c[k].float()).abs().max()) for k in a)
    scale = max(float(c[k].float().abs().max()) for k in c)
    return {"steps": 50, "gpu_runs_bitwise_equal": bitwise, "max_abs_diff_gpu_gpu": max_gpu_gpu,
            "max_abs_diff_cpu_gpu": max_cpu_gpu, "max_abs_weight": scale}


def sampling_vs_diffusers(repeats: int = 7, batch: int = 64) -> dict:
    from diffusers import DPMSolverMultistepScheduler, UNet2DModel

    from noisecraft.interop import from_diffusers
    from noisecraft.sampling import sample

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128),
                       layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")).to(DEVICE).eval()
    sched = DPMSolverMultistepScheduler(num_train_timesteps=1000)
    den = from_diffusers(unet, sched)
    x_T = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(DEVICE)

    @torch.no_grad()
    def peer() -> torch.Tensor:
        sched.set_timesteps(20)
        x = x_T * sched.init_noise_sigma
        for t in sched.timesteps:
            eps = unet(x, t).sample
            x = sched.step(eps, t, x).prev_sample
        return x

    @torch.no_grad()
    def ours() -> torch.Tensor:
        return sample(den, x_T, solver="dpmpp_2m", nfe=20)

    def timed(fn) -> list[float]:
        fn()
        _sync()
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync()
            out.append(time.perf_counter() - t0)
        return out

    tp, to = [], []
    for _ in range(2):  # interleave so clocks/thermals affect both alike
        tp += timed(peer)
        to += timed(ours)
    mp, mo = statistics.median(tp), statistics.median(to)
    return {"net_params": sum(p.numel() for p in unet.parameters()), "batch": batch, "steps": 20,
            "diffusers_dpmsolver_s": mp, "noisecraft_dpmpp_2m_s": mo, "ratio_noisecraft_over_diffusers": mo / mp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/gpu"))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (to test the script)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=64, help="batch of the sampling comparison")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE != "cpu" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU here; this script is the GPU check (CPU figures: docs/benchmarks.md)")
    if DEVICE == "cpu":
        torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    import diffusers

    report = {"device": torch.cuda.get_device_name(0) if DEVICE != "cpu" else "cpu", "torch": torch.__version__, "diffusers": diffusers.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parts = (("train_digits", lambda: train_digits(tmp, args.steps)), ("determinism", lambda: determinism(tmp)),
                 ("sampling_vs_diffusers", lambda: sampling_vs_diffusers(args.repeats, args.batch)))
        for name, fn in parts:
            t0 = time.perf_counter()
            try:
                report[name] = fn()
            except Exception as e:  # noqa: BLE001 - report every part even when one fails
                report[name] = {"error": f"{type(e).__name__}: {e}"}
            report[name]["part_seconds"] = time.perf_counter() - t0
            print(name, json.dumps(report[name]), flush=True)
    (args.out / "gpu_smoke.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
