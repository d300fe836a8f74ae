"""CPU seconds per training step of the pixel `shapes` and the latent `shapes-latent` presets, measured
back to back in one process (so both see the same machine load), alternating A B A B.

    python benchmarks/latent_step_cost.py --ae runs/shapes-ae [--steps 100] [--rounds 2]

Each measurement trains a fresh run for `warmup + steps` steps and times the last `steps` with the
process CPU clock (setup, data loading and encoding excluded). Prints and writes
benchmarks/out/latent_step_cost.json. Use it to put recorded full-run CPU times, taken under other
machine loads, on one scale.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _per_step(preset: str, sets: list[str], steps: int, warmup: int, tmp: Path) -> float:
    from noisecraft.config import load_config
    from noisecraft.train import train

    cfg = load_config(preset, [*sets, f"train.steps={warmup + steps}", "train.checkpoint_every=100000",
                               "ema.phema_every=0", "train.tensorboard=false"])
    marks: dict[int, float] = {}
    train(cfg, tmp, progress=False, on_step=lambda s, _: marks.__setitem__(s, _cpu()))
    return (marks[warmup + steps] - marks[warmup]) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ae", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args()
    torch.set_num_threads(1)
    res: dict[str, list[float]] = {"pixel": [], "latent": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            res["pixel"].append(_per_step("shapes", [], args.steps, args.warmup, Path(tmp) / f"p{r}"))
            res["latent"].append(_per_step("shapes-latent", [f"latent.autoencoder={args.ae}"], args.steps, args.warmup,
                                           Path(tmp) / f"l{r}"))
            print({k: [round(v, 4) for v in vs] for k, vs in res.items()}, flush=True)
    out = {k: {"per_step_cpu_s": vs, "median": statistics.median(vs)} for k, vs in res.items()}
    out["ratio_latent_over_pixel"] = out["latent"]["median"] / out["pixel"]["median"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latent_step_cost.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
