"""The web app through its HTTP API (gradio_client): every tab gives the CLI's bytes for the same seed and
settings, live previews stream before the result, bad settings and uploads are one-line errors, and
concurrent requests each get their own seed's result."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from web_helpers import cli_run, write_hole

from noisecraft.runs import Run
from noisecraft.web import MAX_UPLOAD_BYTES

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402


def _files(result) -> list[Path]:
    """The downloadable files of a final output: the samples, then grid.png."""
    return [Path(p) for p in result[2]]


def _same_bytes(web: list[Path], cli_dir: Path) -> None:
    names = [p.name for p in web]
    assert names[-1] == "grid.png"
    for p in web:
        assert p.read_bytes() == (cli_dir / p.name).read_bytes(), p.name


@pytest.fixture(scope="module")
def inputs(tiny_run, tmp_path_factory):
    """An 8x8 gray image, its display-size twin, a mask (white = regenerate), the editor layer painting
    that region, a 4x4 low-res image and some bad uploads."""
    d = tmp_path_factory.mktemp("webinputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(d / "image.png")
    write_hole(d, slice(2, 6), slice(2, 6))
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), mode="RGBA").save(d / "empty-layer.png")
    Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8)).save(d / "low.png")
    Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(d / "wrong-size.png")
    (d / "not-an-image.png").write_bytes(b"this is text, not a PNG")
    (d / "huge.png").write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    return d


def test_generate_equals_cli_sample_bytes(client, tiny_run, tmp_path):
    out = client.predict("tiny", "3", "", "euler", 4, 1.5, 7, 3, api_name="/generate")
    web = _files(out)
    assert [p.name for p in web] == ["000000.png", "000001.png", "000002.png", "grid.png"]
    assert "seeds 7..9" in out[4]
    r = cli_run("sample", tiny_run, "--n", 3, "--class", 3, "--solver", "euler", "--nfe", 4, "--guidance", 1.5,
                "--seed", 7, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    for p in web[:-1]:  # the same PNG bytes (the grid's layout differs: the CLI puts 3 per row)
        assert p.read_bytes() == (tmp_path / "cli" / p.name).read_bytes(), p.name


def test_live_previews_come_before_the_result(client):
    job = client.submit("tiny", "1", "", "euler", 8, 1.0, 0, 2, api_name="/generate")
    job.result()
    outputs = job.outputs()
    previews = [o for o in outputs[:-1] if o[4].startswith("generate: step ")]
    assert len(previews) >= 2, [o[4] for o in outputs]
    for o in previews:  # each a picture of the current estimate
        assert Image.open(o[0]).size[0] > 0
    assert outputs[-1][4].startswith("generate: 2 result(s), seeds 0..1")


def test_inpaint_equals_cli_inpaint_bytes(client, tiny_run, inputs, tmp_path):
    editor = {"background": handle_file(str(inputs / "image.png")), "layers": [handle_file(str(inputs / "layer.png"))],
              "composite": None, "id": None}
    out = client.predict("tiny", "2", editor, None, "", "ddpm", 2, 3, 1.0, 5, 2, api_name="/inpaint")
    r = cli_run("inpaint", tiny_run, "--image", inputs / "image.png", "--mask", inputs / "mask.png", "--class", 2,
                "--solver", "ddpm", "--resample", 2, "--nfe", 3, "--seed", 5, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_bytes(_files(out), tmp_path / "cli")
    known = np.asarray(Image.open(inputs / "image.png"))[np.asarray(Image.open(inputs / "mask.png")) == 0]
    got = np.asarray(Image.open(_files(out)[0]))[::2, ::2]  # display scale 2 -> native
    assert np.array_equal(got[np.asarray(Image.open(inputs / "mask.png")) == 0], known)


def test_img2img_equals_cli_img2img_bytes(client, tiny_run, inputs, tmp_path):
    out = client.predict("tiny", "any (classes in turn)", handle_file(str(inputs / "image.png")), None, 0.5, "euler",
                         4, 1.0, 11, 2, api_name="/img2img")
    r = cli_run("img2img", tiny_run, "--image", inputs / "image.png", "--strength", 0.5, "--solver", "euler",
                "--nfe", 4, "--guidance", 1.0, "--seed", 11, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_bytes(_files(out), tmp_path / "cli")


def test_upscale_equals_cli_upscale_bytes(client, tiny_run, inputs, tmp_path):
    out = client.predict("tiny", "5", handle_file(str(inputs / "low.png")), "projection", 0.0, "ddpm", 3, 1, 2,
                         api_name="/upscale")
    r = cli_run("upscale", tiny_run, "--image", inputs / "low.png", "--method", "projection", "--class", 5,
                "--nfe", 3, "--seed", 1, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_bytes(_files(out), tmp_path / "cli")


def _error(call) -> str:
    with pytest.raises(Exception) as info:
        call()
    return str(info.value)


# Gradio's components refuse what is outside their choices and bounds; the app checks the rest
@pytest.mark.parametrize("args, fragment", [
    (("../../etc", "3", "", "euler", 4, 1.0, 0, 1), "not in the list of choices: ['tiny']"),
    (("tiny", "12", "", "euler", 4, 1.0, 0, 1), "not in the list of choices"),
    (("tiny", "3", "", "euler", 4, 1.0, -1, 1), "-1 is less than minimum value 0"),
    (("tiny", "3", "", "euler", 4, 1.0, 0, 65), "65 is greater than maximum value 64"),
    (("tiny", "3", "", "euler", 0, 1.0, 0, 1), "0 is less than minimum value 1"),
    (("tiny", "3", "", "euler", 4, 500.0, 0, 1), "500"),
    (("tiny", "3", "", "euler", 4, 1.0, 2**63 - 1, 2), "out of range"),
])
def test_bad_settings_are_one_line_errors(client, args, fragment):
    message = _error(lambda: client.predict(*args, api_name="/generate"))
    assert fragment in message, message


def test_bad_uploads_are_refused_with_a_message(client, inputs):
    wrong = _error(lambda: client.predict("tiny", "1", handle_file(str(inputs / "wrong-size.png")), None, 0.5,
                                          "euler", 4, 1.0, 0, 1, api_name="/img2img"))
    assert "10x12" in wrong and "valid sizes: 8x8 (native) or 16x16" in wrong, wrong
    broken = _error(lambda: client.predict("tiny", "1", handle_file(str(inputs / "not-an-image.png")), None, 0.5,
                                           "euler", 4, 1.0, 0, 1, api_name="/img2img"))
    assert "image" in broken.lower(), broken
    odd_low = _error(lambda: client.predict("tiny", "1", handle_file(str(inputs / "wrong-size.png")), None, 0.0,
                                            "ddpm", 3, 0, 1, api_name="/upscale"))
    assert "must be square" in odd_low, odd_low
    huge = _error(lambda: client.predict("tiny", "1", handle_file(str(inputs / "huge.png")), None, 0.5,
                                         "euler", 4, 1.0, 0, 1, api_name="/img2img"))
    assert "exceeds the maximum file size of 10485760 bytes" in huge, huge
    editor = {"background": handle_file(str(inputs / "image.png")),
              "layers": [handle_file(str(inputs / "empty-layer.png"))], "composite": None, "id": None}
    unpainted = _error(lambda: client.predict("tiny", "2", editor, None, "", "ddpm", 2, 3, 1.0, 0, 1,
                                              api_name="/inpaint"))
    assert "nothing is painted" in unpainted, unpainted


def test_concurrent_requests_each_get_their_own_seed(client, tiny_run, tmp_path):
    """10 requests at once (2 computed at a time, the rest queued): each result equals Run.generate
    with that request's seed and class, written as the CLI writes it."""
    run = Run.open(tiny_run)
    requests = [(seed, str(seed % 10)) for seed in range(100, 110)]

    def call(req):
        seed, cls = req
        return client.predict("tiny", cls, "", "euler", 4, 1.0, seed, 1, api_name="/generate")

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(call, requests))
    modality = run.get_modality()
    for (seed, cls), out in zip(requests, results):
        x = run.generate(run.spec(solver="euler", nfe=4, guidance=1.0, seed=seed), 1, class_labels=cls)
        want = modality.write(x[0].clamp(-1, 1), tmp_path / f"{seed}.png", scale=run.config.sample.scale)
        assert _files(out)[0].read_bytes() == want.read_bytes(), seed
        assert f"seeds {seed}..{seed}" in out[4]


def test_analytics_off_and_bound_to_localhost(app_url):
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert app_url.startswith("http://127.0.0.1:")


def test_the_server_refuses_uploads_over_the_limit(app_url, inputs):
    """Not only the client: the upload route itself answers 413 past MAX_UPLOAD_BYTES."""
    import httpx

    with (inputs / "huge.png").open("rb") as f:
        r = httpx.post(f"{app_url}gradio_api/upload", files={"files": ("huge.png", f, "image/png")}, timeout=60)
    assert r.status_code == 413, (r.status_code, r.text[:200])

