"""Helpers the web tests import by name (a module name of its own: `conftest` is ambiguous when
several test folders are collected together)."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from noisecraft.cli.main import cli


def cli_run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_in_own_app(name: str, run_dir, root, *settings):
    """Serve one run in a fresh app on a free port, call its /generate with `settings` (class, prompt,
    solver, nfe, guidance, seed, n), close the app and return the client's result."""
    from gradio_client import Client

    from noisecraft.runs import Run
    from noisecraft.web.app import build_app, launch

    app = build_app({name: Run.open(run_dir)}, root=root)
    port = free_port()
    launch(app, port=port, block=False, quiet=True)
    try:
        return Client(f"http://127.0.0.1:{port}/", verbose=False).predict(name, *settings, api_name="/generate")
    finally:
        app.close()
