"""Datasets: built-ins and image, audio or video folders, all as one in-memory `SignalDataset` (images: `ImageDataset`).

    ds = load_dataset("digits", resolution=16)          # (N, 1, 16, 16) in [-1, 1], labels 0-9
    ds = load_dataset("path/to/images", resolution=64)  # class labels from first-level sub-folders
    ds = load_dataset("shapes", split="train")          # (N, 3, 32, 32) + ds.captions, ds.attributes
    ds = load_dataset("waves")                          # (N, 1, 64): 1-D signals, ds.modality == "array"
    ds = load_dataset("notes")                          # (N, 1, 4096): notes at 8 kHz, ds.modality == "audio"
    ds = load_dataset("spoken-digits")                  # (N, 1, 8192): "zero".."nine" by espeak-ng at 8 kHz
    ds = load_dataset("path/to/wavs", resolution=8192, sample_rate=16000)  # mono clips, labels from sub-folders
    ds = load_dataset("blobs")                          # (N, 1, 8, 16, 16): 8-frame clips of a moving blob
    ds = load_dataset("moving-digits", split="test")    # (N, 1, 16, 32, 32) video at 10 fps + ds.positions, ds.velocities
    ds = load_dataset("moving-shapes", split="heldout") # (N, 3, 16, 32, 32) + ds.captions: unseen colour-shape-motion triples
    ds = load_dataset("path/to/videos", resolution=32, video={"frames": 16, "stride": 2, "fps": 20})  # clips at 10 fps
    ds = load_dataset("darcy")                          # (N, 2, 64, 64): fields (a, u), ds.modality == "field"
"""

from .audio import AUDIO_EXTENSIONS, list_audio_files, load_audio_folder
from .dataset import AudioDataset, DataError, ImageDataset, SignalDataset
from .digits import load_digits
from .images import IMAGE_EXTENSIONS, list_image_files, load_image_folder
from .registry import BUILTIN_DATASETS, BUILTIN_SPLITS, ON_ERROR, SPLITS, load_dataset
from .shapes import CaptionedImageDataset, load_shapes
from .waves import load_waves
from .blobs import load_blobs
from .notes import NOTES_CLASSES, NotesDataset, load_notes, midi_to_hz, note_attributes
from .fields import FieldDataset, ForecastDataset, load_darcy, load_grf, load_grf_lengths, load_grf_scales, load_navier_stokes, load_navier_stokes_forecast
from .spoken_digits import DIGIT_WORDS, SpokenDigitsDataset, load_spoken_digits
from .video import CaptionedVideoDataset, VideoDataset
from .moving_digits import load_moving_digits
from .moving_shapes import load_moving_shapes, parse_motion_caption
from .video_folder import VIDEO_FOLDER_OPTIONS, find_videos, load_video_folder

__all__ = [
    "DataError", "SignalDataset", "ImageDataset", "AudioDataset", "CaptionedImageDataset", "load_dataset", "BUILTIN_DATASETS", "BUILTIN_SPLITS",
    "SPLITS", "ON_ERROR", "load_digits", "load_shapes", "load_waves", "load_blobs", "load_image_folder", "list_image_files", "IMAGE_EXTENSIONS",
    "load_notes", "NotesDataset", "NOTES_CLASSES", "note_attributes", "midi_to_hz", "load_audio_folder", "list_audio_files",
    "AUDIO_EXTENSIONS", "load_spoken_digits", "SpokenDigitsDataset", "DIGIT_WORDS",
    "VideoDataset", "CaptionedVideoDataset", "load_moving_digits", "load_moving_shapes", "parse_motion_caption",
    "load_video_folder", "find_videos", "VIDEO_FOLDER_OPTIONS",
    "FieldDataset", "ForecastDataset", "load_grf", "load_grf_lengths", "load_grf_scales", "load_darcy", "load_navier_stokes", "load_navier_stokes_forecast",
]
