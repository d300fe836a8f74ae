"""A saved run as an object: `Run.open(path)` -> config, modality, weights, denoiser, generate.

    run = Run.open("runs/demo")
    x = run.generate(run.spec(nfe=20, seed=0), 16, class_labels=3)     # (16, 1, 16, 16)
    den = run.denoiser("phema-0.080")                                   # any sampler, guidance or task

What a training run writes (the trainer, `noisecraft.train`, is the only writer):

    RUN_DIR/
        run.json         marker + what rebuilds the model: format, net config, sample shape,
                         modality and its options (audio: the sample rate), conditioners
                         (class names, text encoder, image condition)
        config.json      the resolved training config (noisecraft.config)
        checkpoints/     model, EMA, optimizer, RNG and data-order state (runs.checkpoint)
        phema/, best/    post-hoc EMA snapshots, the best evaluation's EMA weights (runs.weights)
        samples/         preview grids written during training (the modality's preview)
        metrics.jsonl, eval.jsonl, loss.png, tb/

Runs of format noisecraft-run/1 (the first release: images only, `channels` and `resolution`
in run.json) open as image runs with the same conditioners. `modality_options` was added to
noisecraft-run/2 with the audio modality; runs written before it have none ({}: the defaults).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ..conditioning import ClassLabels, Conditioner, ImageCondition, TextPrompts, conditioners_from_meta
from ..conditioning.text import load_text_conditioner
from ..config import Config, config_from_dict
from ..core import Precond, get_process
from ..latent import Autoencoder, AutoencoderError
from ..modalities import Modality, get_modality
from ..runtime import resolve_device
from ..sampling import SamplingSpec
from .errors import RunError
from .generation import generate
from .weights import load_weights, weight_choices

__all__ = ["Run", "RUN_FORMAT", "READABLE_FORMATS", "is_run", "build_denoiser", "LATENT_AE_FOLDER"]

LATENT_AE_FOLDER = "autoencoder"  # a latent run's copy of its autoencoder (run.json "latent")

RUN_FORMAT = "noisecraft-run/2"
READABLE_FORMATS = ("noisecraft-run/1", RUN_FORMAT)


def _format_of(path: Path) -> str | None:
    p = path / "run.json"
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError):
        return None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    return fmt if isinstance(fmt, str) and fmt.startswith("noisecraft-run/") else None


def is_run(path: str | Path) -> bool:
    """Whether `path` holds a run this version can read."""
    return _format_of(Path(path)) in READABLE_FORMATS


def build_denoiser(net: nn.Module, config: Config) -> Precond:
    """Wrap a network in the preconditioning the config's [process] names."""
    p = config.process
    return Precond(net, p.prediction, get_process(p.name, **p.options), p.sigma_data)


def _legacy_conditioners(cfg: Config, meta: Mapping[str, Any], channels: int, device: Any) -> list[Conditioner]:
    """The conditioners of a noisecraft-run/1 folder, read from its config and run.json."""
    out: list[Conditioner] = []
    if cfg.data.conditional and meta.get("class_names"):
        out.append(ClassLabels(meta["class_names"], cfg.train.class_dropout))
    cc = cfg.cond
    if cc.image:
        out.append(ImageCondition(cc.image, channels, lowres_factor=cc.lowres_factor, mask_min=cc.mask_min,
                                  mask_max=cc.mask_max, mask_boxes=cc.mask_boxes))
    if meta.get("text") is not None:
        if not isinstance(meta["text"], dict):
            raise TypeError(f"'text' must be a table, got {type(meta['text']).__name__}")
        out.append(TextPrompts(load_text_conditioner(meta["text"], device=device), dropout=cfg.text.caption_dropout,
                               lr_scale=cfg.text.lr_scale))
    return out


class Run:
    """A run folder, read once: config, sample shape, modality, conditioners; weights on demand."""

    def __init__(self, path: Path, config: Config, meta: dict, shape: tuple[int, ...], modality: str,
                 conditioners: list[Conditioner], modality_options: dict | None = None) -> None:
        self.path, self.config, self.meta = path, config, meta
        self.shape, self.modality, self.conditioners = shape, modality, conditioners
        self.modality_options = dict(modality_options or {})
        self._denoisers: dict[tuple[str, str], Precond] = {}
        self._autoencoder: Autoencoder | None = None

    @classmethod
    def open(cls, path: str | Path, *, device: str | torch.device = "cpu") -> "Run":
        """Open a run folder; RunError (one line) when it is not a readable run.

        device: where a frozen text encoder goes (weights go where `denoiser(device=)` says)."""
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"run folder {str(path)!r} does not exist")
        fmt = _format_of(path)
        if fmt is None:
            raise RunError(f"{str(path)!r} is not a noisecraft run (no valid run.json); give a folder written by "
                           "`noisecraft train`")
        if fmt not in READABLE_FORMATS:
            raise RunError(f"run {str(path)!r} has format {fmt!r}, written by a newer noisecraft; this version reads "
                           f"{', '.join(READABLE_FORMATS)} - upgrade noisecraft to open it")
        try:
            meta = json.loads((path / "run.json").read_text(encoding="utf-8"))
            cfg = config_from_dict(json.loads((path / "config.json").read_text(encoding="utf-8")))
            dev = resolve_device(device)
            options: dict = {}
            if fmt == RUN_FORMAT:
                shape = tuple(int(s) for s in meta["shape"])
                modality = str(meta["modality"])
                options = dict(meta.get("modality_options") or {})
                conds = conditioners_from_meta(meta["conditioners"], device=dev)
            else:  # noisecraft-run/1: square images
                c, r = int(meta["channels"]), int(meta["resolution"])
                shape, modality = (c, r, r), "image"
                conds = _legacy_conditioners(cfg, meta, c, dev)
            dict(meta["net"])
            if meta.get("latent") is not None:
                lat = meta["latent"]
                if not isinstance(lat, dict) or len(lat["data_shape"]) != 3 or not isinstance(lat["autoencoder"], str):
                    raise ValueError(f"'latent' must be a table with an autoencoder folder and a (C, H, W) data_shape, got {lat!r}")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise RunError(f"run {str(path)!r} has an unreadable run.json/config.json: {e}".splitlines()[0]) from None
        return cls(path, cfg, meta, shape, modality, conds, options)

    # -- what the run is ---------------------------------------------------------------------

    def get_modality(self) -> Modality:
        """The run's modality configured with its recorded options (audio: at the run's sample rate):
        what writes its samples and reads task inputs. ValueError for a modality this version lacks."""
        return get_modality(self.modality, self.modality_options)

    @property
    def is_latent(self) -> bool:
        """Whether the model lives in an autoencoder's latent space (`[latent] autoencoder`)."""
        return self.meta.get("latent") is not None

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of what `generate` returns and tasks read: the decoded sample shape of a latent
        run, else `shape` (which is always what the denoiser sees)."""
        lat = self.meta.get("latent")
        return tuple(int(s) for s in lat["data_shape"]) if lat is not None else self.shape

    @property
    def autoencoder(self) -> Autoencoder | None:
        """The frozen autoencoder of a latent run (its own copy, checked against the recorded
        sha256), or None for a pixel-space run. RunError (one line) when it is missing or changed."""
        lat = self.meta.get("latent")
        if lat is None:
            return None
        if self._autoencoder is None:
            try:
                ae = Autoencoder.open(self.path / lat["autoencoder"], sha256=lat.get("sha256") or None)
                ae.check_data_shape(self.data_shape, f"run {str(self.path)!r}")
            except AutoencoderError as e:
                raise RunError(f"latent run {str(self.path)!r}: {e}") from None
            if tuple(ae.latent_shape) != tuple(self.shape):
                raise RunError(f"latent run {str(self.path)!r}: its autoencoder gives latents {list(ae.latent_shape)}, "
                               f"the model takes {list(self.shape)}")
            self._autoencoder = ae
        return self._autoencoder

    def decode(self, z: Tensor) -> Tensor:
        """Latents (B, *shape) -> data (B, *data_shape) for a latent run; the identity otherwise."""
        ae = self.autoencoder
        return ae.decode(z) if ae is not None else z

    def encode(self, x: Tensor) -> Tensor:
        """Data (B, *data_shape) -> scaled latents (B, *shape) for a latent run; the identity otherwise."""
        ae = self.autoencoder
        return ae.encode(x) if ae is not None else x

    @property
    def net_config(self) -> dict:
        return dict(self.meta["net"])

    @property
    def class_names(self) -> list[str]:
        c = self.conditioner("class_labels")
        return list(c.class_names) if c is not None else []

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def conditioner(self, key: str) -> Conditioner | None:
        """The conditioner that takes `key` ("class_labels", "prompts", "image_cond", ...), or None."""
        return next((c for c in self.conditioners if c.key == key), None)

    @property
    def condition_keys(self) -> list[str]:
        return [c.key for c in self.conditioners]

    def weight_choices(self) -> list[str]:
        return weight_choices(self.path)

    def spec(self, **changes: Any) -> SamplingSpec:
        """The run's [sample] settings as a SamplingSpec, with `changes` (None = keep) applied."""
        return self.config.sample.spec(**changes)

    # -- weights and sampling ---------------------------------------------------------------

    def build_net(self) -> nn.Module:
        """A fresh network of this run's architecture (random weights), wrapped by its conditioners."""
        from ..nets import build_net_from_config

        net = build_net_from_config(self.net_config)
        for c in self.conditioners:
            net = c.wrap_net(net)
        return net

    def denoiser(self, weights: str = "ema", *, device: str | torch.device = "cpu") -> Precond:
        """The preconditioned network with `weights` ("ema", "raw", "best", "phema-<std>"), in eval
        mode on `device`; the weights are read on the CPU, then moved. Cached per (weights, device)."""
        dev = resolve_device(device)
        key = (weights, str(dev))
        if key not in self._denoisers:
            net = self.build_net()
            load_weights(net, self.path, weights)
            net.eval().requires_grad_(False).to(dev)
            self._denoisers[key] = build_denoiser(net, self.config).eval()
        return self._denoisers[key]

    def generate(self, spec: SamplingSpec | None = None, n: int = 1, *, weights: str = "ema",
                 device: str | torch.device = "cpu", batch_size: int = 250,
                 callback: Callable[[dict], None] | None = None, decode: bool = True,
                 wrap: Callable[[Callable[..., Tensor]], Callable[..., Tensor]] | None = None, **cond: Any) -> Tensor:
        """n samples (n, *data_shape) in the data range, sample i from spec.seed + i; `cond` by
        conditioner key, e.g. class_labels=3 (index or name), prompts="a red circle", image_cond=...
        A conditional model without a class gets classes in turn. A latent run samples latents
        (n, *shape) and decodes them (decode=False: the latents). wrap: Denoiser -> Denoiser applied before
        sampling (e.g. physics guidance, `fields.physics_dps`), for runs without conditioners."""
        spec = spec or self.spec()
        den = self.denoiser(weights, device=device)
        dev = next(den.parameters()).device
        if wrap is not None:
            if self.conditioners:
                raise ValueError(f"wrap applies to unconditional runs; this run is conditional "
                                 f"({', '.join(c.key for c in self.conditioners)})")
            den = wrap(den)
        if decode and self.is_latent:
            self.autoencoder  # a missing or changed autoencoder fails before sampling
        x = generate(den, n, self.shape, spec, self.conditioners, cond, batch_size=batch_size, callback=callback,
                     device=dev)
        return self.decode(x) if decode else x

    def __repr__(self) -> str:
        kinds = ", ".join(c.kind for c in self.conditioners) or "unconditional"
        return f"Run({str(self.path)!r}, {self.modality} {self.shape}, {kinds})"
