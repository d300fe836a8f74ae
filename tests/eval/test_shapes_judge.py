import json

import pytest
import torch

from noisecraft.data import load_dataset
from noisecraft.data.shapes import COLORS, POSITIONS, SHAPES
from noisecraft.eval.shapes_judge import (
    ShapesJudge,
    attributes_to_tensor,
    load_or_train_shapes_judge,
    train_shapes_judge,
)


@pytest.fixture(scope="module")
def judge():
    # A brief run (2,000 renders x 4 epochs, ~10 s on one thread); the default run is 6,000 x 3.
    return train_shapes_judge(num_images=2000, epochs=4, seed=0, validate=False)


@pytest.fixture(scope="module")
def splits():
    return {s: load_dataset("shapes", split=s) for s in ("test_seen", "heldout")}


def test_brief_training_reads_real_renders(judge, splits):
    for split, ds in splits.items():
        acc = judge.evaluate(ds.images, ds.attributes)
        assert acc["color"] >= 0.98 and acc["position"] >= 0.98, (split, acc)
        assert acc["all"] >= 0.9, (split, acc)
        assert judge.prompt_match_rate(ds.images, ds.attributes) == acc["all"]


def test_judge_outputs(judge, splits):
    x = splits["heldout"].images[:7]
    out = judge.judge(x)
    assert set(out) == {"color", "shape", "position", "class", "confidence"}
    for k in ("color", "shape", "position", "class"):
        assert out[k].shape == (7,) and out[k].dtype == torch.long
    assert torch.equal(out["class"], out["color"] * 15 + out["shape"] * 5 + out["position"])
    assert ((out["confidence"] > 0) & (out["confidence"] <= 1)).all()
    # uint8 and other resolutions are accepted (resized to 32 with antialiasing)
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(judge.judge(u8)["class"], out["class"])
    big = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert (judge.judge(big)["class"] == out["class"]).float().mean() >= 0.8
    with pytest.raises(ValueError, match="RGB images"):
        judge.judge(torch.zeros(2, 1, 32, 32))


def test_wrong_prompts_do_not_match(judge, splits):
    ds = splits["test_seen"]
    wrong = [{**a, "color": (a["color"] + 1) % 6} for a in ds.attributes]
    assert judge.prompt_match_rate(ds.images, wrong) < 0.1
    moved = [{**a, "position": (a["position"] + 2) % 5} for a in ds.attributes]
    assert judge.prompt_match_rate(ds.images, moved) < 0.1


def test_attribute_formats():
    rows = [{"color": "green", "shape": "triangle", "position": "top"}, {"color": 5, "shape": 0, "position": 4}]
    want = torch.tensor([[1, 2, 2], [5, 0, 4]])
    assert torch.equal(attributes_to_tensor(rows), want)
    cols = {"color": torch.tensor([1, 5]), "shape": ["triangle", "circle"], "position": [2, "center"]}
    assert torch.equal(attributes_to_tensor(cols), want)
    with pytest.raises(ValueError, match="unknown color 'purple'"):
        attributes_to_tensor([{"color": "purple", "shape": 0, "position": 0}])
    with pytest.raises(ValueError, match="3 attribute rows for 2 images"):
        attributes_to_tensor(rows + rows[:1], 2)
    assert len(COLORS) * len(SHAPES) * len(POSITIONS) == 90


def test_save_load_round_trip(judge, splits, tmp_path):
    judge.metrics = {"note": "brief"}
    judge.save(tmp_path / "j")
    meta = json.loads((tmp_path / "j" / "judge.json").read_text())
    assert meta["format"] == "noisecraft-shapes-judge" and meta["config"] == {"width": 16, "hidden": 128}
    back = ShapesJudge.load(tmp_path / "j")
    x = splits["test_seen"].images[:50]
    assert torch.equal(back.judge(x)["class"], judge.judge(x)["class"]) and back.metrics == {"note": "brief"}
    # a folder that already holds a judge is loaded, not retrained
    cached = load_or_train_shapes_judge(tmp_path / "j")
    assert cached.metrics == {"note": "brief"}
    with pytest.raises(FileNotFoundError, match="judge.json is missing"):
        ShapesJudge.load(tmp_path / "nothing")


def test_training_restores_thread_count():
    before = torch.get_num_threads()
    train_shapes_judge(num_images=64, epochs=1, batch_size=32, validate=False, num_threads=1)
    assert torch.get_num_threads() == before
