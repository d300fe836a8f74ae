"""The moving-shapes video judge on real clips (its floor) and on corruptions each attribute must catch.

    PYTHONPATH=src nice -n 10 python benchmarks/moving_shapes_judge.py [--side 32] [--frames 16] [--floors-only]

Real clips: the "heldout" (360, the 18 held-out triples) and "test_seen" (324) splits. Corruptions of
the held-out clips, each re-drawn from the same scene parameters (`moving_shapes_scenes`) or made from
the clips' frames:
  colour swapped   the same clip drawn in another palette colour (same jitter, path, shape)
  shape swapped    the same clip drawn as another shape (same size parameter, colour, path)
  reversed         frames in reverse order (a linear motion becomes its opposite; a bounce stays a bounce)
  frozen           every frame is the first one
  half frozen      the second half repeats the middle frame
  shuffled         frames in a random order (never the identity)
  noise 0.1        Gaussian pixel noise of std 0.1 (5 % of the range) added: should still pass
Prints one JSON line per row and a markdown table (follow rates: colour, shape, motion, all three),
then the CPU seconds. Figures in docs/benchmarks.md and docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections import Counter

import numpy as np
import torch

from noisecraft.data.dataset import to_unit_range
from noisecraft.data.moving_shapes import MOTIONS, load_moving_shapes, moving_shapes_scenes, render_moving_shapes
from noisecraft.data.shapes import _MAX_ANGLE, PALETTE
from noisecraft.eval.moving_shapes_judge import follow_rates, read_moving_shapes
from noisecraft.eval.video_features import shuffle_frames


def variants(side: int, frames: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """{name: clips} for the held-out split and its corruptions, and the split's (N, 3) attributes."""
    sc = moving_shapes_scenes("heldout", frames=frames)
    real = load_moving_shapes(split="heldout", resolution=side, frames=frames).data
    draw = lambda s: to_unit_range(torch.from_numpy(render_moving_shapes(**s, resolution=side)))  # noqa: E731
    assert torch.equal(draw(sc), real)  # the scene parameters are the split's clips
    rng = np.random.RandomState(7)
    attrs = sc["attributes"]
    n, t = len(attrs), frames
    other_c = (attrs[:, 0] + rng.randint(1, 6, size=n)) % 6
    recoloured = {**sc, "rgb": np.clip(sc["rgb"] - PALETTE[attrs[:, 0]] + PALETTE[other_c], 0, 255)}
    other_s = (attrs[:, 1] + rng.randint(1, 3, size=n)) % 3
    max_old = np.array([_MAX_ANGLE[s] for s in attrs[:, 1]])
    max_new = np.array([_MAX_ANGLE[s] for s in other_s])
    angle = np.where(max_old > 0, sc["angle"] / np.maximum(max_old, 1e-9) * max_new, 0.0)  # same draw, new range
    reshaped = {**sc, "attributes": np.stack([attrs[:, 0], other_s, attrs[:, 2]], 1), "angle": angle}
    frozen = real[:, :, :1].expand_as(real).clone()
    half = real.clone()
    half[:, :, t // 2:] = real[:, :, t // 2:t // 2 + 1]
    g = torch.Generator().manual_seed(5)
    noisy = (real + 0.1 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    out = {"real (held-out)": real, "noise 0.1": noisy, "colour swapped": draw(recoloured),
           "shape swapped": draw(reshaped), "reversed": real.flip(2), "frozen": frozen, "half frozen": half,
           "shuffled": shuffle_frames(real, g)}
    return out, attrs


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--floors-only", action="store_true", help="only the real clips (test_seen, held-out)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cpu0 = time.process_time()
    rows = {}
    seen = load_moving_shapes(split="test_seen", resolution=args.side, frames=args.frames)
    clips, attrs = variants(args.side, args.frames)
    linear = attrs[:, 2] < MOTIONS.index("bounce-vertical")
    sets = {"real (test_seen)": (seen.data, np.array([[a["color"], a["shape"], a["motion"]] for a in seen.attributes])),
            **{k: (v, attrs) for k, v in clips.items() if not args.floors_only or k.startswith("real")}}
    for name, (x, a) in sets.items():
        c = time.process_time()
        reading = read_moving_shapes(x)
        row = follow_rates(x, a, reading)
        row["n"] = int(x.shape[0])
        if name in ("reversed",):  # a reversed bounce is still a bounce: split the motion rate
            hit = reading.motion == a[:, 2]
            row["motion_linear"], row["motion_bouncing"] = float(hit[linear].mean()), float(hit[~linear].mean())
        row["reasons"] = dict(Counter(reading.motion_reason))
        row["residual_p90"] = float(np.nanpercentile(reading.motion_residual, 90))
        row["cpu_s"] = round(time.process_time() - c, 1)
        rows[name] = row
        print(json.dumps({"set": name, **row}), flush=True)
    lines = ["| clips | n | colour | shape | motion | all three | motion readings |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        motion = f"{r['motion']:.3f}"
        if "motion_linear" in r:
            motion += f" (linear {r['motion_linear']:.3f}, bouncing {r['motion_bouncing']:.3f})"
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
        lines.append(f"| {name} | {r['n']} | {r['color']:.3f} | {r['shape']:.3f} | {motion} | {r['all']:.3f} | {reasons} |")
    print("\n".join(lines))
    total = time.process_time() - cpu0
    print(f"side {args.side}, frames {args.frames}: total cpu {total:.1f} s, peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return rows


if __name__ == "__main__":
    main()
