"""A latent diffusion run in the web app (gradio_client): Generate, Inpaint and Img2img give the CLI's bytes
for the same settings, inpainting keeps the known pixels exactly, the live previews are decoded images
(not latents), and upscale (pixel space) is hidden and refused with the CLI's message. The run: a tiny
f = 2 autoencoder and 4 training steps on 8x8 RGB blobs (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from web_helpers import cli_run, served, write_hole

from noisecraft.runs import Run
from noisecraft.web import tasks_of

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


def _blobs(n: int = 64) -> torch.Tensor:
    """n RGB 8x8 images: a coloured square on a dark background (random place, size, colour)."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((n, 3, 8, 8), -0.8)
    for i in range(n):
        s = int(torch.randint(2, 5, (), generator=g))
        r, c = (int(v) for v in torch.randint(0, 9 - s, (2,), generator=g))
        x[i, :, r:r + s, c:c + s] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return x


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory) -> Path:
    from noisecraft.config import load_config
    from noisecraft.data import ImageDataset
    from noisecraft.train import train
    from noisecraft.train.autoencoder import AutoencoderTrainConfig, train_autoencoder

    d = tmp_path_factory.mktemp("weblatent")
    data = ImageDataset(_blobs(), name="blobs")
    train_autoencoder(None, d / "ae", AutoencoderTrainConfig(downsample=2, latent_channels=4, channels=8, steps=10,
                                                             batch_size=16, warmup_steps=2, holdout=8),
                      dataset=data, progress=False)
    cfg = load_config("tiny", [f"latent.autoencoder={d / 'ae'}", "data.conditional=false", "train.steps=4",
                               "train.batch_size=8", "process.sigma_data=1.0", "sample.nfe=3"])
    train(cfg, d / "run", dataset=data, progress=False)
    return d / "run"


@pytest.fixture(scope="module")
def latent_client(latent_run, tmp_path_factory):
    with served({"lat": latent_run}, tmp_path_factory.mktemp("webroot-latent"), preview_interval=0) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def latent_inputs(tmp_path_factory):
    """An 8x8 RGB image (on the 8-bit grid), a mask (white = regenerate) and the editor layer painting it."""
    d = tmp_path_factory.mktemp("weblatentinputs")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / "image.png")
    write_hole(d, slice(2, 6), slice(3, 7))
    return d


def _files(out) -> list[Path]:
    return [Path(p) for p in out[2]]


def _same_as_cli(web: list[Path], cli_dir: Path) -> None:
    assert web[-1].name == "grid.png"
    for p in web[:-1]:  # the samples (the grid's layout differs: the CLI puts sqrt(n + 1) per row)
        assert p.read_bytes() == (cli_dir / p.name).read_bytes(), p.name


def test_a_latent_run_offers_the_clis_latent_tasks(latent_client, latent_run):
    run = Run.open(latent_run)
    assert run.is_latent and run.shape == (4, 4, 4) and run.data_shape == (3, 8, 8)
    assert tasks_of(run) == ["generate", "inpaint", "img2img"]  # no upscale: the CLI refuses it for latent runs
    update = latent_client.predict("lat", api_name="/select_run")
    assert update[-1] == "image run; tasks: Generate, Inpaint, Img2img"
    assert "latent diffusion on latents (4, 4, 4)" in update[-2]


def test_latent_generate_equals_cli_sample_and_previews_are_decoded(latent_client, latent_run, tmp_path):
    job = latent_client.submit("lat", None, "", "euler", 4, 1.0, 3, 2, api_name="/generate")
    out = job.result()
    web = _files(out)
    assert [p.name for p in web] == ["000000.png", "000001.png", "grid.png"]
    r = cli_run("sample", latent_run, "--solver", "euler", "--nfe", 4, "--seed", 3, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_as_cli(web, tmp_path / "cli")
    assert Image.open(web[0]).size == (16, 16)  # decoded 3x8x8 at the display scale 2
    # the live view: decoded estimates, the size of a grid of 2 decoded 8x8 samples (latents are 4x4)
    run = Run.open(latent_run)
    want = tuple(run.get_modality().preview_image(torch.zeros(2, *run.data_shape), nrow=2).shape[1:][::-1])
    previews = [o for o in job.outputs()[:-1] if o[4].startswith("generate: step ")]
    assert previews, [o[4] for o in job.outputs()]
    for o in previews:
        im = Image.open(o[0])
        assert im.mode == "RGB" and im.size == want, (im.mode, im.size, want)


def test_latent_inpaint_equals_cli_and_keeps_the_known_pixels(latent_client, latent_run, latent_inputs, tmp_path):
    d = latent_inputs
    editor = {"background": handle_file(str(d / "image.png")), "layers": [handle_file(str(d / "layer.png"))],
              "composite": None, "id": None}
    job = latent_client.submit("lat", None, editor, None, "", "ddpm", 2, 3, 1.0, 5, 2, api_name="/inpaint")
    out = job.result()
    r = cli_run("inpaint", latent_run, "--image", d / "image.png", "--mask", d / "mask.png", "--resample", 2,
                "--nfe", 3, "--seed", 5, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    web = _files(out)
    assert [p.name for p in web] == ["000000.png", "000001.png", "grid.png"]
    _same_as_cli(web, tmp_path / "cli")
    image, keep = np.asarray(Image.open(d / "image.png")), np.asarray(Image.open(d / "mask.png")) == 0
    for p in web[:2]:
        got = np.asarray(Image.open(p).convert("RGB"))[::2, ::2]  # display scale 2 -> native
        assert np.array_equal(got[keep], image[keep])
        assert not np.array_equal(got[~keep], image[~keep])  # the hole was generated
    previews = [o for o in job.outputs()[:-1] if o[4].startswith("inpaint: step ")]
    assert previews and all(Image.open(o[0]).mode == "RGB" for o in previews)


def test_latent_img2img_equals_cli(latent_client, latent_run, latent_inputs, tmp_path):
    out = latent_client.predict("lat", None, handle_file(str(latent_inputs / "image.png")), None, 0.5, "euler", 4, 1.0,
                                11, 2, api_name="/img2img")
    r = cli_run("img2img", latent_run, "--image", latent_inputs / "image.png", "--strength", 0.5, "--solver", "euler",
                "--nfe", 4, "--seed", 11, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_as_cli(_files(out), tmp_path / "cli")


def test_latent_upscale_is_refused_with_the_clis_message(latent_client, latent_run, tmp_path):
    low = tmp_path / "low.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(low)
    with pytest.raises(Exception) as info:
        latent_client.predict("lat", None, handle_file(str(low)), "projection", 0.0, "ddpm", 2, 0, 1,
                              api_name="/upscale")
    message = " ".join(str(info.value).split())
    assert "is a latent diffusion model; upscale works in pixel space: use a pixel-space run" in message, message
    r = cli_run("upscale", latent_run, "--image", low, "--out", tmp_path / "u")
    assert r.exit_code == 2 and "upscale works in pixel space: use a pixel-space run" in r.output, r.output
