"""The `noisecraft` command line. Commands are thin: they parse options and call library functions."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="noisecraft")
def cli() -> None:
    """noisecraft: train diffusion models from scratch and sample them with fast, accurate solvers."""


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, help="Run folder to write.")
def demo(out: str) -> None:
    """Train the built-in digits model and write sample grids (not yet available)."""
    click.echo("noisecraft demo: not yet - the digits demo lands with the image-diffusion issue.")


def main() -> None:
    cli(prog_name="noisecraft")
