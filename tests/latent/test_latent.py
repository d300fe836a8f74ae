"""Latent diffusion: the KL autoencoder (training, latent scale, safe save/load, resume) and latent runs
(train/sample/resume through the ordinary trainer, latent inpainting keeping known pixels, one-line
errors for a missing or incompatible autoencoder). Tiny nets on 8x8 synthetic images, CPU, fixed seeds."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from noisecraft.config import load_config
from noisecraft.data import ImageDataset
from noisecraft.latent import Autoencoder, AutoencoderError, latent_inpaint, latent_known_mask
from noisecraft.runs import Run, RunError
from noisecraft.sampling import seeded_generators
from noisecraft.train import train
from noisecraft.train.autoencoder import AutoencoderTrainConfig, reconstruction_psnr, train_autoencoder

AE_CFG = AutoencoderTrainConfig(downsample=2, latent_channels=4, channels=8, steps=60, batch_size=16, lr=3e-3,
                                warmup_steps=5, holdout=16, checkpoint_every=20)


def blobs(n: int = 160, seed: int = 0) -> ImageDataset:
    """n RGB 8x8 images: a coloured square on a dark background, random place, size and colour."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, 8, 8), -0.8)
    for i in range(n):
        s = int(torch.randint(2, 5, (), generator=g))
        r, c = (int(v) for v in torch.randint(0, 9 - s, (2,), generator=g))
        x[i, :, r:r + s, c:c + s] = (torch.rand(3, 1, 1, generator=g) * 2 - 1)
    return ImageDataset(x, name="blobs")


@pytest.fixture(scope="module")
def data() -> ImageDataset:
    return blobs()


@pytest.fixture(scope="module")
def ae_dir(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("ae") / "ae"
    train_autoencoder(None, out, AE_CFG, dataset=data, progress=False)
    return out


def _state(module: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def cli(*args):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli as main

    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> None:
    """Exit status 2 and one line `error: ...` holding every fragment."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# -- the autoencoder ----------------------------------------------------------------------------

def test_training_reduces_reconstruction_error_vs_untrained(ae_dir, data):
    trained = Autoencoder.open(ae_dir)
    untrained = train_autoencoder(None, ae_dir.parent / "untrained", AE_CFG, dataset=data, stop_at=0, progress=False)
    held = data.data[:32]
    a, b = reconstruction_psnr(trained, held), reconstruction_psnr(untrained, held)
    assert a["psnr"] > b["psnr"] + 5, (a, b)
    info = json.loads((ae_dir / "autoencoder.json").read_text())
    assert info["holdout"]["n"] == 16 and info["holdout"]["psnr"] > b["psnr"] + 5
    assert info["latent_shape"] == [4, 4, 4] and info["data_shape"] == [3, 8, 8]


def test_latent_scale_gives_unit_variance_on_the_training_images(ae_dir, data):
    from noisecraft.train.autoencoder import _split

    ae = Autoencoder.open(ae_dir)
    train_idx, held = _split(len(data), AE_CFG.holdout, AE_CFG.seed)
    z = ae.encode(data.data[train_idx])
    assert z.shape == (len(train_idx), 4, 4, 4)
    assert float(z.double().std()) == pytest.approx(1.0, abs=1e-5)
    assert ae.scale != pytest.approx(1.0, abs=1e-3)  # the raw latents were not unit-variance already


def test_save_and_open_are_exact_and_safe(ae_dir, data, tmp_path):
    ae = Autoencoder.open(ae_dir)
    copy = Autoencoder.open(ae.save(tmp_path / "copy"))
    x = data.data[:8]
    assert torch.equal(ae.encode(x), copy.encode(x)) and torch.equal(ae.decode(ae.encode(x)), copy.decode(copy.encode(x)))
    assert copy.sha256 == ae.sha256 and copy.scale == ae.scale
    # a pickle in place of the weights is refused without being unpickled
    bad = tmp_path / "pickled"
    ae.save(bad)
    (bad / "autoencoder.safetensors").write_bytes(pickle.dumps({"w": torch.zeros(1)}))
    with pytest.raises(AutoencoderError, match="pickle"):
        Autoencoder.open(bad)
    with pytest.raises(AutoencoderError, match="is not the one"):
        Autoencoder.open(ae_dir, sha256="0" * 64)
    with pytest.raises(AutoencoderError, match="does not exist"):
        Autoencoder.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AutoencoderError, match="not a noisecraft autoencoder"):
        Autoencoder.open(tmp_path / "empty")


def test_autoencoder_training_resumes_bitwise(data, tmp_path):
    cfg = AutoencoderTrainConfig(**{**AE_CFG.__dict__, "steps": 12, "checkpoint_every": 6})
    straight = train_autoencoder(None, tmp_path / "a", cfg, dataset=data, progress=False)
    train_autoencoder(None, tmp_path / "b", cfg, dataset=data, stop_at=6, progress=False)
    resumed = train_autoencoder(None, tmp_path / "b", None, dataset=data, resume=True, progress=False)
    a, b = _state(straight.net), _state(resumed.net)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.scale == straight.scale


# -- latent runs --------------------------------------------------------------------------------

def _latent_cfg(ae_dir, steps: int = 8):
    return load_config("tiny", [f"latent.autoencoder={ae_dir}", "data.conditional=false", f"train.steps={steps}",
                                "train.checkpoint_every=4", "process.sigma_data=1.0", "sample.nfe=3"])


def test_latent_run_trains_samples_and_resumes_bitwise(ae_dir, data, tmp_path):
    cfg = _latent_cfg(ae_dir)
    train(cfg, tmp_path / "a", dataset=data, progress=False)
    train(cfg, tmp_path / "b", dataset=data, stop_at=4, progress=False)
    train(None, tmp_path / "b", dataset=data, resume=True, progress=False)
    a, b = Run.open(tmp_path / "a"), Run.open(tmp_path / "b")
    for w in ("raw", "ema"):
        sa, sb = _state(a.denoiser(w).net), _state(b.denoiser(w).net)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.is_latent and a.shape == (4, 4, 4) and a.data_shape == (3, 8, 8)
    assert (tmp_path / "a" / "autoencoder" / "autoencoder.safetensors").is_file()  # the run keeps its own copy
    spec = a.spec(seed=3)
    x = a.generate(spec, 5)
    z = a.generate(spec, 5, decode=False)
    assert x.shape == (5, 3, 8, 8) and z.shape == (5, 4, 4, 4)
    assert torch.equal(x, a.autoencoder.decode(z))
    # every solver sees latents: a different solver samples the same latent shape
    assert a.generate(a.spec(solver="heun", nfe=3), 2, decode=False).shape == (2, 4, 4, 4)


def test_latent_inpaint_keeps_known_pixels_exactly(ae_dir, data, tmp_path):
    train(_latent_cfg(ae_dir, steps=4), tmp_path / "run", dataset=data, progress=False)
    run = Run.open(tmp_path / "run")
    image = data.data[:3]
    known = torch.ones(1, 1, 8, 8)
    known[..., 2:6, 3:7] = 0  # the unknown box
    x = latent_inpaint(run.autoencoder, run.denoiser(), image, known, nfe=4, resample_steps=2,
                       generator=seeded_generators(range(3)))
    keep = known.bool().expand_as(image)
    assert torch.equal(x[keep], image[keep])
    assert not torch.equal(x[~keep], image[~keep])
    # a latent cell is known only when its whole 2x2 block is known
    lat = latent_known_mask(known.bool(), 2)
    assert lat.shape == (1, 1, 4, 4) and int(lat.sum()) == 16 - 6


def test_missing_or_incompatible_autoencoder_is_a_one_line_error(ae_dir, data, tmp_path):
    r = cli("train", "tiny", "--out", tmp_path / "r1", "--set", f"latent.autoencoder={tmp_path / 'nope'}")
    assert_user_error(r, "does not exist", "train-autoencoder")
    assert not (tmp_path / "r1").exists()
    # digits at 8x8 are 1-channel: the autoencoder was trained on 3x8x8
    r = cli("train", "tiny", "--out", tmp_path / "r2", "--set", f"latent.autoencoder={ae_dir}")
    assert_user_error(r, "[3, 8, 8]", "[1, 8, 8]")
    r = cli("train", "tiny", "--out", tmp_path / "r3", "--set", f"latent.autoencoder={ae_dir}", "--set", "cond.image=mask")
    assert_user_error(r, "cond.image")


def test_a_latent_run_whose_autoencoder_changed_is_refused(ae_dir, data, tmp_path):
    train(_latent_cfg(ae_dir, steps=2), tmp_path / "run", dataset=data, progress=False)
    w = tmp_path / "run" / "autoencoder" / "autoencoder.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-1] ^= 1
    w.write_bytes(bytes(blob))
    with pytest.raises(RunError, match="is not the one this run was trained with"):
        Run.open(tmp_path / "run").generate(None, 1)


def test_cli_autoencoder_latent_train_sample_and_inpaint(data, tmp_path):
    from noisecraft.io.images import save_image
    from noisecraft.io.readers import read_image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        save_image(data.data[i], folder / f"{i:03d}.png")
    ae, run, out, out2 = tmp_path / "ae", tmp_path / "run", tmp_path / "s", tmp_path / "i"
    r = cli("train-autoencoder", folder, "--out", ae, "--steps", "6", "--set", "downsample=2", "--set", "channels=8",
            "--set", "holdout=4", "--quiet")
    assert r.exit_code == 0, r.output
    assert "[3, 8, 8] -> [4, 4, 4]" in r.output and "held-out PSNR" in r.output
    assert_user_error(cli("train-autoencoder", folder, "--out", ae, "--steps", "6"), "not an empty folder")
    assert_user_error(cli("train-autoencoder", folder, "--out", tmp_path / "x", "--set", "kl_wieght=1"),
                      "unknown autoencoder key", "kl_weight")
    r = cli("train", "tiny", "--out", run, "--set", f"latent.autoencoder={ae}", "--set", f"data.source={folder}",
            "--set", "data.conditional=false", "--set", "data.channels=3", "--steps", "4", "--quiet")
    assert r.exit_code == 0, r.output
    r = cli("sample", run, "--n", "3", "--nfe", "3", "--out", out)
    assert r.exit_code == 0, r.output
    img = read_image(out / "000000.png")
    assert img.shape == (3, 16, 16)  # decoded 3x8x8 at the preset's display scale 2
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1  # white = regenerate
    save_image(mask * 2 - 1, tmp_path / "mask.png")
    r = cli("inpaint", run, "--image", out / "000000.png", "--mask", tmp_path / "mask.png", "--n", "2", "--nfe", "3",
            "--resample", "2", "--out", out2)
    assert r.exit_code == 0, r.output
    src = read_image(out / "000000.png")[:, ::2, ::2]
    res = read_image(out2 / "000001.png")[:, ::2, ::2]
    keep = (mask == 0).expand(3, 8, 8)
    assert torch.equal(res[keep], src[keep])
    r = cli("img2img", run, "--image", out / "000000.png", "--strength", "0.5", "--nfe", "3", "--out", tmp_path / "g")
    assert r.exit_code == 0, r.output
    assert_user_error(cli("upscale", run, "--image", out / "000000.png", "--out", tmp_path / "u"), "latent")


def test_autoencoder_resume_can_extend_but_not_shorten(data, tmp_path):
    cfg = AutoencoderTrainConfig(**{**AE_CFG.__dict__, "steps": 4, "checkpoint_every": 2})
    train_autoencoder(None, tmp_path / "a", cfg, dataset=data, progress=False)
    assert_user_error(cli("train-autoencoder", "--resume", tmp_path / "a", "--steps", "2"), "--steps 2 is less", ">= 4")
    ae = train_autoencoder(None, tmp_path / "a", AutoencoderTrainConfig(steps=6), dataset=data, resume=True,
                           progress=False)
    assert ae.info["steps"] == 6
    assert_user_error(cli("train-autoencoder", "--resume", tmp_path / "nope"), "cannot be resumed")


def test_the_web_app_previews_decoded_estimates_of_a_latent_run(ae_dir, data, tmp_path):
    """Jobs (the web app without Gradio) serves a latent run: its live previews are the decoded x0 estimates
    (the last one, Euler's final step, is the decoded result) and upscale is refused as the CLI refuses it."""
    from noisecraft.web.jobs import Jobs, Preview, Settings, WebError, _to_uint8

    train(_latent_cfg(ae_dir, steps=2), tmp_path / "run", dataset=data, progress=False)
    jobs = Jobs({"lat": Run.open(tmp_path / "run")}, tmp_path, preview_interval=0)
    events = list(jobs.stream(jobs.generate_work("lat", Settings(solver="euler", nfe=3, seed=2, n=4))))
    previews, result = [e for e in events if isinstance(e, Preview)], events[-1]
    # One preview per step (0, 1, 2), except that a stream that falls behind (a loaded machine) skips to the
    # newest estimate: the steps shown increase and always end with the last one.
    steps = [p.step for p in previews]
    assert 1 <= len(steps) <= 3 and steps == sorted(set(steps)) and steps[-1] == 2, steps
    assert result.x.shape == (4, 3, 8, 8)
    want = _to_uint8(jobs.runs["lat"].get_modality().preview_image(result.x.clamp(-1, 1), nrow=2))
    assert previews[-1].image.shape == want.shape  # image-sized: 2x2 tiles of 8x8 (the latents are 4x4)
    assert np.abs(previews[-1].image.astype(int) - want.astype(int)).max() <= 1  # x0 estimate = result (float rounding)
    with pytest.raises(WebError, match="latent diffusion model; upscale works in pixel space"):
        jobs.upscale_work("lat", Settings(), str(tmp_path / "low.png"))
