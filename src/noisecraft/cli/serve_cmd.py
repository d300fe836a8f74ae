"""`noisecraft serve [RUN ...] [--port 7860] [--host 127.0.0.1]`: the local web app (docs/webapp.md).

Only the run folders named here can be opened in the app (by name, from a dropdown); with none, the
demo run at runs/demo is served when `make demo` made it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import click

from .common import UserError, user_errors

DEMO_RUN = Path("runs/demo")


def _check_port(host: str, port: int) -> None:
    """UserError now, before the models load, when (host, port) cannot be bound."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise UserError(f"--port {port} cannot be used on {host} ({e.strerror or e}); give another --port "
                        "or --host") from None


@click.command()
@click.argument("runs", nargs=-1, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 opens the app to other machines of the network (no login!).")
@click.option("--port", type=int, default=7860, show_default=True, help="Port to listen on.")
@click.option("--concurrency", type=int, default=2, show_default=True,
              help="Requests computed at once; the others wait in the queue.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads per request.")
def serve_cmd(runs, host, port, concurrency, threads) -> None:
    """Serve the runs RUN ... in a web app: generate with a live denoising view, the tasks each run
    supports (inpaint, img2img, upscale; video predict and interpolate; field reconstruct), the loss
    curve and evaluation. Without RUN: runs/demo (made by `make demo`)."""
    with user_errors():
        from ..runs import Run, is_run

        if not runs:
            if not is_run(DEMO_RUN):
                raise UserError("no run to serve: run `make demo` first (it writes runs/demo) or name a run: "
                                "noisecraft serve RUN_DIR")
            runs = (str(DEMO_RUN),)
        if not 1 <= port <= 65535:
            raise UserError(f"--port {port} is out of range; valid: 1..65535")
        if not 1 <= concurrency <= 64:
            raise UserError(f"--concurrency {concurrency} is out of range; valid: 1..64")
        if not 1 <= threads <= 256:
            raise UserError(f"--threads {threads} is out of range; valid: 1..256")
        from ..web import run_names
        from ..web.app import GradioMissing, build_app, launch

        opened = {name: Run.open(path) for name, path in run_names(runs).items()}
        _check_port(host, port)
        import torch

        torch.set_num_threads(threads)
        try:
            app = build_app(opened, concurrency=concurrency)
        except GradioMissing as e:
            raise UserError(str(e)) from None
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"warning: --host {host} makes the app reachable from other machines; it has no login", err=True)
        click.echo(f"serving {', '.join(opened)} at http://{host}:{port} (Ctrl+C stops)")
        try:
            launch(app, host=host, port=port, block=True, quiet=True)
        except OSError as e:
            if "port" not in str(e).lower():
                raise
            raise UserError(f"--port {port} cannot be used on {host} (in use?); give another --port") from None
