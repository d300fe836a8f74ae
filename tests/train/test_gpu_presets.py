"""The image-folder presets for GPUs (folder32-unet, folder64-unet, folder32-dit-s, folder64-dit-b):
they need data.source, build the documented network, and train on the CPU with the preset's own
settings (bf16 autocast included) at batch 2.

The fast tests run two real training steps (`train_step` + `apply_update`: AdamW, EMA, post-hoc EMA)
without a run folder: a checkpoint of these nets is 1-2 GB (weights, EMA and Adam moments), so the
full CLI run (with checkpoint, post-hoc EMA snapshot and a sample grid) is the slow test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.config import ConfigError, load_config
from noisecraft.train.distributed import World
from noisecraft.train.loop import _new_state, _setup
from noisecraft.train.step import apply_update, train_step
from noisecraft.runs.run import build_denoiser

# preset -> (architecture, resolution, parameters at 3 channels, unconditional), measured with
# sum(p.numel()) and quoted in docs/training.md and the TOML headers
PRESETS = {
    "folder32-unet": ("unet", 32, 57_493_763),
    "folder64-unet": ("unet", 64, 63_135_619),
    "folder32-dit-s": ("dit", 32, 32_471_436),
    "folder64-dit-b": ("dit", 64, 129_583_920),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four random 70x70 RGB PNGs (larger than 64: the loader resizes and crops)."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (70, 70, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_refuses_to_run_without_data_source(preset):
    with pytest.raises(ConfigError, match=r"^data.source is not set: .*--set data.source=PATH") as e:
        load_config(preset)
    assert "\n" not in str(e.value)


def test_cli_refuses_without_data_source_in_one_line(tmp_path):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    result = CliRunner().invoke(cli, ["train", "folder32-unet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: data.source is not set"), lines
    assert "--set data.source=PATH" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_builds_its_net_and_trains_two_steps_on_cpu(preset, folder, tmp_path):
    arch, resolution, params = PRESETS[preset]
    cfg = load_config(preset, [f"data.source={folder}", "train.batch_size=2", "train.steps=2", "train.device=cpu"])
    assert cfg.train.bf16 and cfg.data.resolution == resolution and cfg.process.prediction == "edm"
    torch.manual_seed(0)
    s = _setup(cfg, tmp_path / "run", None, None, None, progress=False, write=False)
    assert not (tmp_path / "run").exists()
    assert s.net.config["name"] == arch and tuple(s.shape) == (3, resolution, resolution)
    count = sum(p.numel() for p in s.net.parameters())
    assert count == params, count
    if arch == "unet":
        assert 35e6 <= count <= 65e6  # the ADM/EDM CIFAR-size U-Net
    state = _new_state(s, torch.device("cpu"))
    denoiser = build_denoiser(state.net, cfg).train()
    before = [p.detach().clone() for p in state.net.parameters()]
    ema_before = [p.detach().clone() for p in state.ema.module.parameters()]
    with torch.no_grad():  # the untrained nets output exactly zero (zero-initialised last layers)
        assert state.net(torch.zeros(1, *s.shape), torch.zeros(1)).abs().max() == 0
    world = World()  # one process
    for _ in range(2):
        loss, norm, lr = train_step(state, cfg, s.dataset, denoiser, s.loss, s.conditioners, torch.device("cpu"),
                                    world, None)
        assert np.isfinite(loss) and loss > 0 and np.isfinite(norm) and norm > 0
        apply_update(state, cfg.train.batch_size)
    assert state.step == 2 and state.samples_seen == 4
    # The output layer starts at zero, so step 1 trains only it; step 2 reaches the zero-initialised
    # last layer of every block (the rest follows from step 3 on).
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in state.net.parameters())
    live = sum(bool(p.grad.abs().max() > 0) for p in state.net.parameters())
    assert live >= (len(before) // 8 if arch == "unet" else 2 + 2 * cfg.net.overrides["depth"]), live
    assert any(not torch.equal(a, b) for a, b in zip(before, state.net.parameters()))
    with torch.no_grad():
        assert state.net(torch.zeros(1, *s.shape), torch.zeros(1)).abs().max() > 0
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, state.ema.module.parameters()))
    assert all(torch.isfinite(p).all() for p in state.net.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_cli_trains_two_steps_into_a_run_folder(preset, folder, tmp_path):
    """The documented torchrun command (one process), shrunk to 2 steps of batch 2 on the CPU (1-4 GB written per run)."""
    out = tmp_path / "run"
    sets = [f"data.source={folder}", "train.batch_size=2", "train.steps=2", "train.device=cpu",
            "sample.solver=euler", "sample.nfe=1", "sample.per_class=1", "train.tensorboard=false"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "noisecraft",
           "train", preset, "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "checkpoints" / "ckpt-00000002" / "COMPLETE").is_file()
    shutil.rmtree(out)  # gigabytes
