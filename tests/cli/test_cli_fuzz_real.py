"""The fuzz's valid templates without its stubs (tests/cli/test_cli_fuzz.py replaces training and
sampling by a stub; its module-scoped stubs would also cover a test in that file, hence this one):
`train` and then `sample` on the run it wrote really work, with the templates' own arguments."""

from __future__ import annotations

import torch
from PIL import Image

from cli_helpers import run
from test_cli_fuzz import TEMPLATES


def test_train_and_sample_templates_run_for_real(tmp_path):
    out = tmp_path / "run"
    train_args = [str(out) if a == "OUT" else a for a in TEMPLATES["train"]]
    result = run(*train_args, "--steps", 2, "--set", "train.batch_size=8", "--set", "sample.nfe=2",
                 "--set", "sample.per_class=1", "--set", "ema.phema_every=0", "--quiet")
    assert result.exit_code == 0, result.output
    assert (out / "run.json").is_file() and (out / "checkpoints").is_dir(), sorted(p.name for p in out.iterdir())

    images = tmp_path / "samples"
    sample_args = [str(out) if a == "RUN" else str(images) if a == "OUT" else a for a in TEMPLATES["sample"]]
    result = run(*sample_args, "--nfe", 2, "--seed", 1)
    assert result.exit_code == 0, result.output
    pngs = sorted(images.glob("*.png"))
    assert len([p for p in pngs if "grid" not in p.name]) == 2, [p.name for p in pngs]
    pixels = torch.tensor(list(Image.open(pngs[0]).getdata()), dtype=torch.float64)
    assert pixels.std() > 0  # a real sample, not a blank image
