"""Does a short text run learn its prompts? The colour-steering statistic for small-encoder settings.

    python benchmarks/text_encoder_lr.py NAME STEPS [KEY=VALUE ...]
    python benchmarks/text_encoder_lr.py lr1 1000 text.dim=128 text.heads=4 text.depth=2
    python benchmarks/text_encoder_lr.py lr01 1000 text.dim=128 text.heads=4 text.depth=2 text.lr_scale=0.1

Trains the `tiny` net on 600 captioned 8x8 `shapes` scenes (batch 16, lr 3e-3 cosine, caption dropout
0.1, the small text encoder; overrides after STEPS), then samples 12 images from the same noise for
"a red {circle,square,triangle}" and for "a blue ..." (unipc_3 NFE 10, guidance 3, EMA weights) and
prints steer = mean(R - B | red prompts) - mean(R - B | blue prompts), next to the same for the
untrained net (exactly 0: its output layers start at zero), and the encoder's word rank: the
participation ratio (sum λ)^2 / sum λ^2 of the covariance eigenvalues of its (EMA) context at the
colour word of "a {red,blue,green,yellow,magenta,cyan} circle": 5 = six colours in independent
directions, 1 = all on one line (the collapse), 0 = one vector. A net that ignores its prompt scores steer ~0; the slow test tests/train/test_text_training.py::test_prompts_steer_colour_after_a_short_run
uses this statistic with the tiny encoder (dim 16, depth 1). Used for issue 11 item 8 (the small
encoder collapsing when trained at the net's learning rate); results in the issue notes.
"""

from __future__ import annotations

import sys
import time

import torch

from noisecraft.conditioning import TextPrompts
from noisecraft.conditioning.text import find_text_conditioner
from noisecraft.config import load_config
from noisecraft.data.shapes import load_shapes
from noisecraft.runs import Run, build_denoiser, generate
from noisecraft.sampling import SamplingSpec
from noisecraft.train import build_net, train


def word_rank(conditioner, words: tuple[str, ...] = ("red", "blue", "green", "yellow", "magenta", "cyan")) -> float:
    """Participation ratio of the contexts at the word position of "a WORD circle" over `words`."""
    with torch.no_grad():
        context, _ = conditioner.encode([f"a {w} circle" for w in words])
    x = context[:, 2].double()  # (W, dim): [bos] a WORD circle [eos]
    lam = torch.linalg.svdvals(x - x.mean(0)).square()  # covariance eigenvalues (unnormalised)
    return float(lam.sum() ** 2 / lam.square().sum()) if lam.sum() > 1e-12 else 0.0


def main(argv: list[str]) -> None:
    name, steps, *over = argv
    base = ["data.source=shapes", "data.resolution=8", "data.conditional=false", "text.encoder=small", "text.dim=16",
            "text.depth=1", "text.heads=2", "text.max_length=24", "train.batch_size=16", "train.accum_steps=1",
            f"train.steps={steps}", "train.checkpoint_every=100000", "train.log_every=50", "ema.phema_every=0",
            "sample.per_class=2", "sample.nfe=2", "optim.lr=3e-3", "optim.decay=cosine", "optim.warmup_steps=20",
            "text.caption_dropout=0.1", "train.sample_every=0", "train.tensorboard=false"]
    cfg = load_config("tiny", base + over)
    data = load_shapes(split="train", num_images=600, resolution=8, labels=False)
    t = time.process_time()
    out = f"/tmp/text_encoder_lr-{name}"
    train(cfg, out, dataset=data, progress=False)
    run = Run.open(out)
    init = build_denoiser(build_net(cfg, (3, 8, 8), [TextPrompts.for_training(cfg, data)]), cfg)
    spec = SamplingSpec(nfe=10, guidance=3.0, seed=7)

    def red_minus_blue(den, colour: str) -> float:
        prompts = [f"a {colour} {s}" for s in ("circle", "square", "triangle") for _ in range(4)]
        x = generate(den, len(prompts), (3, 8, 8), spec, run.conditioners, {"prompts": prompts})
        return float((x[:, 0] - x[:, 2]).mean())

    trained = run.denoiser("ema")
    steer = red_minus_blue(trained, "red") - red_minus_blue(trained, "blue")
    untrained = red_minus_blue(init, "red") - red_minus_blue(init, "blue")
    rank = word_rank(find_text_conditioner(trained))
    print(f"{name} steps {steps} {over}: {time.process_time() - t:.0f} CPU-s, steer {steer:.3f}, untrained {untrained:.3f}, "
          f"word rank {rank:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
