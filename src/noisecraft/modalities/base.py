"""The `Modality` interface: what differs between kinds of signal, and nothing else.

A sample is a tensor `x0` of shape (C, *spatial) with values in [-1, 1]; the spatial rank is 1
(audio, 1-D arrays), 2 (images, fields) or 3 (video, volumes). Everything above this layer (trainer,
samplers, tasks) is rank-generic; a modality answers the few questions that are not:

* `check_shape(shape)`: is (C, *spatial) a valid sample shape for this kind of signal?
* `write(x, path)` / `read(path, shape)`: one example to / from its file format, exactly invertible
  for data we wrote (PNG up to its 8-bit grid, NPZ bitwise).
* `preview_image(x, nrow=)` / `write_preview(x, path, nrow=)`: a batch drawn as one picture a person
  can look at (TensorBoard takes the former, the latter is a PNG file).

Display scale. Every file meant to be looked at is enlarged by an integer factor with
nearest-neighbour repetition (`display_scale`, 4 for images), so a 16x16 sample is written as a crisp
64x64 PNG. Readers of the modality accept the native size and the display size, and invert the
latter exactly (block mean of the repeated pixels), so what `noisecraft sample` writes, a task reads
back unchanged. `scale=None` everywhere means "the modality's display_scale".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.images import save_image

__all__ = ["Modality", "default_modality", "check_scale", "MAX_SCALE"]

MAX_SCALE = 64


def check_scale(scale: int | None, default: int) -> int:
    """`scale` or, when None, `default`; an integer in 1..MAX_SCALE else ValueError."""
    if scale is None:
        return default
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be an integer in 1..{MAX_SCALE} or None (the modality's display scale), got {scale!r}")
    return int(scale)


def default_modality(shape: Sequence[int]) -> str:
    """The modality a sample shape (C, *spatial) gets when none is named: rank 2 with 1 or 3
    channels is an "image"; everything else (1-D, 3-D, other channel counts) is an "array"."""
    shape = tuple(shape)
    return "image" if len(shape) == 3 and shape[0] in (1, 3) else "array"


class Modality(ABC):
    """One kind of signal: its file format, its preview, the sample shapes it accepts.

    Instances hold no state beyond their `options()` (audio: the sample rate); the registry
    (`noisecraft.modalities.MODALITIES`) holds one of each with default options, and
    `get_modality(name, options)` configures it. Subclass to add a kind (audio: WAV + spectrogram;
    video: GIF/MP4 + frame strip; field: NPZ + heat map) and register it under its `name`.
    """

    name: str = ""
    ranks: tuple[int, ...] = ()
    file_ext: str = ""
    display_scale: int = 1
    # How `noisecraft eval RUN` scores this kind of signal: a key of noisecraft.eval.report.RUN_EVALUATIONS
    # (a name, since modalities sit below eval). "classifier" = image features from a small classifier
    # fitted on the built-in dataset (`default_extractor`); "audio-classifier" = a log-mel classifier
    # fitted on the run's training clips, pitch and timbre (`eval.audio_run`); "video-motion" = frame and
    # motion classifiers fitted on the built-in clips, trajectory residuals (`eval.video_run`); None = none yet
    # (evaluation needs features= given and then scores as images).
    eval_features: str | None = None

    # --- options ------------------------------------------------------------------------------------
    def options(self) -> dict:
        """The settings of this instance as JSON values (audio: {"sample_rate": 8000}); {} for a
        modality without settings. A dataset carries them and a run records them in run.json, so
        `configure(**options)` rebuilds the same modality when the run is read back."""
        return {}

    def configure(self, **options: object) -> "Modality":
        """This modality with `options` set (ValueError naming an unknown one); without settings
        only `configure()` is valid."""
        if options:
            raise ValueError(f"the {self.name} modality takes no options, got {sorted(options)}")
        return self

    # --- shapes -------------------------------------------------------------------------------------
    def check_shape(self, shape: Sequence[int]) -> None:
        """ValueError naming `shape` and what is valid, unless it is (C, *spatial) with an accepted rank."""
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} sample shape must be a sequence of integers (C, *spatial), got {shape!r}") from None
        if len(shape) - 1 not in self.ranks or min(shape, default=0) < 1:
            raise ValueError(f"{self.name} sample shape {shape} is not valid: expected {self.shape_doc()} with every size >= 1")
        self._check_channels(shape)

    def shape_doc(self) -> str:
        """Valid shapes in words, for error messages."""
        names = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, T, H, W)"}
        return " or ".join(names[r] for r in self.ranks)

    def _check_channels(self, shape: tuple[int, ...]) -> None:
        """Per-modality channel rule (e.g. images: 1 or 3); any count by default."""

    def check_sample(self, x: Tensor) -> None:
        """`x` is one example (C, *spatial) of a valid shape."""
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a tensor (C, *spatial), got {type(x).__name__}")
        self.check_shape(x.shape)

    def check_batch(self, x: Tensor) -> None:
        """`x` is a non-empty batch (N, C, *spatial) of valid samples."""
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a tensor (N, C, *spatial), got {type(x).__name__}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"expected a non-empty {self.name} batch (N, C, *spatial), got shape {tuple(x.shape)}")
        self.check_shape(x.shape[1:])

    def check_path(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix.lower() != self.file_ext:
            raise ValueError(f"{self.name} files are {self.file_ext}; the path should end in {self.file_ext}, got {str(path)!r}")
        return path

    # --- files --------------------------------------------------------------------------------------
    @abstractmethod
    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        """Write one example (C, *spatial) in [-1, 1] to `path` (suffix `file_ext`), atomically."""

    @abstractmethod
    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None) -> Tensor:
        """Read one example of sample shape `shape` -> float32 (C, *spatial) in [-1, 1]."""

    # --- previews -----------------------------------------------------------------------------------
    @abstractmethod
    def preview_image(self, x: Tensor, *, nrow: int, scale: int | None = None) -> Tensor:
        """A batch (N, C, *spatial) drawn as one RGB picture: float (3, H, W) in [0, 1] (TensorBoard's add_image)."""

    def write_preview(self, x: Tensor, path: str | Path, *, nrow: int, scale: int | None = None) -> Path:
        """`preview_image` written as one PNG (atomically)."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"previews are PNG files; the path should end in .png, got {str(path)!r}")
        img = self.preview_image(x, nrow=nrow, scale=scale)  # (3, H, W) in [0, 1]
        return save_image(img * 2.0 - 1.0, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, ranks={self.ranks}, file_ext={self.file_ext!r}, display_scale={self.display_scale})"


def check_nrow(nrow: int) -> int:
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow (samples per row) must be an integer >= 1, got {nrow!r}")
    return int(nrow)


def to_float_cpu(x: Tensor) -> Tensor:
    return x.detach().to("cpu", torch.float32)
