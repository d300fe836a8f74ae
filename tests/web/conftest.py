"""A tiny run and the web app serving it in this process (on a free port), shared by the web tests."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio", reason="the web app needs the web extra: pip install 'noisecraft[web]'")

from web_helpers import cli_run, served  # noqa: E402

# 2 training steps of the tiny preset (8x8 digits, display scale 2), 2 solver steps per sample
TINY = ["--steps", 2, "--set", "train.batch_size=8", "--set", "sample.nfe=4", "--set", "sample.per_class=1", "--quiet"]
# the same for 8x8 GRF fields (unconditional: reconstruct) and 4-frame 16x16 moving digits (predict, interpolate)
FIELD = ["--steps", 2, "--set", "data.source='grf'", "--set", "data.resolution=8", "--set", "data.conditional=false",
         "--set", "train.batch_size=4", "--set", "sample.nfe=2", "--set", "ema.phema_every=0", "--quiet"]
VIDEO = ["--steps", 2, "--set", "data.source=moving-digits", "--set", "data.resolution=16", "--set",
         "data.options.frames=4", "--set", "data.options.num_clips=32", "--set", "train.batch_size=4", "--set",
         "sample.nfe=2", "--set", "sample.per_class=1", "--quiet"]


def _train(tmp_path_factory, name: str, args: list):
    out = tmp_path_factory.mktemp("webruns") / name
    result = cli_run("train", "tiny", "--out", out, *args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return _train(tmp_path_factory, "tiny", TINY)


@pytest.fixture(scope="session")
def field_run(tmp_path_factory):
    return _train(tmp_path_factory, "grf", FIELD)


@pytest.fixture(scope="session")
def video_run(tmp_path_factory):
    return _train(tmp_path_factory, "clips", VIDEO)


@pytest.fixture(scope="session")
def app_url(tiny_run, tmp_path_factory):
    """The app serving the tiny run (as "tiny"), launched as `noisecraft serve` launches it."""
    # preview_interval 0: every preview (the tiny run finishes in milliseconds)
    with served({"tiny": tiny_run}, tmp_path_factory.mktemp("webroot"), concurrency=2, preview_interval=0) as url:
        yield url


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)
