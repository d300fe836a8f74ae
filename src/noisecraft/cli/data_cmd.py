"""`noisecraft data export`: real examples of a built-in dataset as files (`noisecraft.data.export`).

    noisecraft data export DATASET --split S --n N [--seed S] [--scale K] --out DIR

The command only parses options and calls `export_dataset`; its ValueError / DataError become the
CLI's one-line `error: ...` exits (status 2) through `cli.common.user_errors`; main.py registers the
group as `noisecraft data`.
"""

from __future__ import annotations

import click

from .common import user_errors

__all__ = ["data_group", "export_cmd"]


@click.group("data")
def data_group() -> None:
    """Built-in datasets as files."""


@data_group.command("export")
@click.argument("dataset")
@click.option("--split", required=True, help="Split to draw from: train | test | all (shapes, moving-shapes also heldout, test_seen).")
@click.option("--n", "n", type=int, required=True, help="Number of examples (a seeded random subset of the split).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random subset.")
@click.option("--scale", type=int, help="Display scale of image and video files (default: the modality's, 4 for images, 2 for video; "
              "audio and arrays ignore it).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="New (or empty) folder to write.")
def export_cmd(dataset: str, split: str, n: int, seed: int, scale: int | None, out: str) -> None:
    """Write N examples of a built-in DATASET (digits, shapes, waves, notes, spoken-digits, blobs, moving-digits,
    moving-shapes: looping GIFs; grf, darcy, navier-stokes: one NPZ per field, key "field", (C, H, W);
    navier-stokes-forecast: one NPZ per trajectory, keys "trajectory" (K + 1, C, H, W) and "field" (its start)) plus
    labels.csv to --out."""
    from ..data.export import export_dataset

    with user_errors():
        path = export_dataset(dataset, split=split, n=n, seed=seed, out=out, scale=scale)
    what = "trajectories" if dataset == "navier-stokes-forecast" else "examples"
    click.echo(f"wrote {n} {dataset} {what} ({split}) and labels.csv to {path}")
