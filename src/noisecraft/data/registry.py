"""`load_dataset`: one entry point for built-in datasets (images, 1-D waves, audio notes and spoken digits, 3-D blobs,
videos of moving digits and shapes, scientific fields) and folders of images, audio files or videos.

`source` is looked up among the built-in names first, then treated as a folder path; write a
folder that shares a built-in's name as a path ("./digits") to load the folder. A folder holding
audio files (.wav, .flac, .ogg) and no images is an audio folder; one holding both is refused.
A folder is read as videos (GIFs, MP4s, folders of frames; `data.video_folder`) when `video` gives
the clip options (`{"frames": 16, "stride": 1, "fps": 10}`; in a config: `data.options`), because
GIFs and sub-folders of frames also look like an image folder.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, list_audio_files, load_audio_folder
from .blobs import load_blobs
from .dataset import DataError, SignalDataset, check_channels, check_resolution
from .digits import load_digits
from .fields import load_darcy, load_grf, load_grf_lengths, load_grf_scales, load_navier_stokes, load_navier_stokes_forecast
from .folders import ON_ERROR, list_files
from .images import IMAGE_EXTENSIONS, list_image_files, load_image_folder
from .moving_digits import load_moving_digits
from .moving_shapes import MOVING_SHAPES_SPLITS, load_moving_shapes
from .notes import load_notes
from .shapes import SHAPES_SPLITS, load_shapes
from .spoken_digits import load_spoken_digits
from ..io.video import FFMPEG_EXTENSIONS
from .video_folder import VIDEO_FOLDER_OPTIONS, load_video_folder, video_options
from .waves import load_waves

__all__ = ["BUILTIN_DATASETS", "BUILTIN_SPLITS", "SPLITS", "ON_ERROR", "load_dataset", "takes_sample_rate"]

SPLITS = ("train", "test", "all")

# name -> loader(resolution=, split=, channels=, labels=, hflip=[, sample_rate=]) -> SignalDataset (images: ImageDataset)
BUILTIN_DATASETS: dict[str, Callable[..., SignalDataset]] = {
    "digits": load_digits,
    "shapes": load_shapes,
    "waves": load_waves,  # 1-D (1, 64), modality "array"
    "notes": load_notes,  # 1-D (1, 4096) audio at 8 kHz, modality "audio"
    "spoken-digits": load_spoken_digits,  # 1-D (1, 8192) speech at 8 kHz by espeak-ng, modality "audio"
    "blobs": load_blobs,  # 3-D (1, 8, 16, 16), modality "array"
    "moving-digits": load_moving_digits,  # video (1, 16, 32, 32) at 10 fps, modality "video"
    "moving-shapes": load_moving_shapes,  # captioned video (3, 16, 32, 32) at 10 fps, modality "video"
    "grf": load_grf,  # scientific fields (modality "field"): Matérn GRF (1, 64, 64)
    "grf-lengths": load_grf_lengths,  # labeled: GRFs of three length scales (1, 64, 64)
    "grf-scales": load_grf_scales,  # GRFs (1, 64, 64) with a continuous length scale per field (param_values)
    "darcy": load_darcy,  # Darcy flow (a, u) (2, 64, 64)
    "navier-stokes": load_navier_stokes,  # Kolmogorov-flow vorticity (1, 64, 64)
    "navier-stokes-forecast": load_navier_stokes_forecast,  # its next states (1, 64, 64), the state before as `previous`
}

# Built-ins with splits beyond SPLITS (e.g. shapes' "heldout" colour-shape pairs).
BUILTIN_SPLITS: dict[str, tuple[str, ...]] = {
    "shapes": SHAPES_SPLITS,
    "moving-shapes": MOVING_SHAPES_SPLITS,
}


def takes_sample_rate(name: str) -> bool:
    """Whether the built-in `name` is audio (its loader takes `sample_rate`)."""
    return "sample_rate" in inspect.signature(BUILTIN_DATASETS[name]).parameters


def load_dataset(
    source: str,
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    on_error: str = "strict",
    hflip: bool = False,
    sample_rate: int | None = None,
    video: Mapping | None = None,
) -> SignalDataset:
    """Load a built-in dataset by name, or every image, audio file or video under a folder.

    resolution: output side length (waves, notes, audio: the length in samples; blobs: the frame side);
        None keeps the built-in's native size (digits: 8, shapes: 32, waves: 64, notes: 4096, spoken-digits: 8192,
        blobs: 16)
        or, for a folder, the smallest shorter side (audio: the shortest clip) found.
    split: "train", "test" or "all". Built-ins have a fixed held-out "test" split; a folder is used
        whole, so it accepts "train" and "all" (same data) and rejects "test". "shapes" also has
        "heldout" (= "test": unseen colour-shape pairs) and "test_seen" (see `BUILTIN_SPLITS`);
        so has "moving-shapes" (unseen colour-shape-motion triples).
    channels: 1, 3, or None (from the data); audio is mono (1 or None).
    labels: use class labels (built-in classes, or first-level sub-folders of a folder).
    on_error: folders only: "strict" raises `DataError` on the first unreadable file,
        "skip" leaves unreadable files out and lists them in `dataset.skipped_files`.
    hflip: recorded on the dataset for the trainer; no augmentation is applied here.
    sample_rate: audio only (notes, spoken-digits, audio folders): the rate in Hz (None: 8000).
    video: folders only: read the folder as videos cut into clips, with these `load_video_folder`
        options (frames, stride, clip_every, fps; missing ones take their defaults). None: images or audio.
    """
    check_resolution(resolution)
    check_channels(channels)
    valid_splits = BUILTIN_SPLITS.get(source, SPLITS) if isinstance(source, str) else SPLITS
    if split not in valid_splits:
        raise ValueError(f"split must be one of {', '.join(valid_splits)}; got {split!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a built-in dataset name or a folder path, got {type(source).__name__}")
    opts = dict(resolution=resolution, channels=channels, labels=labels, hflip=hflip)
    if video is not None:
        video = video_options(video)  # ValueError naming an unknown key
    if isinstance(source, str) and source in BUILTIN_DATASETS:
        if video is not None:
            raise ValueError(f"video options apply to folders of videos; the built-in {source!r} takes its own keywords "
                             f"(e.g. moving-digits' frames and fps), not video={video!r}")
        if sample_rate is not None:
            if not takes_sample_rate(source):
                raise ValueError(f"sample_rate applies to audio data; {source!r} is not audio (audio built-ins: "
                                 f"{', '.join(n for n in sorted(BUILTIN_DATASETS) if takes_sample_rate(n))}, or an audio folder)")
            opts["sample_rate"] = sample_rate
        return BUILTIN_DATASETS[source](split=split, **opts)
    path = Path(source)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "is not a built-in dataset and no such folder exists"
        raise DataError(
            f"unknown dataset {str(source)!r}: it {what}. Built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}; "
            f"or give a folder of images ({', '.join(IMAGE_EXTENSIONS)}), audio files ({', '.join(AUDIO_EXTENSIONS)}) "
            f"or videos (with video options)"
        )
    if split == "test":
        raise ValueError(
            f"split='test' is only defined for built-in datasets ({', '.join(sorted(BUILTIN_DATASETS))}); "
            f"the folder {str(source)!r} is used whole: pass split='train' or 'all'"
        )
    if video is not None:
        if sample_rate is not None:
            raise ValueError(f"sample_rate applies to audio data; the folder {str(source)!r} is read as videos")
        return load_video_folder(path, on_error=on_error, **opts, **video)
    if _is_audio_folder(path):
        return load_audio_folder(path, on_error=on_error, sample_rate=sample_rate, **opts)
    if sample_rate is not None:
        raise ValueError(f"sample_rate applies to audio data; the folder {str(source)!r} holds no audio files "
                         f"({', '.join(AUDIO_EXTENSIONS)})")
    if not list_image_files(path):
        clips = list_files(path, FFMPEG_EXTENSIONS)
        if clips:
            raise DataError(f"{str(source)!r} holds video files (e.g. {str(clips[0])!r}) and no images: read it as videos "
                            f"with video={{'frames': T}} (in a config: data.options.frames = T; options "
                            f"{', '.join(VIDEO_FOLDER_OPTIONS)})")
    return load_image_folder(path, on_error=on_error, **opts)


def _is_audio_folder(path: Path) -> bool:
    """True for a folder of audio files without images; DataError for a folder holding both."""
    audio = list_audio_files(path)
    if not audio:
        return False
    images = list_image_files(path)
    if images:
        raise DataError(f"{str(path)!r} holds both images (e.g. {str(images[0])!r}) and audio files (e.g. "
                        f"{str(audio[0])!r}); give a folder of one kind")
    return True
