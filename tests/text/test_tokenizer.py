import json

import pytest
import torch

from noisecraft.data.shapes import load_shapes
from noisecraft.text import SPECIAL_TOKENS, WordTokenizer, split_words


@pytest.fixture(scope="module")
def captions():
    ds = load_shapes(split="train", num_images=500)
    return [c for cs in ds.captions for c in cs]


def test_split_words_lowercases_and_splits_punctuation():
    assert split_words("Left: a RED circle!") == ["left", ":", "a", "red", "circle", "!"]
    assert split_words("  two   shapes,a box ") == ["two", "shapes", ",", "a", "box"]
    assert split_words("") == []


def test_vocabulary_is_deterministic():
    tok = WordTokenizer.from_corpus(["b a a", "c b a", "d"])
    assert tok.vocab == [*SPECIAL_TOKENS, "a", "b", "c", "d"]  # by count, ties alphabetical
    assert WordTokenizer.from_corpus(["d", "c b a", "b a a"]).vocab == tok.vocab
    assert WordTokenizer.from_corpus(["b a a", "c b a", "d"], min_count=2).vocab == [*SPECIAL_TOKENS, "a", "b"]
    assert WordTokenizer.from_corpus(["b a a", "c b a"], max_size=5).vocab == [*SPECIAL_TOKENS, "a"]


def test_encode_layout_and_mask():
    tok = WordTokenizer.from_corpus(["a red circle on the left"])
    ids, mask = tok.encode(["a red circle", "", "a purple circle"], max_length=6)
    assert ids.shape == mask.shape == (3, 6) and ids.dtype == torch.long and mask.dtype == torch.bool
    i = tok.index
    assert ids[0].tolist() == [tok.bos_id, i["a"], i["red"], i["circle"], tok.eos_id, tok.pad_id]
    assert ids[1].tolist() == [tok.bos_id, tok.eos_id] + [tok.pad_id] * 4  # the empty prompt
    assert ids[2, 2] == tok.unk_id  # out-of-vocabulary word
    assert mask.tolist()[1] == [True, True, False, False, False, False]
    assert torch.equal(mask, ids != tok.pad_id)


def test_round_trip_on_shapes_captions(captions):
    tok = WordTokenizer.from_corpus(captions)
    ids, mask = tok.encode(captions, max_length=32)
    assert mask.all(dim=1).logical_not().all()  # every caption fits with room to spare
    assert all(tok.decode(row) == " ".join(split_words(c)) for row, c in zip(ids, captions))
    assert tok.unk_id not in ids


def test_truncation_warns_with_prompt_and_max_length():
    tok = WordTokenizer.from_corpus(["one two three four five six"])
    prompt = "one two three four five six"
    with pytest.warns(UserWarning, match=r"'one two three four five six'.*max_length=5"):
        ids, mask = tok.encode([prompt, "one"], max_length=5)
    assert tok.decode(ids[0]) == "one two three" and ids[0, -1] == tok.eos_id and mask[0].all()


def test_save_load_json(tmp_path, captions):
    tok = WordTokenizer.from_corpus(captions)
    path = tok.save(tmp_path / "tok.json")
    data = json.loads(path.read_text())
    assert data["format"] == "noisecraft-word-tokenizer" and data["vocab"][:4] == list(SPECIAL_TOKENS)
    back = WordTokenizer.load(path)
    assert back == tok
    assert torch.equal(back.encode(captions[:20], 32)[0], tok.encode(captions[:20], 32)[0])


def test_bad_input():
    tok = WordTokenizer.from_corpus(["a"])
    with pytest.raises(TypeError, match="list of prompts"):
        tok.encode("a", 8)
    with pytest.raises(ValueError, match="max_length"):
        tok.encode(["a"], 1)
    with pytest.raises(TypeError, match="prompt 1 must be a string"):
        tok.encode(["a", 3], 8)
    with pytest.raises(ValueError, match="special tokens"):
        WordTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="single lowercase words"):
        WordTokenizer([*SPECIAL_TOKENS, "Red circle"])
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        WordTokenizer.load("/nonexistent/tok.json")
    with pytest.raises(ValueError, match="not a noisecraft word tokenizer"):
        WordTokenizer.from_dict({"vocab": []})
