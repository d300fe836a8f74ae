"""Datasets: built-ins (handwritten `digits`) and image folders, all as one in-memory `ImageDataset`.

    ds = load_dataset("digits", resolution=16)          # (N, 1, 16, 16) in [-1, 1], labels 0-9
    ds = load_dataset("path/to/images", resolution=64)  # class labels from first-level sub-folders
    ds = load_dataset("shapes", split="train")          # (N, 3, 32, 32) + ds.captions, ds.attributes
"""

from .dataset import DataError, ImageDataset, SignalDataset
from .digits import load_digits
from .images import IMAGE_EXTENSIONS, list_image_files, load_image_folder
from .registry import BUILTIN_DATASETS, BUILTIN_SPLITS, ON_ERROR, SPLITS, load_dataset
from .shapes import CaptionedImageDataset, load_shapes

__all__ = [
    "DataError", "SignalDataset", "ImageDataset", "CaptionedImageDataset", "load_dataset", "BUILTIN_DATASETS", "BUILTIN_SPLITS",
    "SPLITS", "ON_ERROR", "load_digits", "load_shapes", "load_image_folder", "list_image_files", "IMAGE_EXTENSIONS",
]
