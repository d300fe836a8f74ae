"""`noisecraft train-autoencoder`: the KL autoencoder of latent diffusion (docs/latent.md).

    noisecraft train-autoencoder DATASET --out AE [--downsample 4|8] [--latent-channels C] [--steps N] [--set key=value ...]
    noisecraft train-autoencoder --resume AE [--steps N]

DATASET is a built-in dataset name (e.g. shapes) or a folder of images. Writes AE/autoencoder.json
(config, latent scale, held-out reconstruction PSNR) and AE/autoencoder.safetensors; train a latent
diffusion model on it with `[latent] autoencoder = "AE"` (presets shapes-latent, folder64-latent).
"""

from __future__ import annotations

import sys

import click

from .common import UserError, user_errors


@click.command("train-autoencoder")
@click.argument("dataset", required=False)
@click.option("--out", type=click.Path(file_okay=False), help="Autoencoder folder to create (new or empty).")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the autoencoder training in this folder.")
@click.option("--downsample", type=click.Choice(["4", "8"]), help="Spatial downsampling factor f (default 4).")
@click.option("--latent-channels", type=int, help="Latent channels c (default 4).")
@click.option("--steps", type=int, help="Optimizer steps (default 2000; with --resume: extend to N).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a training key, e.g. --set kl_weight=1e-5 --set batch_size=64 (repeatable; docs/latent.md).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_autoencoder_cmd(dataset, out, resume_dir, downsample, latent_channels, steps, sets, quiet) -> None:
    """Train a KL autoencoder (Rombach et al. 2022) on DATASET for latent diffusion."""
    with user_errors():
        from ..train.autoencoder import AutoencoderTrainConfig, describe, train_autoencoder

        if resume_dir is not None:
            if dataset or out or sets or downsample or latent_channels:
                raise UserError("--resume AE takes no DATASET, --out, --set, --downsample or --latent-channels "
                                "(the saved settings are used; only --steps may extend it)")
            cfg = AutoencoderTrainConfig(steps=steps) if steps is not None else None
            run = lambda: train_autoencoder(None, resume_dir, cfg, resume=True, progress=not quiet)  # noqa: E731
        else:
            if not dataset:
                raise UserError("missing DATASET: give a built-in dataset name (e.g. shapes) or a folder of images")
            if not out:
                raise UserError("missing --out AE: the folder to write the autoencoder into")
            cfg = AutoencoderTrainConfig().with_overrides(sets)
            flags = {"downsample": int(downsample) if downsample else None, "latent_channels": latent_channels,
                     "steps": steps}
            for key, value in flags.items():
                if value is not None:
                    setattr(cfg, key, value)
            cfg.validate()
            run = lambda: train_autoencoder(dataset, out, cfg, progress=not quiet)  # noqa: E731
        try:
            ae = run()
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted; continue with: noisecraft train-autoencoder --resume {resume_dir or out}", err=True)
            sys.exit(130)
    click.echo(describe(ae))
