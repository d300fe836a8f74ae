"""Helpers shared by the field tests (a plain module: conftest files of different folders clash)."""

from __future__ import annotations

from pathlib import Path

from noisecraft.data import fields as fdata


def use_small_fields(monkeypatch, tmp_path: Path, *, train: int = 6, test: int = 4) -> Path:
    """A private cache, tiny splits (the real sizes are FIELD_SPLIT_SIZES) and a 1-time-unit Navier-Stokes
    spin-up, so the built-in fields generate in well under a second at 16x16. Returns tmp_path."""
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {name: {"train": train, "test": test} for name in fdata.FIELD_SPLIT_SIZES})
    monkeypatch.setattr(fdata, "NS_CONFIG", fdata.NSConfig(spinup=1.0))
    return tmp_path
