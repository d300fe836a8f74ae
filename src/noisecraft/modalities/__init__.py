"""Modalities: the per-signal-kind layer (file formats, previews, valid shapes).

    m = get_modality("image")                      # or default_modality(x0.shape)
    m.write(x0, "000000.png")                      # (C, H, W) in [-1, 1] -> 4x enlarged PNG
    x = m.read("000000.png", (1, 16, 16))          # native 16x16 or the 64x64 display size
    m.write_preview(batch, "grid.png", nrow=8)     # (N, C, *spatial) -> one PNG
    writer.add_image("samples", m.preview_image(batch, nrow=8), step)

Imports point one way: io <- modalities <- data (datasets record their modality by name).
"""

from __future__ import annotations

from .array import ARRAY_DISPLAY_SCALE, ArrayModality
from .base import Modality, default_modality
from .image import IMAGE_DISPLAY_SCALE, ImageModality

__all__ = [
    "Modality", "ImageModality", "ArrayModality", "MODALITIES", "get_modality", "default_modality",
    "IMAGE_DISPLAY_SCALE", "ARRAY_DISPLAY_SCALE",
]

MODALITIES: dict[str, Modality] = {m.name: m for m in (ImageModality(), ArrayModality())}


def get_modality(name: str) -> Modality:
    """The registered modality called `name` (ValueError naming the valid names otherwise)."""
    if isinstance(name, Modality):
        return name
    if not isinstance(name, str) or name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; valid: {', '.join(sorted(MODALITIES))}")
    return MODALITIES[name]
