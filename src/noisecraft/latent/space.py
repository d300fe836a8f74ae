"""Datasets and previews in an autoencoder's latent space.

`encode_dataset(ds, ae)` turns a training dataset into its scaled latents once, before training
(the diffusion model never sees pixels); labels, captions and every other attribute stay as they
were, so conditioners read them unchanged. `DecodedModality` wraps a data modality so that
previews of latent samples are drawn after decoding (the trainer's sample grids).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..modalities import Modality
from .autoencoder import Autoencoder, AutoencoderError

__all__ = ["encode_dataset", "DecodedModality"]


def encode_dataset(dataset: Any, ae: Autoencoder, *, batch_size: int = 256) -> Any:
    """A shallow copy of `dataset` whose `data` is `ae.encode(dataset.data)` (N, c, h, w).

    AutoencoderError when the data's sample shape is not the autoencoder's. A dataset that allows
    horizontal flips keeps `hflip`: the trainer then flips latents, which for a convolutional
    autoencoder trained on flipped images approximates encoding the flipped image (not exactly)."""
    ae.check_data_shape(tuple(dataset.sample_shape), f"dataset {getattr(dataset, 'name', '')!r}".replace(" ''", ""))
    latents = ae.encode(dataset.data, batch_size=batch_size).contiguous()  # (N, c, h, w)
    if not bool(torch.isfinite(latents).all()):
        raise AutoencoderError(f"autoencoder {str(ae.path)!r} gives non-finite latents for this data")
    out = copy.copy(dataset)
    out.data = latents
    return out


class DecodedModality(Modality):
    """`inner` (the data's modality) applied to decoded latents: previews and files of latent
    samples show images. Not registered: the trainer builds one per latent run."""

    def __init__(self, inner: Modality, ae: Autoencoder) -> None:
        self.inner, self.ae = inner, ae
        self.name, self.ranks, self.file_ext = inner.name, inner.ranks, inner.file_ext
        self.display_scale, self.eval_features = inner.display_scale, inner.eval_features

    def _decode(self, x: Tensor) -> Tensor:
        return self.ae.decode(x.detach().to("cpu", torch.float32)).clamp(-1, 1)

    def write(self, x: Tensor, path: str | Path, *, scale: int | None = None) -> Path:
        return self.inner.write(self._decode(x[None])[0], path, scale=scale)

    def read(self, path: str | Path, shape: Sequence[int], *, scale: int | None = None) -> Tensor:
        return self.inner.read(path, shape, scale=scale)

    def preview_image(self, x: Tensor, *, nrow: int, scale: int | None = None) -> Tensor:
        return self.inner.preview_image(self._decode(x), nrow=nrow, scale=scale)
