"""Device selection: train.device / --device, checked before anything is read or written.

CPU-only machines (CI) check the refusals and that "auto" is the CPU path bit for bit; the CUDA
tests run only where a GPU is present (see benchmarks/gpu_smoke.py for the GPU check script)."""

from __future__ import annotations

import pytest
import torch

from noisecraft.runtime import DeviceError, resolve_device
from noisecraft.train import loop
from noisecraft.config import ConfigError
from noisecraft.runs import Run

from noisecraft.cli.main import cli

from click.testing import CliRunner

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", ""])
def test_bad_device_names_are_refused_in_config(tiny_config, name):
    with pytest.raises(ConfigError, match="train.device"):
        tiny_config(f"train.device={name!r}").validate()


def test_resolve_device_names_the_value():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="'mps'"):
        resolve_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_on_a_cpu_machine_fails_before_the_run_folder_exists(tmp_path, tiny_config, small_ds):
    out = tmp_path / "run"
    with pytest.raises(DeviceError, match="CUDA is not available"):
        loop.train(tiny_config("train.device='cuda'"), out, progress=False, dataset=small_ds)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cli_device_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["train", "tiny", "--out", str(tmp_path / "r"), "--device", "cuda", "--quiet"])
    assert res.exit_code == 2 and "CUDA is not available" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["train", "tiny", "--out", str(tmp_path / "r"), "--device", "gpu", "--quiet"])
    assert res.exit_code == 2 and "train.device" in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="'auto' is the CPU only without CUDA")
def test_auto_is_the_cpu_run_bitwise(tmp_path, tiny_config, small_ds):
    a = loop.train(tiny_config("train.steps=3"), tmp_path / "a", progress=False, dataset=small_ds)
    b = loop.train(tiny_config("train.steps=3", "train.device='auto'"), tmp_path / "b", progress=False, dataset=small_ds)
    da = Run.open(a.run_dir).denoiser()
    db = Run.open(b.run_dir).denoiser(device="auto")
    for (n, p), (_, q) in zip(da.net.state_dict().items(), db.net.state_dict().items()):
        assert torch.equal(p, q), n


@needs_cuda
def test_cuda_training_resumes_and_samples(tmp_path, tiny_config, small_ds):
    cfg = tiny_config("train.steps=4", "train.checkpoint_every=2", "train.device='cuda'")
    full = loop.train(cfg, tmp_path / "full", progress=False, dataset=small_ds)
    loop.train(cfg, tmp_path / "part", stop_at=2, progress=False, dataset=small_ds)
    part = loop.train(None, tmp_path / "part", resume=True, progress=False, dataset=small_ds)
    assert part.step == full.step == 4
    saved = Run.open(full.run_dir)
    x = saved.generate(saved.spec(guidance=2.0, solver="heun", nfe=5), 4, class_labels=1, device="cuda")
    assert x.device.type == "cpu" and torch.isfinite(x).all()
