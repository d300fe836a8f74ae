"""How much noise a video run's denoiser removes at each σ, on real held-out clips.

    PYTHONPATH=src python benchmarks/video_denoise_probe.py RUN [--n 8] [--sigmas 0.05,0.1,0.2,0.5,1,2,5] [--weights ema]

For real clips x (the first n of `test_seen` for `moving-shapes`, asked for by their first caption in a text run; of
`test` for `moving-digits`, with their labels) and fresh noise (seed 0): ratio = mean (D(x + σε, σ) − x)² / σ².
Image runs of `shapes` are read too (the first n `test` images, by their first caption in a text run): a 1000-step
image run shows in a minute what a video net of the same stem does (docs/video.md).
0 means all the noise is removed; 1 means the output is the noisy input. An optimal denoiser's MSE grows
with σ; a ratio near 1 at small σ is a net that has not learned to clean fine noise (its samples keep it).
Also, at the smallest σ, the share of that error on the flat background and its correlation with the noise.
"""

from __future__ import annotations

import argparse

import torch

from noisecraft.runs import Run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--sigmas", default="0.05,0.1,0.2,0.5,1,2,5")
    p.add_argument("--weights", default="ema")
    a = p.parse_args()
    torch.set_num_threads(1)
    run = Run.open(a.run)
    den = run.denoiser(a.weights)
    source = run.config.data.source
    frames = run.config.data.options.get("frames", 16)
    if source == "moving-shapes":
        from noisecraft.data import load_moving_shapes

        ds = load_moving_shapes(split="test_seen", resolution=run.shape[-1], frames=frames, channels=run.shape[0])
        cond = run.conditioner("prompts")
        inputs = cond.sample_inputs(den.net, [c[0] for c in ds.captions[:a.n]], "cpu") if cond is not None else {}
    elif source == "moving-digits":
        from noisecraft.data import load_moving_digits

        ds = load_moving_digits(split="test", resolution=run.shape[-1], frames=frames)
        cond = run.conditioner("class_labels")
        inputs = cond.sample_inputs(den.net, cond.prepare(ds.labels[:a.n], a.n), "cpu") if cond is not None else {}
    elif source == "shapes" and len(run.shape) == 3:
        from noisecraft.data import load_shapes

        ds = load_shapes(split="test", resolution=run.shape[-1], channels=run.shape[0])
        cond = run.conditioner("prompts")
        inputs = cond.sample_inputs(den.net, [c[0] for c in ds.captions[:a.n]], "cpu") if cond is not None else {}
    else:
        raise SystemExit(f"{a.run} trains on {source!r}; this probe reads moving-shapes, moving-digits or shapes runs")
    x = ds.data[:a.n]
    gen = torch.Generator().manual_seed(0)
    print(f"{a.run} ({source}, {a.weights} weights, {a.n} clips)")
    for i, s in enumerate(float(v) for v in a.sigmas.split(",")):
        noise = torch.randn(x.shape, generator=gen)
        with torch.no_grad():
            err = den(x + s * noise, torch.full((a.n,), s), **inputs) - x
        line = f"sigma {s:g}: MSE {err.pow(2).mean().item():.5f}, ratio {err.pow(2).mean().item() / s**2:.3f}"
        if i == 0:
            flat = ((x - x[..., :1, :1]).abs().sum(1, keepdim=True) < 1e-6).expand_as(err)  # the corner's colour
            corr = torch.corrcoef(torch.stack([err.flatten(), noise.flatten()]))[0, 1].item()
            line += (f"; background ratio {err[flat].pow(2).mean().item() / s**2:.3f} ({flat.float().mean().item():.0%} "
                     f"of pixels), correlation of the error with the noise {corr:.2f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
