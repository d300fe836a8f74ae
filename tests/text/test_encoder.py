import json

import pytest
import torch

from noisecraft.nets.dit import DiT, DiTConfig
from noisecraft.text import (
    SmallTextConditioner,
    SmallTextEncoder,
    TextConditioner,
    WordTokenizer,
    build_text_conditioner,
)

CORPUS = ["a red circle on the left", "a small blue square above a yellow triangle", "left: red circle",
          "there is a green triangle at the top"]


@pytest.fixture
def cond():
    torch.manual_seed(0)
    return SmallTextConditioner(WordTokenizer.from_corpus(CORPUS), dim=32, depth=2, heads=4, max_length=12).eval()


def test_shapes_and_zero_padding(cond):
    assert isinstance(cond, TextConditioner) and cond.context_dim == 32 and cond.max_length == 12
    context, mask = cond.encode(["a red circle on the left", ""])
    assert context.shape == (2, 12, 32) and mask.shape == (2, 12) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [8, 2]
    assert (context[~mask] == 0).all() and (context[mask].abs().sum(-1) > 0).all()
    assert torch.isfinite(context).all()


def test_padding_does_not_leak_into_real_tokens(cond):
    tok, enc = cond.tokenizer, cond.encoder
    ids, mask = tok.encode(["a red circle"], 12)
    out, _ = enc(ids, mask)
    garbage = ids.clone()
    garbage[~mask] = torch.randint(0, tok.vocab_size, (int((~mask).sum()),))
    assert torch.allclose(enc(garbage, mask)[0], out, atol=1e-6)  # padded ids are ignored
    alone, _ = cond.encode(["a red circle"])
    batched, _ = cond.encode(["a red circle", "a small blue square above a yellow triangle"])
    assert torch.allclose(alone[0], batched[0], atol=1e-5)  # batch neighbours do not matter
    shorter, short_mask = enc(ids[:, :6], mask[:, :6])  # a shorter padded length gives the same tokens
    assert torch.allclose(shorter[short_mask], out[mask], atol=1e-5)


def test_different_prompts_differ_and_empty_matches(cond):
    a, _ = cond.encode(["a red circle on the left"])
    b, _ = cond.encode(["a blue circle on the left"])
    assert (a - b).abs().max() > 1e-3
    e, em = cond.encode_empty(3)
    e1, em1 = cond.encode([""])
    assert e.shape == (3, 12, 32) and torch.equal(e[2], e1[0]) and torch.equal(em[0], em1[0])


def test_trains_jointly(cond):
    cond.train()
    context, mask = cond.encode(["a red circle on the left", ""])
    context.square().sum().backward()
    assert cond.encoder.token_emb.weight.grad is not None and cond.encoder.pos_emb.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_words_stay_distinct_under_noisy_adam_steps(seed):
    """Issue 11 item 8: trained jointly at the net's lr (3e-3), the encoder collapsed every word onto
    one vector. Adam's steps are ~lr per weight whatever the gradient, so with 0.02-scale embeddings
    50 steps on random (diffusion-like, noisy) gradients let the blocks' output swamp the residual
    stream: the word-specific share of the context fell from ~0.4 to 0.000-0.016 (seeds 0-5). With
    unit-scale embeddings it stays at 0.14-0.39."""
    torch.manual_seed(seed)
    enc = SmallTextEncoder(12, dim=32, depth=2, heads=4, max_length=6)
    ids = torch.tensor([[2, 4 + w, 3, 0, 0, 0] for w in range(8)])  # [bos] word [eos] [pad]..., 8 words
    mask = ids != 0
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(50):
        context, _ = enc(ids, mask)
        loss = (context * torch.randn(context.shape, generator=gen)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        words = enc(ids, mask)[0][:, 1]  # (8, 32): the context at the word's position
    share = float((words - words.mean(0)).square().sum() / words.square().sum())  # energy that tells words apart
    assert share > 0.05, f"the words' contexts collapsed onto one vector (word-specific share {share:.4f})"


def test_config_round_trip(cond, tmp_path):
    text = json.dumps(cond.config)  # JSON-ready
    (tmp_path / "c.json").write_text(text)
    twin = build_text_conditioner(json.loads((tmp_path / "c.json").read_text()))
    assert isinstance(twin, SmallTextConditioner) and twin.config == cond.config
    twin.load_state_dict(cond.state_dict())
    twin.eval()
    prompts = ["a red circle on the left", "there is a green triangle at the top"]
    assert torch.equal(twin.encode(prompts)[0], cond.encode(prompts)[0])
    enc = SmallTextEncoder.from_config(cond.encoder.config)
    assert enc.config == {"name": "small-text-encoder", "vocab_size": cond.tokenizer.vocab_size, "dim": 32,
                          "depth": 2, "heads": 4, "max_length": 12, "mlp_ratio": 4.0, "dropout": 0.0}
    with pytest.raises(ValueError, match="unknown SmallTextEncoderConfig key"):
        SmallTextEncoder.from_config({**enc.config, "width": 3})
    with pytest.raises(ValueError, match="unknown text conditioner"):
        build_text_conditioner({"name": "clip"})


def test_feeds_a_dit_cross_attention(cond):
    net = DiT(DiTConfig(in_channels=3, resolution=8, patch_size=2, hidden_size=32, depth=1, num_heads=2,
                        context_dim=cond.context_dim))
    context, _ = cond.encode(["a red circle on the left", "left: red circle"])
    out = net(torch.randn(2, 3, 8, 8), torch.zeros(2), context=context)
    assert out.shape == (2, 3, 8, 8)


def test_bad_input(cond):
    enc = cond.encoder
    ids, mask = cond.tokenizer.encode(["a red circle"], 12)
    with pytest.raises(ValueError, match="at least one True"):
        enc(ids, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="exceeds this encoder's max_length=12"):
        enc(torch.zeros(1, 13, dtype=torch.long), torch.ones(1, 13, dtype=torch.bool))
    with pytest.raises(ValueError, match="token ids must lie in"):
        enc(torch.full_like(ids, 999), mask)
    with pytest.raises(ValueError, match="not divisible by heads"):
        SmallTextEncoder(10, dim=30, heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        SmallTextConditioner(cond.tokenizer, SmallTextEncoder(5, dim=8, heads=2))


def test_hf_encoder_without_transformers_names_the_extra(tmp_path, monkeypatch):
    import sys

    from noisecraft.text import HFTextEncoder

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'noisecraft\[text\]'"):
        HFTextEncoder.from_local(tmp_path)
