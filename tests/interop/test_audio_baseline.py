"""The building blocks of benchmarks/audio_baseline.py (the diffusers UNet1DModel peer of the notes preset):
the class input added to UNet1DModel, its guided DPM-Solver++ sampler, and the selection rules."""

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import audio_baseline as ab  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return ab.ClassUNet1D(channels=(8, 32, 32, 32), num_classes=4, length=256).eval()


def test_class_input_changes_the_output_and_leaves_no_state(tiny):
    x, t = torch.randn(2, 1, 256), torch.tensor([10, 500])
    with torch.no_grad():
        torch.nn.init.normal_(tiny.class_embed.weight)  # a trained embedding is not zero
        a = tiny(x, t, torch.tensor([0, 1]))
        b = tiny(x, t, torch.tensor([2, 4]))  # 4 = the null class
        a2 = tiny(x, t, torch.tensor([0, 1]))
    assert a.shape == (2, 1, 256)
    assert not torch.allclose(a, b)
    assert torch.equal(a, a2)
    assert tiny._emb is None  # the hook's class embedding does not outlive the call


def test_peer_sampler_is_seeded_bounded_and_guidance_matters(tiny):
    labels = torch.tensor([0, 3])
    x1 = ab.peer_sample(tiny, labels, seed=7, guidance=2.0, steps=2)
    x2 = ab.peer_sample(tiny, labels, seed=7, guidance=2.0, steps=2)
    x3 = ab.peer_sample(tiny, labels, seed=7, guidance=1.0, steps=2)
    assert x1.shape == (2, 1, 256) and x1.abs().max() <= 1
    assert torch.equal(x1, x2)
    assert not torch.allclose(x1, x3)
    # clip i comes from noise seed + i: the second clip alone with seed 8 equals the second above
    x4 = ab.peer_sample(tiny, labels[1:], seed=8, guidance=2.0, steps=2)
    assert torch.allclose(x4[0], x1[1], atol=1e-5)


def _row(folder, lr, g, fd):
    return {"recipe": "diffusers", "folder": folder, "lr": lr, "guidance": g, "fd": fd}


def test_choose_takes_the_lowest_fd_lr_then_its_best_guidance():
    rows = [_row("a", 1e-3, 2.0, 5.0), _row("b", 2e-3, 2.0, 3.0), _row("c", 4e-3, 2.0, 4.0),
            _row("b", 2e-3, 3.0, 2.5), _row("c", 4e-3, 3.0, 1.0)]  # c's better w does not change the lr
    assert ab.choose(rows) == {"lr": 2e-3, "guidance": 3.0, "folder": "b"}


def test_reach_is_the_first_checkpoint_as_good_on_every_figure():
    target = {"fd": 2.0, "accuracy": 0.5}
    ours = [{"step": 300, "fd": 1.5, "accuracy": 0.6}, {"step": 100, "fd": 1.9, "accuracy": 0.4},
            {"step": 200, "fd": 2.0, "accuracy": 0.5}]
    assert ab.reach(ours, target, ("fd", "accuracy"))["step"] == 200
    assert ab.reach(ours, target, ("fd",))["step"] == 100
    assert ab.reach(ours, {"fd": 1.0, "accuracy": 0.0}, ("fd",)) is None
