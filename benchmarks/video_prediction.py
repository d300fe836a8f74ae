"""Video prediction on moving-digits (issue 13): 4 frames given, 12 predicted, by a frames-conditioned
run (`moving-digits-predict`, one sampler pass) against three baselines: copy the last frame,
move it on at the ink centroid's last velocity, and a deterministic regressor (the same net and frame
masks trained with MSE, `noisecraft.eval.video_regressor`). Figures in docs/video.md and docs/benchmarks.md.

Clips: the moving-digits test split (400 single-digit clips of test digit images, seed 1), cut by
`real_halves` of its labels: the tuning clips come from half A, the reported ones are half B (200
clips, the clips of benchmarks/video_eval_floors.py), never used for a choice.

    # the regressor baseline (train.steps can be lowered with --steps; resume with --resume)
    PYTHONPATH=src nice -n 10 python benchmarks/video_prediction.py train-regressor --out runs/mdp-reg --steps 1500
    # solver / NFE on 24 tuning clips of half A (best-of-4 PSNR)
    PYTHONPATH=src nice -n 10 python benchmarks/video_prediction.py tune --run runs/mdp
    # 4 predictions of each reported clip (half B), saved; then the report: best-of-4 / mean-of-4, the three
    # baselines, sample GIFs (truth | sample | sample | regressor)
    PYTHONPATH=src nice -n 10 python benchmarks/video_prediction.py sample --run runs/mdp --solver dpmpp_2m --nfe 20 \
        --samples mdp-samples.safetensors
    PYTHONPATH=src nice -n 10 python benchmarks/video_prediction.py score --samples mdp-samples.safetensors \
        --regressor runs/mdp-reg --out benchmarks/results/video_prediction --gifs docs
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from noisecraft.config import load_config
from noisecraft.data import load_moving_digits
from noisecraft.eval.audio import real_halves
from noisecraft.eval.video_prediction import prediction_scores, psnr
from noisecraft.eval.video_regressor import regress
from noisecraft.train.regressor import train_regressor
from noisecraft.runs import Run
from noisecraft.sampling import seeded_generators
from noisecraft.tasks import frame_mask, inpaint_frames

KEEP = 4  # frames given
K = 4  # samples per clip (best-of-K)
CHUNK = 25  # clips per sampling batch


def _clips(half: str, n: int | None = None) -> tuple[torch.Tensor, float]:
    te = load_moving_digits(split="test")
    a, b = real_halves(te.labels)
    idx = torch.from_numpy(a if half == "A" else b)
    if n is not None:
        idx = idx[:n]
    return te.data[idx], float(te.walls[0, 1] - te.walls[0, 0])


def _predict(run: Run, clips: torch.Tensor, keep: tuple[int, ...], k: int, solver: str, nfe: int, seed: int) -> torch.Tensor:
    """(k, N, C, T, H, W): k predictions per clip; sample j of clip i uses seed + j·100000 + i."""
    den = run.denoiser("ema")
    out = torch.empty((k,) + tuple(clips.shape))
    for j in range(k):
        for s in range(0, clips.shape[0], CHUNK):
            part = clips[s : s + CHUNK]
            gens = seeded_generators(range(seed + j * 100000 + s, seed + j * 100000 + s + part.shape[0]))
            out[j, s : s + part.shape[0]] = inpaint_frames(den, part, keep, solver=solver, nfe=nfe, generator=gens)
    return out


def cmd_train_regressor(args: argparse.Namespace) -> None:
    cfg = load_config(args.config, [f"train.steps={args.steps}", "train.sample_every=0"] if args.steps else
                      ["train.sample_every=0"])
    t0 = time.process_time()
    res = train_regressor(None if args.resume else cfg, args.out, resume=args.resume)
    print(json.dumps({"steps": res.step, "samples_seen": res.samples_seen, "final_loss": res.loss,
                      "cpu_s": time.process_time() - t0, "wall_s": res.seconds,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def cmd_tune(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    run = Run.open(args.run)
    clips, span = _clips("A", args.clips)
    rows = []
    for item in args.grid.split(","):
        solver, nfe = item.split("@")
        t0 = time.process_time()
        samples = _predict(run, clips, tuple(range(KEEP)), K, solver, int(nfe), seed=1000)
        s = prediction_scores(samples, clips, KEEP, span=span)
        row = {"solver": solver, "nfe": int(nfe), "best_of_4_psnr": s["best_of_k"]["psnr"],
               "mean_of_4_psnr": s["mean_of_k"]["psnr"], "best_of_4_ssim": s["best_of_k"]["ssim"],
               "residual_median": s["trajectory_residual_median"], "cpu_s": time.process_time() - t0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    best = max(rows, key=lambda r: r["best_of_4_psnr"])
    print("chosen (best-of-4 PSNR on the tuning clips):", best["solver"], best["nfe"])


def _strip(clips: list[torch.Tensor]) -> torch.Tensor:
    """Clips (C, T, H, W) side by side with a 2-px gray gutter: (C, T, H, n·W + 2(n-1))."""
    c, t, h, _ = clips[0].shape
    gutter = torch.zeros(c, t, h, 2)
    parts = []
    for i, x in enumerate(clips):
        parts += ([gutter] if i else []) + [x]
    return torch.cat(parts, -1)


def cmd_sample(args: argparse.Namespace) -> None:
    """K predictions of every reported clip (half B), saved for `score` (the expensive part, done once)."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    run = Run.open(args.run)
    clips, _ = _clips("B", args.clips)
    t0 = time.process_time()
    samples = _predict(run, clips, tuple(range(KEEP)), K, args.solver, args.nfe, seed=args.seed)
    info = {"solver": args.solver, "nfe": args.nfe, "seed": args.seed, "run": str(args.run),
            "sample_cpu_s": time.process_time() - t0, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    save_file({"samples": samples.contiguous()}, args.samples, metadata={"info": json.dumps(info)})
    print(json.dumps(info))


def cmd_score(args: argparse.Namespace) -> None:
    from safetensors import safe_open

    torch.set_num_threads(1)
    with safe_open(args.samples, "pt") as f:
        samples, info = f.get_tensor("samples"), json.loads(f.metadata()["info"])
    clips, span = _clips("B", samples.shape[1])
    keep = tuple(range(KEEP))
    others, reg_cpu = {}, None
    if args.regressor:
        t1 = time.process_time()
        den = Run.open(args.regressor).denoiser("ema")
        others["regressor"] = torch.cat([regress(den, clips[s : s + CHUNK], frame_mask(clips.shape[1:], keep))
                                         for s in range(0, clips.shape[0], CHUNK)])
        reg_cpu = time.process_time() - t1
    s = prediction_scores(samples, clips, KEEP, span=span, others=others)
    # the spread: per-clip paired PSNR differences of best-of-4 against each baseline (mean ± standard error)
    best = np.stack([psnr(x, clips, KEEP) for x in samples]).max(0)
    from noisecraft.eval.video_prediction import PREDICTION_BASELINES

    preds = {name: fn(clips, KEEP) for name, fn in PREDICTION_BASELINES.items()} | others
    s["paired_psnr_difference"] = {}
    for name, pred in preds.items():
        d = best - psnr(pred, clips, KEEP)
        s["paired_psnr_difference"][name] = {"mean": float(d.mean()), "stderr": float(d.std(ddof=1) / np.sqrt(len(d))),
                                             "share_of_clips_better": float((d > 0).mean())}
    s["per_clip_best_of_4_psnr_std"] = float(best.std(ddof=1))
    s.update(sampling=info, regressor_cpu_s=reg_cpu)
    print(json.dumps(s, indent=1))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps(s, indent=1) + "\n")
    if args.gifs:  # truth | sample 1 | sample 2 | regressor, for the first clips of half B
        run = Run.open(info["run"])
        v = run.get_modality()
        for i in range(args.gif_clips):
            row = [clips[i], samples[0, i], samples[1, i]] + ([others["regressor"][i]] if others else [])
            v.write(_strip(row), str(Path(args.gifs) / f"video-predict-{i}.gif"))
        t = clips.shape[2]
        for i in range(args.gif_clips):  # interpolation: frames 0 and 15 kept, truth | sample 1 | sample 2
            x = _predict(run, clips[i : i + 1], (0, t - 1), 2, info["solver"], info["nfe"], seed=info["seed"])
            v.write(_strip([clips[i], x[0, 0], x[1, 0]]), str(Path(args.gifs) / f"video-interpolate-{i}.gif"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train-regressor")
    t.add_argument("--config", default="moving-digits-predict")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int)
    t.add_argument("--resume", action="store_true")
    u = sub.add_parser("tune")
    u.add_argument("--run", required=True)
    u.add_argument("--clips", type=int, default=24)
    u.add_argument("--grid", default="dpmpp_2m@10,dpmpp_2m@20,ddpm@20,ddpm@40")
    m = sub.add_parser("sample")
    m.add_argument("--run", required=True)
    m.add_argument("--solver", default="dpmpp_2m")
    m.add_argument("--nfe", type=int, default=20)
    m.add_argument("--seed", type=int, default=5000)
    m.add_argument("--samples", required=True, help="safetensors file to write")
    m.add_argument("--clips", type=int, help="only the first N clips of half B (smoke runs; default: all 200)")
    c = sub.add_parser("score")
    c.add_argument("--samples", required=True, help="the file `sample` wrote")
    c.add_argument("--regressor")
    c.add_argument("--out")
    c.add_argument("--gifs", help="folder for sample GIFs (truth | two samples | regressor; interpolation)")
    c.add_argument("--gif-clips", type=int, default=1)
    args = ap.parse_args()
    {"train-regressor": cmd_train_regressor, "tune": cmd_tune, "sample": cmd_sample, "score": cmd_score}[args.cmd](args)


if __name__ == "__main__":
    main()
