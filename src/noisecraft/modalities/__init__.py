"""Modalities: the per-signal-kind layer (file formats, previews, valid shapes).

    m = get_modality("image")                      # or default_modality(x0.shape)
    m.write(x0, "000000.png")                      # (C, H, W) in [-1, 1] -> 4x enlarged PNG
    x = m.read("000000.png", (1, 16, 16))          # native 16x16 or the 64x64 display size
    m.write_preview(batch, "grid.png", nrow=8)     # (N, C, *spatial) -> one PNG
    writer.add_image("samples", m.preview_image(batch, nrow=8), step)
    a = get_modality("audio", {"sample_rate": 16000})   # a modality with options (run.json records them)
    a.write(wave, "000000.wav")                    # (1, L) in [-1, 1] -> 16-bit PCM WAV at 16 kHz
    v = get_modality("video", {"fps": 10})
    v.write(clip, "000000.gif"); v.write(clip, "000000.mp4")   # (C, T, H, W) -> looping GIF / H.264 MP4
    v.read("in.mp4", (1, 16, 32, 32), stride=2)    # GIF, MP4 or a folder of frames -> (C, T, H, W)
    get_modality("field").write(f, "000000.npz")   # (C, H, W) physical field -> NPZ, key "field"

Imports point one way: io <- modalities <- data (datasets record their modality by name).
"""

from __future__ import annotations

from collections.abc import Mapping

from .array import ARRAY_DISPLAY_SCALE, ArrayModality
from .audio import AUDIO_DISPLAY_SCALE, DEFAULT_SAMPLE_RATE, AudioModality
from .base import Modality, default_modality
from .field import FIELD_KEY, FieldModality
from .image import IMAGE_DISPLAY_SCALE, ImageModality
from .video import DEFAULT_FPS, VIDEO_DISPLAY_SCALE, VideoModality

__all__ = [
    "Modality", "ImageModality", "ArrayModality", "AudioModality", "VideoModality", "FieldModality", "FIELD_KEY",
    "MODALITIES", "get_modality", "default_modality",
    "IMAGE_DISPLAY_SCALE", "ARRAY_DISPLAY_SCALE", "AUDIO_DISPLAY_SCALE", "DEFAULT_SAMPLE_RATE",
    "VIDEO_DISPLAY_SCALE", "DEFAULT_FPS",
]

MODALITIES: dict[str, Modality] = {
    m.name: m for m in (ImageModality(), ArrayModality(), AudioModality(), VideoModality(), FieldModality())
}


def get_modality(name: str, options: Mapping[str, object] | None = None) -> Modality:
    """The registered modality called `name`, configured with `options` (a dataset's or a run's
    `modality_options`; None or {} = the defaults). ValueError naming the valid names or options."""
    if isinstance(name, Modality):
        return name.configure(**options) if options else name
    if not isinstance(name, str) or name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; valid: {', '.join(sorted(MODALITIES))}")
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"modality options must be a table of settings, got {type(options).__name__}")
    return MODALITIES[name].configure(**options) if options else MODALITIES[name]
