"""A trained autoencoder as an object: open it, encode images to scaled latents, decode them back.

    ae = Autoencoder.open("runs/shapes-ae")
    z = ae.encode(x)           # x (B, 3, 32, 32) in [-1, 1] -> (B, 4, 8, 8), unit variance over the training set
    x_hat = ae.decode(z)       # (B, 3, 32, 32)

An autoencoder folder (written by `noisecraft train-autoencoder`, `noisecraft.train.autoencoder`):

    AE/
        autoencoder.json         format "noisecraft-autoencoder/1", the net config, the data shape,
                                 the latent scale, reconstruction PSNR and training facts
        autoencoder.safetensors  the weights (read only through noisecraft.io_safety: no pickle)
        checkpoints/             training state for --resume (runs.checkpoint format)

Latent scale (Rombach et al. 2022, Sec. 4.3.2 / App. G): latents are the encoder's posterior mean
times `scale` = 1 / std of those means over the training images, so the diffusion model sees data
of unit variance whatever the KL weight left it at (its σ_data and noise levels then mean the
same as for pixels in [-1, 1]). `decode` divides by `scale` first. Encoding uses the posterior mean
(deterministic), so a dataset encodes to the same latents every time and a latent run resumes bitwise.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..io.files import atomic_write_bytes, atomic_write_text
from ..io_safety import WeightFileError, check_tensors_match, read_safetensors
from ..nets.autoencoder import AutoencoderConfig, KLAutoencoder

__all__ = ["Autoencoder", "AutoencoderError", "AE_FORMAT", "AE_JSON", "AE_WEIGHTS", "is_autoencoder"]

AE_FORMAT = "noisecraft-autoencoder/1"
AE_JSON = "autoencoder.json"
AE_WEIGHTS = "autoencoder.safetensors"


class AutoencoderError(ValueError):
    """A missing, unreadable or incompatible autoencoder folder. One line."""


def is_autoencoder(path: str | Path) -> bool:
    p = Path(path) / AE_JSON
    try:
        return p.is_file() and json.loads(p.read_text(encoding="utf-8")).get("format") == AE_FORMAT
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Autoencoder:
    """A KL autoencoder with its latent scale and the shape of the data it was trained on."""

    def __init__(self, net: KLAutoencoder, data_shape: tuple[int, ...], scale: float, info: dict | None = None,
                 *, modality: str = "image", modality_options: dict | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.scale = float(scale)
        self.info = dict(info or {})
        self.modality, self.modality_options = modality, dict(modality_options or {})
        self.path: Path | None = None
        self.sha256: str = ""

    # -- shapes ------------------------------------------------------------------------------
    @property
    def config(self) -> AutoencoderConfig:
        return self.net.cfg

    @property
    def latent_shape(self) -> tuple[int, ...]:
        c, h, w = self.data_shape
        f = self.config.downsample
        return (self.config.latent_channels, h // f, w // f)

    def check_data_shape(self, shape: tuple[int, ...], what: str = "the data") -> None:
        """AutoencoderError unless `shape` is the (C, H, W) this autoencoder was trained on."""
        shape = tuple(int(s) for s in shape)
        if shape != self.data_shape:
            where = f" {str(self.path)!r}" if self.path else ""
            raise AutoencoderError(f"autoencoder{where} was trained on samples of shape {list(self.data_shape)}, but "
                                   f"{what} has shape {list(shape)}; train an autoencoder on this data "
                                   "(`noisecraft train-autoencoder`)")

    # -- encode / decode ---------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: Tensor, *, batch_size: int = 256) -> Tensor:
        """x (B, C, H, W) -> scale · posterior mean (B, c, H/f, W/f), in batches, on x's device."""
        dev = next(self.net.parameters()).device
        out = [self.net.encode(x[i:i + batch_size].to(dev))[0] * self.scale for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out).to(x.device)

    @torch.no_grad()
    def decode(self, z: Tensor, *, batch_size: int = 256) -> Tensor:
        """Scaled latents (B, c, h, w) -> x (B, C, h·f, w·f) in the data range (not clamped)."""
        dev = next(self.net.parameters()).device
        out = [self.net.decode(z[i:i + batch_size].to(dev) / self.scale) for i in range(0, z.shape[0], batch_size)]
        return torch.cat(out).to(z.device)

    def to(self, device: str | torch.device) -> "Autoencoder":
        self.net.to(device)
        return self

    # -- files -------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write autoencoder.safetensors, then autoencoder.json (last: it marks the folder), atomically."""
        from safetensors.torch import save as st_save

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write_bytes(folder / AE_WEIGHTS, st_save(state))
        doc = {"format": AE_FORMAT, "net": self.net.config, "data_shape": list(self.data_shape),
               "latent_shape": list(self.latent_shape), "scale": self.scale, "modality": self.modality,
               "modality_options": self.modality_options, **self.info}
        atomic_write_text(folder / AE_JSON, json.dumps(doc, indent=2) + "\n")
        self.path, self.sha256 = folder, _sha256(folder / AE_WEIGHTS)
        return folder

    @classmethod
    def open(cls, folder: str | Path, *, sha256: str | None = None) -> "Autoencoder":
        """Read an autoencoder folder; AutoencoderError (one line) when it is missing, not an
        autoencoder, malformed, or (sha256 given) not the weights expected."""
        folder = Path(folder)
        if not folder.is_dir():
            raise AutoencoderError(f"autoencoder folder {str(folder)!r} does not exist; give a folder written by "
                                   "`noisecraft train-autoencoder`")
        if not is_autoencoder(folder):
            raise AutoencoderError(f"{str(folder)!r} is not a noisecraft autoencoder (no {AE_JSON} of format "
                                   f"{AE_FORMAT!r}); give a folder written by `noisecraft train-autoencoder`")
        try:
            doc = json.loads((folder / AE_JSON).read_text(encoding="utf-8"))
            net = KLAutoencoder(AutoencoderConfig.from_dict(doc["net"]))
            data_shape = tuple(int(s) for s in doc["data_shape"])
            scale = float(doc["scale"])
            if len(data_shape) != 3 or data_shape[0] != net.cfg.in_channels or min(data_shape) < 1 \
                    or any(s % net.cfg.downsample for s in data_shape[1:]):
                raise ValueError(f"data_shape {list(data_shape)} does not fit the net (in_channels "
                                 f"{net.cfg.in_channels}, downsample {net.cfg.downsample})")
            if not (scale > 0 and scale < float("inf")):
                raise ValueError(f"scale {scale} is not a positive finite number")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise AutoencoderError(f"autoencoder {str(folder)!r} has an unreadable {AE_JSON}: {e}".splitlines()[0]) from None
        weights = folder / AE_WEIGHTS
        if not weights.is_file():
            raise AutoencoderError(f"autoencoder {str(folder)!r} has no {AE_WEIGHTS}")
        digest = _sha256(weights)
        if sha256 is not None and digest != sha256:
            raise AutoencoderError(f"autoencoder {str(folder)!r} is not the one this run was trained with (its weights "
                                   "changed since); restore the original folder")
        try:
            params = read_safetensors(weights)[0]
            check_tensors_match(net.state_dict(), params, source=weights)
        except WeightFileError as e:
            raise AutoencoderError(str(e)) from None
        net.load_state_dict(params)
        info = {k: v for k, v in doc.items() if k not in ("format", "net", "data_shape", "latent_shape", "scale",
                                                           "modality", "modality_options")}
        ae = cls(net, data_shape, scale, info, modality=str(doc.get("modality", "image")),
                 modality_options=dict(doc.get("modality_options") or {}))
        ae.path, ae.sha256 = folder, digest
        return ae

    def copy_to(self, folder: str | Path) -> Path:
        """Write this autoencoder's files (weights and json, not the training checkpoints) into `folder`."""
        folder = Path(folder)
        self.save(folder)
        return folder

    def meta(self) -> dict[str, Any]:
        """What a latent run records in run.json."""
        return {"data_shape": list(self.data_shape), "latent_shape": list(self.latent_shape), "scale": self.scale,
                "sha256": self.sha256, "source": str(self.path) if self.path else ""}

    def __repr__(self) -> str:
        return (f"Autoencoder({str(self.path) if self.path else '<memory>'!r}, {list(self.data_shape)} -> "
                f"{list(self.latent_shape)}, scale={self.scale:.4g})")
