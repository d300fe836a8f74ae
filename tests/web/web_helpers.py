"""Helpers the web tests import by name (a module name of its own: `conftest` is ambiguous when
several test folders are collected together)."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterator

from click.testing import CliRunner

from noisecraft.cli.main import cli


def cli_run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(runs: dict, root, **options) -> Iterator[str]:
    """Serve `runs` ({name: run folder or Run}) as `noisecraft serve` does, on a free local port; yields
    the app's URL and closes the app afterwards. `options` go to build_app (e.g. preview_interval=0)."""
    from noisecraft.runs import Run
    from noisecraft.web.app import build_app, launch

    app = build_app({k: v if isinstance(v, Run) else Run.open(v) for k, v in runs.items()}, root=root, **options)
    port = free_port()
    launch(app, host="127.0.0.1", port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def generate_in_own_app(name: str, run_dir, root, *settings):
    """Serve one run in a fresh app on a free port, call its /generate with `settings` (class, prompt,
    solver, nfe, guidance, seed, n), close the app and return the client's result."""
    from gradio_client import Client

    with served({name: run_dir}, root) as url:
        return Client(url, verbose=False).predict(name, *settings, api_name="/generate")


def write_hole(folder, rows: slice, cols: slice, side: int = 8) -> None:
    """Write the same hole twice into `folder`: mask.png (white = regenerate, as `noisecraft inpaint
    --mask`) and layer.png (the RGBA stroke the app's canvas editor sends for it)."""
    import numpy as np
    from PIL import Image

    mask = np.zeros((side, side), np.uint8)
    mask[rows, cols] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    layer = np.zeros((side, side, 4), np.uint8)
    layer[rows, cols] = 255
    Image.fromarray(layer, mode="RGBA").save(folder / "layer.png")
