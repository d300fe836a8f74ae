import re
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisecraft.data import CaptionedImageDataset, ImageDataset, load_dataset
from noisecraft.data.shapes import (
    COLORS,
    HELDOUT_PAIRS,
    NUM_SHAPES_CLASSES,
    PALETTE,
    POSITIONS,
    RELATIONS,
    SEEN_PAIRS,
    SHAPES,
    VOCABULARY,
    class_index,
    class_name,
    load_shapes,
    parse_caption,
    render_single_objects,
)

SHAPE_WORDS = {"circle": {"circle", "disc", "disk"}, "square": {"square", "box"}, "triangle": {"triangle"}}
POSITION_WORDS = {"left": {"left"}, "right": {"right"}, "top": {"top", "upper"}, "bottom": {"bottom", "lower"},
                  "center": {"center", "centre", "middle"}}
HELDOUT_IDS = {(COLORS.index(c), SHAPES.index(s)) for c, s in HELDOUT_PAIRS}


@pytest.fixture(scope="module")
def train():
    """The real, full training split (20,000 images): the held-out guarantees are checked on it."""
    return load_shapes(split="train")


@pytest.fixture(scope="module")
def heldout():
    return load_dataset("shapes", split="heldout")


@pytest.fixture(scope="module")
def seen():
    return load_dataset("shapes", split="test_seen")


def words(text):
    return re.findall(r"[a-z]+", text)


def triples(objects):
    return sorted((o["color"], o["shape"], o["position"]) for o in objects)


def test_constants_and_heldout_pairs_are_fixed():
    assert len(SEEN_PAIRS) + len(HELDOUT_PAIRS) == 18
    assert HELDOUT_PAIRS == (("green", "triangle"), ("magenta", "circle"), ("yellow", "square"))
    # every shape and colour of a held-out pair is still seen in training with other partners
    assert {s for _, s in SEEN_PAIRS} == set(SHAPES) and {c for c, _ in SEEN_PAIRS} == set(COLORS)
    assert NUM_SHAPES_CLASSES == 90 and class_name(0) == "red circle left" and class_name(89) == "magenta triangle center"
    assert class_index(COLORS.index("green"), SHAPES.index("triangle"), POSITIONS.index("top")) == 15 + 10 + 2
    assert all(class_name(class_index(*divmod(k // 5, 3), k % 5)) == class_name(k) for k in range(90))


def test_load_dataset_returns_captioned_dataset(seen):
    assert isinstance(seen, CaptionedImageDataset) and isinstance(seen, ImageDataset)
    assert seen.images.shape == (600, 3, 32, 32) and seen.images.dtype == torch.float32
    assert seen.images.min() >= -1 and seen.images.max() <= 1
    assert seen.name == "shapes" and seen.num_classes == 90 and seen.hflip is False
    assert seen.labels.dtype == torch.long and len(seen.captions) == len(seen.attributes) == 600
    assert all(1 <= len(c) <= 3 and len(set(c)) == len(c) for c in seen.captions)
    assert "CaptionedImageDataset(" in repr(seen)
    x, y = seen[5]
    assert x.shape == (3, 32, 32) and int(y) == int(seen.labels[5])


def test_deterministic_and_seeded():
    a = load_shapes(split="train", num_images=300)
    b = load_shapes(split="train", num_images=300)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.captions == b.captions and a.attributes == b.attributes
    c = load_shapes(split="train", num_images=300, seed=5)
    assert not torch.equal(a.images, c.images)
    assert torch.equal(load_shapes(split="heldout", num_images=30).images, load_shapes(split="heldout", num_images=30).images)


def test_sample_captions_is_reproducible(seen):
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    idx = torch.arange(50)
    a, b = seen.sample_captions(idx, g1), seen.sample_captions(idx, g2)
    assert a == b and all(cap in seen.captions[i] for i, cap in enumerate(a))
    picks = seen.sample_captions([0] * 200, torch.Generator().manual_seed(0))
    assert set(picks) == set(seen.captions[0])  # every caption of an image gets picked


def test_heldout_pairs_absent_from_train_attributes(train):
    assert len(train) == 20_000
    for a in train.attributes:
        for o in a["objects"]:
            assert (o["color"], o["shape"]) not in HELDOUT_IDS
    # all 15 seen pairs and all 5 positions do occur, and about 30% of the scenes have two objects
    pairs = Counter((o["color"], o["shape"]) for a in train.attributes for o in a["objects"])
    assert len(pairs) == 15
    two = sum(a["relation"] is not None for a in train.attributes) / len(train)
    assert 0.27 < two < 0.33
    assert Counter(a["relation"] for a in train.attributes if a["relation"]).keys() == set(RELATIONS)


def test_heldout_pairs_absent_from_train_captions(train):
    for caps, a in zip(train.captions, train.attributes):
        for cap in caps:
            w = words(cap)
            for color, shape in HELDOUT_PAIRS:
                for sw in SHAPE_WORDS[shape]:
                    # "green triangle" / "green big triangle" never appears in any caption
                    assert not re.search(rf"\b{color} (?:\w+ )?{sw}\b", cap), cap
                    if a["relation"] is None:  # single object: colour and shape words never co-occur
                        assert not (color in w and sw in w), cap
            parsed = parse_caption(cap)
            assert parsed is not None and all((o["color"], o["shape"]) not in HELDOUT_IDS for o in parsed)


def test_every_caption_parses_back_to_its_attributes(train, heldout, seen):
    for ds in (train, heldout, seen):
        for caps, a in zip(ds.captions, ds.attributes):
            for cap in caps:
                parsed = parse_caption(cap)
                assert parsed is not None, cap
                assert triples(parsed) == triples(a["objects"]), (cap, a)


def test_single_object_captions_mention_colour_shape_position(heldout, seen):
    for ds in (heldout, seen):
        for caps, a in zip(ds.captions, ds.attributes):
            for cap in caps:
                w = set(words(cap))
                assert COLORS[a["color"]] in w, cap
                assert w & SHAPE_WORDS[SHAPES[a["shape"]]], cap
                assert w & POSITION_WORDS[POSITIONS[a["position"]]], cap
                assert w <= set(VOCABULARY), cap


def test_captions_vary(train):
    caps = [c for cs in train.captions[:2000] for c in cs]
    assert len(set(caps)) > 0.8 * len(caps)  # short single-object captions ("bottom: red box") repeat
    firsts = Counter(c.split()[0] for c in caps)
    assert len(firsts) >= 8  # templates start differently: "a", "there", "left:", "on", "the", "two", ...
    assert any(c.startswith("there is a ") for c in caps) and any(":" in c for c in caps)
    assert any(w in c for c in caps for w in (" above ", " below ", " left of ", " right of "))


def test_eval_splits_are_balanced_and_aliased(heldout, seen):
    assert len(heldout) == 600
    combos = Counter((a["color"], a["shape"], a["position"]) for a in heldout.attributes)
    assert set((c, s) for c, s, _ in combos) == HELDOUT_IDS and set(combos.values()) == {40} and len(combos) == 15
    assert all(a["relation"] is None and len(a["objects"]) == 1 for a in heldout.attributes)
    combos = Counter((a["color"], a["shape"], a["position"]) for a in seen.attributes)
    assert len(combos) == 75 and set(combos.values()) == {8}
    assert not {(c, s) for c, s, _ in combos} & HELDOUT_IDS
    test = load_dataset("shapes", split="test")
    assert torch.equal(test.images, heldout.images) and test.captions == heldout.captions


def test_eval_images_are_fresh(train, seen):
    train_bytes = {bytes(x.numpy().tobytes()) for x in train.images}
    assert not any(bytes(x.numpy().tobytes()) in train_bytes for x in seen.images)


def test_labels_are_first_object_classes(train, heldout):
    for ds in (train, heldout):
        want = torch.tensor([class_index(a["color"], a["shape"], a["position"]) for a in ds.attributes])
        assert torch.equal(ds.labels, want)
        for a in ds.attributes:
            assert (a["color"], a["shape"], a["position"]) == tuple(a["objects"][0].values())
    assert ds.class_names[int(ds.labels[0])] == class_name(int(ds.labels[0]))
    unlabeled = load_shapes(split="heldout", num_images=20, labels=False)
    assert unlabeled.num_classes == 0 and not unlabeled.labels.any() and len(unlabeled.captions) == 20
    single = load_shapes(split="train", num_images=200, two_object_fraction=0.0)
    assert all(a["relation"] is None for a in single.attributes)


def _objects_in_image(img, background):
    """Pixels that clearly differ from the background: their median colour and centroid."""
    fg = (img - background[:, None, None]).abs().amax(0) > 0.5  # (H, W)
    ys, xs = torch.nonzero(fg, as_tuple=True)
    return fg, img[:, fg].median(dim=1).values, (xs.float().mean() + 0.5, ys.float().mean() + 0.5)


def test_images_dark_background_and_shape_of_right_colour_at_right_place(seen, heldout):
    palette = torch.from_numpy(PALETTE) / 127.5 - 1  # (6, 3)
    nominal = torch.tensor([[8, 16], [24, 16], [16, 8], [16, 24], [16, 16]], dtype=torch.float32)
    for ds in (seen, heldout):
        x = ds.images
        corners = torch.stack([x[:, :, 0, 0], x[:, :, 0, -1], x[:, :, -1, 0], x[:, :, -1, -1]])
        assert corners.max() < -0.65  # gray level <= 40 of 255
        assert (corners[:, :, 0] == corners[:, :, 1]).all() and (corners[:, :, 1] == corners[:, :, 2]).all()  # gray
        for img, a in zip(x, ds.attributes):
            fg, color, (cx, cy) = _objects_in_image(img, img[:, 0, 0])
            assert 25 <= int(fg.sum()) <= 200  # a solid shape of radius 4-6 px, not a speck nor a blob
            assert int(torch.cdist(color[None], palette).argmin()) == a["color"]
            assert (color - palette[a["color"]]).abs().max() < 14 / 127.5  # the colour jitter is ±12
            assert int(torch.cdist(torch.stack([cx, cy])[None], nominal).argmin()) == a["position"]


def test_two_object_images_have_both_colours(train):
    palette = torch.from_numpy(PALETTE) / 127.5 - 1
    n = 0
    for img, a in zip(train.images[:500], train.attributes[:500]):
        if a["relation"] is None:
            continue
        n += 1
        horizontal = a["relation"] in ("left of", "right of")
        for o in a["objects"]:
            half = {"left": img[:, :, :16], "right": img[:, :, 16:], "top": img[:, :16], "bottom": img[:, 16:]}[
                POSITIONS[o["position"]]]
            _, color, _ = _objects_in_image(half, img[:, 0, 0])
            assert int(torch.cdist(color[None], palette).argmin()) == o["color"]
        assert horizontal == ({o["position"] for o in a["objects"]} == {0, 1})
    assert n > 100


def test_other_resolutions_and_channels():
    ds32 = load_shapes(split="test_seen", num_images=75)
    ds64 = load_shapes(split="test_seen", num_images=75, resolution=64)
    assert ds64.images.shape == (75, 3, 64, 64) and ds64.captions == ds32.captions
    # the same scenes, rendered twice as finely: 2x2 means agree with the 32 px render up to AA and rounding
    assert (F.avg_pool2d(ds64.images, 2) - ds32.images).abs().mean() < 0.02
    gray = load_shapes(split="test_seen", num_images=75, channels=1)
    assert gray.images.shape == (75, 1, 32, 32)
    w = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
    expected = (((ds32.images + 1) * 127.5).round() * w).sum(1, keepdim=True).round() / 127.5 - 1
    assert (gray.images - expected).abs().max() < 1e-5


def test_render_single_objects_any_pair():
    u8 = render_single_objects([1, 5], [2, 0], [4, 0], seed=3)  # green triangle center, magenta circle left
    assert u8.shape == (2, 3, 32, 32) and u8.dtype == np.uint8
    assert np.array_equal(u8, render_single_objects([1, 5], [2, 0], [4, 0], seed=3))
    with pytest.raises(ValueError, match="shapes ids must be in"):
        render_single_objects([0], [3], [0])
    with pytest.raises(ValueError, match="equal length"):
        render_single_objects([0, 1], [0], [0])


def test_parse_caption_reads_plain_prompts():
    assert parse_caption("A Red circle on the LEFT.") == [{"color": 0, "shape": 0, "position": 0}]
    assert parse_caption("the box near the bottom is magenta") == [{"color": 5, "shape": 1, "position": 3}]
    assert triples(parse_caption("a green disc below a small blue triangle")) == [(1, 0, 3), (2, 2, 2)]
    assert triples(parse_caption("left: red circle, right: blue disk")) == [(0, 0, 0), (2, 0, 1)]
    assert parse_caption("a purple hexagon") is None
    assert parse_caption("a red circle") is None  # no position


def test_bad_arguments():
    with pytest.raises(ValueError, match="heldout, test_seen"):
        load_dataset("shapes", split="validation")
    with pytest.raises(ValueError, match="hflip=True is not valid"):
        load_dataset("shapes", split="heldout", hflip=True)
    with pytest.raises(ValueError, match="split must be one of train, test, all"):
        load_dataset("digits", split="heldout")  # the extra splits belong to shapes only
    with pytest.raises(ValueError, match="num_images"):
        load_shapes(num_images=0)
    with pytest.raises(ValueError, match="split='all'"):
        load_shapes(split="all", num_images=10)
    with pytest.raises(ValueError, match="two_object_fraction"):
        load_shapes(two_object_fraction=1.5)
    with pytest.raises(ValueError, match="resolution"):
        load_shapes(resolution=0)
    with pytest.raises(ValueError, match="one caption list and one attribute dict per image"):
        CaptionedImageDataset(torch.zeros(2, 3, 4, 4), captions=[["a"]], attributes=[{}, {}])
