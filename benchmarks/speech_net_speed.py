"""Training cost per clip of 1-D U-Net layouts for the spoken-digits clips (1 x 8192 samples):
clips per CPU-second of one training step (forward, MSE backward, Adam), batch 16, 10 classes,
one torch thread; 1 warm-up step, then `--steps` timed steps on process CPU time.

    PYTHONPATH=src python benchmarks/speech_net_speed.py [--steps 20] [--out benchmarks/results]

Layouts: the first spoken-digits preset (8 levels from the full rate, 16 channels at 8192 and 4096
samples) and patch-stem nets (`patch_size`: p samples become channels before the first conv).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, machine_markdown, write_outputs  # noqa: E402
from noisecraft.nets import build_net  # noqa: E402

LAYOUTS: dict[str, dict] = {
    # The patched rows attend in the middle only: what was measured (a bug, since fixed, kept their
    # [128, 64] level attention from being built; docs/audio.md).
    "8 levels, no patches (first preset)": dict(channel_mult=[1, 1, 2, 2, 2, 4, 4, 4], attn_resolutions=[128, 64]),
    "patch 4, 6 levels [2,2,4,4,4,4]": dict(patch_size=4, channel_mult=[2, 2, 4, 4, 4, 4], attn_resolutions=[]),
    "patch 8, 5 levels [2,4,4,4,4] (preset)": dict(patch_size=8, channel_mult=[2, 4, 4, 4, 4], attn_resolutions=[]),
    "patch 8, 5 levels [4,4,4,8,8]": dict(patch_size=8, channel_mult=[4, 4, 4, 8, 8], attn_resolutions=[]),
    "patch 16, 4 levels [4,4,8,8]": dict(patch_size=16, channel_mult=[4, 4, 8, 8], attn_resolutions=[]),
}


def clips_per_cpu_second(overrides: dict, steps: int, batch: int = 16) -> tuple[int, float]:
    torch.manual_seed(0)
    net = build_net("unet-small", in_channels=1, resolution=8192, num_classes=10, dims=1, **overrides)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x, c, y = torch.randn(batch, 1, 8192), torch.randn(batch), torch.randint(0, 10, (batch,))
    for i in range(steps + 1):
        if i == 1:
            start = time.process_time()
        loss = (net(x, c, y) - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return sum(p.numel() for p in net.parameters()), steps * batch / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, data = [], {"machine": machine_info(), "steps": args.steps, "layouts": {}}
    for name, overrides in LAYOUTS.items():
        params, rate = clips_per_cpu_second(overrides, args.steps)
        data["layouts"][name] = {"overrides": overrides, "params": params, "clips_per_cpu_s": rate}
        rows.append(f"| {name} | {params / 1e6:.2f}M | {rate:.1f} |")
        print(rows[-1], flush=True)
    md = "\n".join(["# Spoken-digits net layouts: training clips per CPU-second", "", machine_markdown(data["machine"]), "",
                    f"Batch 16, {args.steps} timed steps after 1 warm-up, one thread.", "",
                    "| layout | parameters | clips / CPU-s |", "|---|---|---|", *rows, ""])
    write_outputs(args.out, "speech_net_speed", md, data)


if __name__ == "__main__":
    main()
