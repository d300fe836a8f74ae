"""`TextConditioner`: the one interface between text and the denoiser's cross-attention.

    context, mask = conditioner.encode(["a red circle on the left", ...])  # (B, L, D), (B, L) bool
    null, null_mask = conditioner.encode_empty(B)                          # for CFG / caption dropout
    net(x, c_noise, context=context)                                       # net built with context_dim=D

Both implementations pad every prompt to the fixed `max_length`, so L == max_length always and
conditional and empty encodings can be concatenated into one batch; positions where mask is
False are zero vectors.

* `SmallTextConditioner` (word tokenizer + small transformer, trained jointly with the denoiser):
  the empty prompt "" is encoded as [bos][eos]; caption dropout teaches the encoder what this
  null context means, so it is a learned null condition.
* `HFTextEncoder` (frozen pretrained Hugging Face encoder): the empty prompt is the model's
  encoding of "" ([CLS][SEP] for BERT-style tokenizers), as in Stable Diffusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from .encoder import SmallTextConditioner
from .hf import HFTextEncoder

__all__ = ["TextConditioner", "build_text_conditioner"]


@runtime_checkable
class TextConditioner(Protocol):
    """Prompts -> cross-attention context. See the module docstring for the contract."""

    @property
    def context_dim(self) -> int: ...

    @property
    def max_length(self) -> int: ...

    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(context (B, max_length, context_dim) float, mask (B, max_length) bool; True = real token)."""
        ...

    def encode_empty(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The null condition for classifier-free guidance, shaped like `encode` of batch_size prompts."""
        ...

    @property
    def config(self) -> dict:
        """JSON-ready description; `build_text_conditioner(config)` rebuilds the conditioner."""
        ...


def build_text_conditioner(config: Mapping[str, Any], **kwargs: Any) -> TextConditioner:
    """Rebuild a conditioner from its `config`: "small" (fresh weights: load its state_dict after)
    or "hf" (reloaded from its local folder or package; `kwargs` such as device go to `from_local`)."""
    name = config.get("name")
    if name == "small":
        if kwargs:
            raise TypeError(f"a small text conditioner takes no extra arguments, got {sorted(kwargs)}")
        return SmallTextConditioner.from_config(config)
    if name == "hf":
        return HFTextEncoder.from_config(config, **kwargs)
    raise ValueError(f"unknown text conditioner {name!r}; valid names: 'small', 'hf'")
