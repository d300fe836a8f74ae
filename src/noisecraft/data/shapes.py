"""The built-in `shapes` dataset: captioned 32x32 scenes of coloured shapes, for text-to-image.

Every image is one or two solid shapes on a plain dark-gray background, rendered procedurally
(numpy, analytic anti-aliasing) and deterministic from a seed:

* colours: red, green, blue, yellow, cyan, magenta (`COLORS`, ids 0-5)
* shapes:  circle, square, triangle                  (`SHAPES`, ids 0-2)
* positions: left, right, top, bottom, center       (`POSITIONS`, ids 0-4)

with a random size, a ±1 px jitter of the position, a small rotation of squares and triangles, a
slight jitter of the colour and of the background's gray level, so the images are not memorized
trivially. Two-object scenes place the objects at left/right or top/bottom and are described by a
relation (`RELATIONS`: "above", "below", "left of", "right of", always "first REL second").

Held-out combinations (compositional generalization). Three of the 18 colour-shape pairs never
appear in the training split, anywhere in any image or caption (`HELDOUT_PAIRS`):

    green triangle, magenta circle, yellow square

Every colour and every shape is still seen in training with other partners, so a model that
composes "colour" and "shape" can draw the held-out pairs from their words.

Splits (`SHAPES_SPLITS`; the default sizes are pinned, `num_images` overrides them):

    "train"      20,000 images, seed 0: each scene has two objects with probability 0.3, else one;
                 colour-shape pairs drawn uniformly from the 15 seen pairs (the two objects of a
                 scene always differ), positions / relations uniformly.
    "heldout"    600 single-object scenes of the held-out pairs only, seed 2: every (pair, position)
    = "test"     combination equally often (3 pairs x 5 positions x 40), in that cyclic order.
    "test_seen"  600 single-object scenes of the seen pairs, seed 1 (fresh images, not in train):
                 15 pairs x 5 positions x 8, cyclic order.
    "all"        train + test_seen + heldout, concatenated in that order.

Labels. `labels` is the class of the (first) object: class = color*15 + shape*5 + position, 90
classes named like "red circle left" (`class_index`, `class_name`). Two-object scenes get the
label of their first object (the subject "A" of "A above B"); for purely class-conditional
training use `load_shapes(..., two_object_fraction=0.0)` so every label describes the whole image.

Captions and attributes. Each image carries `captions_per_image` (default 3) distinct English
captions drawn from templates with synonyms and word-order variation ("a red circle on the left",
"left: red circle", "there is a green triangle at the top", "a small blue square above a yellow
triangle", "a yellow triangle below a small blue square", ...), and one attribute dict:

    {"color": c, "shape": s, "position": p,          # the first object (ids), as in `labels`
     "objects": [{"color": c, "shape": s, "position": p}, ...],   # one or two objects
     "relation": None | "above" | "below" | "left of" | "right of"}  # objects[0] REL objects[1]

Colour words are always the exact colour names; shape synonyms are "disc"/"disk" (circle) and
"box" (square); size words ("small", "big", ...) appear only when the object really is in the
smallest or largest third of its size range. `parse_caption` reads any of these captions back to
its objects. `VOCABULARY` lists every word the templates can produce.

Flips: a horizontal flip swaps "left" and "right" and would contradict the captions
and labels, so `hflip=True` is refused.

Generating the 20,000 training images takes about a second (vectorized numpy), so nothing is
cached on disk; `SHAPES_VERSION` is bumped whenever the pixels, captions or splits change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .dataset import ImageDataset, check_channels, check_resolution, to_unit_range

__all__ = [
    "SHAPES_VERSION", "COLORS", "SHAPES", "POSITIONS", "RELATIONS", "HELDOUT_PAIRS", "SEEN_PAIRS",
    "SHAPE_WORDS", "SHAPES_SPLITS", "SHAPES_SPLIT_SIZES", "NUM_SHAPES_CLASSES", "VOCABULARY", "PALETTE",
    "CaptionedImageDataset", "load_shapes", "class_index", "class_name", "parse_caption",
    "render_single_objects",
]

SHAPES_VERSION = 1  # bump when rendering, captions or splits change: pinned tests and caches key on it

COLORS = ("red", "green", "blue", "yellow", "cyan", "magenta")
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom", "center")
RELATIONS = ("above", "below", "left of", "right of")
NUM_SHAPES_CLASSES = len(COLORS) * len(SHAPES) * len(POSITIONS)  # 90

HELDOUT_PAIRS: tuple[tuple[str, str], ...] = (("green", "triangle"), ("magenta", "circle"), ("yellow", "square"))
SEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c in COLORS for s in SHAPES if (c, s) not in HELDOUT_PAIRS
)

SHAPES_SPLITS = ("train", "test", "heldout", "test_seen", "all")
SHAPES_SPLIT_SIZES = {"train": 20_000, "test_seen": 600, "heldout": 600}
_SPLIT_SEEDS = {"train": 0, "test_seen": 1, "heldout": 2}
TWO_OBJECT_FRACTION = 0.3
NATIVE_RESOLUTION = 32

# Rendering constants; lengths are in pixels of the native 32x32 frame (scaled for other resolutions).
PALETTE = np.array(  # the nominal RGB (0..255) of each colour; rendered colours jitter ±12 per channel
    [[230, 40, 40], [40, 200, 60], [50, 90, 245], [235, 215, 40], [40, 210, 225], [220, 50, 215]], dtype=np.float32
)  # (6, 3), indexed like COLORS
_XY = np.array([[8, 16], [24, 16], [16, 8], [16, 24], [16, 16]], dtype=np.float32)  # (5, 2) centres, like POSITIONS
_SIZE_SINGLE = (4.0, 6.2)  # "radius" r: circle radius; square half-side 0.9 r; triangle circumradius 1.25 r
_SIZE_PAIR = (3.5, 5.3)  # smaller, so two objects 16 px apart never touch
_JITTER = 1.0  # ± px on each axis
_MAX_ANGLE = {0: 0.0, 1: 10.0, 2: 12.0}  # degrees of random rotation per shape id
_COLOR_JITTER = 12.0  # ± per channel, 0..255 scale
_BACKGROUND = (8, 40)  # gray level range, 0..255
# relation -> (position of objects[0], position of objects[1])
_RELATION_POSITIONS = {"above": (2, 3), "below": (3, 2), "left of": (0, 1), "right of": (1, 0)}
_INVERSE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}

# --- caption vocabulary ---------------------------------------------------------------------------
# Every word a caption uses for each shape id (the name and its synonyms).
SHAPE_WORDS = {0: ("circle", "disc", "disk"), 1: ("square", "box"), 2: ("triangle",)}
_POSITION_PHRASES = {
    0: ("on the left", "at the left", "to the left", "on the left side", "in the left half"),
    1: ("on the right", "at the right", "to the right", "on the right side", "in the right half"),
    2: ("at the top", "near the top", "on the top", "in the upper half", "up top"),
    3: ("at the bottom", "near the bottom", "on the bottom", "in the lower half", "along the bottom"),
    4: ("in the center", "in the middle", "in the centre", "at the center"),
}
_POSITION_SHORT = {0: ("left",), 1: ("right",), 2: ("top",), 3: ("bottom",), 4: ("center", "middle", "centre")}
_RELATION_PHRASES = {
    "above": ("above", "over", "on top of"),
    "below": ("below", "under", "beneath", "underneath"),
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("big", "large")}
_PREFIXES = ("a picture of", "an image of", "a drawing of")
_SINGLE_TEMPLATES = (
    "{a} {obj} {pos}",
    "{obj} {pos}",
    "{posw}: {obj}",
    "there is {a} {obj} {pos}",
    "{pos}, {a} {obj}",
    "{obj}, {posw}",
    "{a} {size}{shape} {pos}, colored {color}",
    "the {shape} {pos} is {color}",
    "{prefix} {a} {obj} {pos}",
)
_PAIR_TEMPLATES = (
    "{a} {A} {rel} {b} {B}",
    "{A} {rel} {B}",
    "there is {a} {A} {rel} {b} {B}",
    "{b} {B} {inv} {a} {A}",
    "{a} {A} {posA} and {b} {B} {posB}",
    "two shapes: {a} {A} {posA}, {b} {B} {posB}",
    "{poswA}: {A}, {poswB}: {B}",
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _vocabulary() -> tuple[str, ...]:
    texts = list(COLORS) + [" ".join(_PREFIXES), "a an one there is the colored two shapes and of"]
    for table in (SHAPE_WORDS, _POSITION_PHRASES, _POSITION_SHORT, _RELATION_PHRASES, _SIZE_WORDS):
        texts += [w for words in table.values() for w in words]
    return tuple(sorted({w for t in texts for w in _words(t)}))


VOCABULARY: tuple[str, ...] = _vocabulary()


def class_index(color: int, shape: int, position: int) -> int:
    """The class of a single object: color*15 + shape*5 + position (0..89)."""
    return color * len(SHAPES) * len(POSITIONS) + shape * len(POSITIONS) + position


def class_name(index: int) -> str:
    """'red circle left' for class 0, ..., 'magenta triangle center' for class 89."""
    if not 0 <= index < NUM_SHAPES_CLASSES:
        raise ValueError(f"shapes class index must be in [0, {NUM_SHAPES_CLASSES}), got {index}")
    c, rest = divmod(index, len(SHAPES) * len(POSITIONS))
    s, p = divmod(rest, len(POSITIONS))
    return f"{COLORS[c]} {SHAPES[s]} {POSITIONS[p]}"


def _pair_ids(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    return np.array([(COLORS.index(c), SHAPES.index(s)) for c, s in pairs], dtype=np.int64)  # (P, 2)


# --- the dataset type ----------------------------------------------------------------------------
def check_captions(captions: list[list[str]], attributes: list[dict], n: int, item: str) -> None:
    """One non-empty list of caption strings and one attribute dict per item (image, clip), or ValueError."""
    if len(captions) != n or len(attributes) != n:
        raise ValueError(f"need one caption list and one attribute dict per {item} ({n}), "
                         f"got {len(captions)} and {len(attributes)}")
    for i, caps in enumerate(captions):
        if not caps or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"captions[{i}] must be a non-empty list of strings, got {caps!r}")


class CaptionedImageDataset(ImageDataset):
    """An `ImageDataset` whose images also carry captions and structured attributes.

    captions: one list of one or more captions per image (the trainer picks one per step).
    attributes: one dict per image (see the module docstring for the shapes layout).
    `dataset[i]` still returns (image, label), so class-conditional training works unchanged.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        captions: list[list[str]],
        attributes: list[dict],
        class_names: list[str] | None = None,
        name: str = "",
        hflip: bool = False,
    ) -> None:
        super().__init__(images, labels, class_names=class_names, name=name, hflip=hflip)
        check_captions(captions, attributes, len(self), "image")
        self.captions = captions
        self.attributes = attributes

    def sample_captions(self, indices: Tensor | Sequence[int], generator: torch.Generator | None = None) -> list[str]:
        """One caption per index, chosen uniformly among that image's captions with `generator`."""
        idx = [int(i) for i in indices]
        u = torch.rand(len(idx), generator=generator, dtype=torch.float64).tolist()
        return [self.captions[i][min(int(r * len(self.captions[i])), len(self.captions[i]) - 1)] for i, r in zip(idx, u)]

    def __repr__(self) -> str:
        return super().__repr__().replace("ImageDataset(", "CaptionedImageDataset(", 1)


# --- scene sampling ------------------------------------------------------------------------------
class _Scenes:
    """Objects of N scenes as flat arrays (M objects), plus per-scene background and relation."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.image: list[np.ndarray] = []
        self.fields: dict[str, list[np.ndarray]] = {k: [] for k in ("color", "shape", "position", "slot")}
        self.relation: list[str | None] = [None] * n

    def add(self, image: np.ndarray, color: np.ndarray, shape: np.ndarray, position: np.ndarray, slot: int) -> None:
        self.image.append(image)
        for key, value in (("color", color), ("shape", shape), ("position", position)):
            self.fields[key].append(value.astype(np.int64))
        self.fields["slot"].append(np.full(len(image), slot, dtype=np.int64))

    def finish(self, rng: np.random.RandomState) -> dict[str, np.ndarray]:
        """Concatenate, sort by (slot, image) and draw the geometry of every object."""
        o = {"image": np.concatenate(self.image)} | {k: np.concatenate(v) for k, v in self.fields.items()}
        order = np.lexsort((o["image"], o["slot"]))
        o = {k: v[order] for k, v in o.items()}
        m = len(o["image"])
        # Scenes with two objects use the smaller size range; one uniform draw serves both.
        has_pair = np.zeros(self.n, dtype=bool)
        has_pair[o["image"][o["slot"] == 1]] = True
        lo = np.where(has_pair[o["image"]], _SIZE_PAIR[0], _SIZE_SINGLE[0])
        hi = np.where(has_pair[o["image"]], _SIZE_PAIR[1], _SIZE_SINGLE[1])
        u = rng.random_sample((m, 7))
        o["size_frac"] = u[:, 0]
        o["r"] = lo + (hi - lo) * u[:, 0]
        o["x"] = _XY[o["position"], 0] + _JITTER * (2 * u[:, 1] - 1)
        o["y"] = _XY[o["position"], 1] + _JITTER * (2 * u[:, 2] - 1)
        max_angle = np.array([_MAX_ANGLE[s] for s in range(len(SHAPES))])[o["shape"]]
        o["angle"] = np.deg2rad(max_angle * (2 * u[:, 3] - 1))
        o["rgb"] = np.clip(PALETTE[o["color"]] + _COLOR_JITTER * (2 * u[:, 4:7] - 1), 0, 255)
        o["background"] = rng.randint(_BACKGROUND[0], _BACKGROUND[1] + 1, size=self.n).astype(np.float32)
        return o


def _sample_train_scenes(n: int, pairs: np.ndarray, two_object_fraction: float, rng: np.random.RandomState) -> _Scenes:
    """Random scenes: each is two-object with probability `two_object_fraction`."""
    sc = _Scenes(n)
    two = rng.random_sample(n) < two_object_fraction
    pi = rng.randint(len(pairs), size=n)
    first = pairs[pi]  # (n, 2) colour and shape ids
    # The second object is always a different pair (so "the red circle" is never ambiguous).
    other = (pi + 1 + rng.randint(len(pairs) - 1, size=n)) % len(pairs)
    rel = rng.randint(len(RELATIONS), size=n)
    pos_single = rng.randint(len(POSITIONS), size=n)
    rel_pos = np.array([_RELATION_POSITIONS[r] for r in RELATIONS])  # (4, 2)
    pos0 = np.where(two, rel_pos[rel, 0], pos_single)
    images = np.arange(n)
    sc.add(images, first[:, 0], first[:, 1], pos0, slot=0)
    t = np.flatnonzero(two)
    sc.add(t, pairs[other[t], 0], pairs[other[t], 1], rel_pos[rel[t], 1], slot=1)
    for i in t.tolist():
        sc.relation[i] = RELATIONS[rel[i]]
    return sc


def _sample_balanced_singles(n: int, pairs: np.ndarray) -> _Scenes:
    """Single-object scenes cycling through every (pair, position): image i is combo i mod (P*5)."""
    sc = _Scenes(n)
    combo = np.arange(n) % (len(pairs) * len(POSITIONS))
    pair, pos = np.divmod(combo, len(POSITIONS))
    sc.add(np.arange(n), pairs[pair, 0], pairs[pair, 1], pos, slot=0)
    return sc


# --- rendering -----------------------------------------------------------------------------------
def _coverage(shape: int, dx: np.ndarray, dy: np.ndarray, r: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Pixel coverage in [0, 1] of objects centred at dx = dy = 0: (M, R, R) from offsets (M, R, R).

    Each shape is an intersection of half-planes (or a disc) with a signed distance d in pixels;
    clip(0.5 - d, 0, 1) is the area of a 1-px box filter covered by a straight edge, i.e. the
    classic analytic anti-aliasing (exact for edges, slightly soft at corners).
    """
    r = r[:, None, None]
    if shape == 0:  # circle of radius r
        d = np.sqrt(dx * dx + dy * dy) - r
    else:
        c = np.cos(angle).astype(np.float32)[:, None, None]
        s = np.sin(angle).astype(np.float32)[:, None, None]
        u, v = c * dx + s * dy, -s * dx + c * dy  # rotate into the shape's frame
        if shape == 1:  # square of half-side 0.9 r
            d = np.maximum(np.abs(u), np.abs(v)) - 0.9 * r
        else:  # equilateral triangle, apex up (y grows downwards), circumradius 1.25 r
            rc = 1.25 * r
            v = v - 0.25 * rc  # put the centre of the bounding box (not the centroid) at the position
            k = np.float32(math.sqrt(3) / 2)
            d = np.maximum(np.maximum(v, k * u - 0.5 * v), -k * u - 0.5 * v) - 0.5 * rc  # inradius rc/2
    return np.clip(np.float32(0.5) - d, 0.0, 1.0)


def _render(o: dict[str, np.ndarray], n: int, resolution: int) -> np.ndarray:
    """uint8 (N, 3, R, R) images of the scenes in `o` (see `_Scenes.finish`), in chunks of images."""
    R, scale = resolution, resolution / NATIVE_RESOLUTION
    out = np.empty((n, 3, R, R), dtype=np.uint8)
    grid = np.arange(R, dtype=np.float32) + 0.5  # pixel centres
    chunk = max(1, 500_000 // (R * R))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        canvas = np.empty((stop - start, 3, R, R), dtype=np.float32)
        canvas[:] = o["background"][start:stop, None, None, None]
        sel = np.flatnonzero((o["image"] >= start) & (o["image"] < stop))
        for slot in np.unique(o["slot"][sel]):  # composite the first objects, then the second ones
            mine = sel[o["slot"][sel] == slot]
            img = o["image"][mine] - start  # (M,) images that have an object in this slot
            alpha = np.empty((len(mine), 1, R, R), dtype=np.float32)
            for shape in range(len(SHAPES)):
                k = np.flatnonzero(o["shape"][mine] == shape)
                if not len(k):
                    continue
                m = mine[k]
                dx = grid[None, None, :] - (scale * o["x"][m]).astype(np.float32)[:, None, None]  # (M, 1, R)
                dy = grid[None, :, None] - (scale * o["y"][m]).astype(np.float32)[:, None, None]  # (M, R, 1)
                dx, dy = np.broadcast_arrays(dx, dy)  # (M, R, R) views
                alpha[k, 0] = _coverage(shape, dx, dy, (scale * o["r"][m]).astype(np.float32), o["angle"][m])
            rgb = o["rgb"][mine].astype(np.float32)[:, :, None, None]  # (M, 3, 1, 1)
            below = canvas if len(img) == len(canvas) else canvas[img]  # slot 0 covers every image, in order
            below += alpha * (rgb - below)  # "over" compositing of a solid colour with coverage alpha
            if below is not canvas:
                canvas[img] = below
        np.rint(canvas, out=canvas)
        out[start:stop] = np.clip(canvas, 0, 255, out=canvas)
    return out


# --- captions ------------------------------------------------------------------------------------
def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


_K = 2520  # lcm(1..10): k % n is uniform on 0..n-1 for a uniform k in 0.._K-1 and every option count n <= 10


def _pick(options: Sequence[str], k: int) -> str:
    return options[k % len(options)]


def _size_word(frac: float, k: int) -> str:
    """A size adjective (with a trailing space) only when it is true, and then half the time."""
    if k % 2 == 0:
        return ""
    if frac < 1 / 3:
        return _pick(_SIZE_WORDS["small"], k // 2) + " "
    if frac > 2 / 3:
        return _pick(_SIZE_WORDS["large"], k // 2) + " "
    return ""


def _phrase(color: int, shape: int, frac: float, k0: int, k1: int) -> tuple[str, str, str]:
    """(object phrase "small red circle", shape word, size prefix)."""
    size = _size_word(frac, k0)
    shape_word = _pick(SHAPE_WORDS[shape], k1)
    return f"{size}{COLORS[color]} {shape_word}", shape_word, size


def _caption_single(color: int, shape: int, pos: int, frac: float, k: list[int]) -> str:
    template = _pick(_SINGLE_TEMPLATES, k[0])
    obj, shape_word, size = _phrase(color, shape, frac, k[1], k[2])
    one = k[3] % 3 == 0
    if template.startswith("{a} {size}{shape}"):
        article = "one" if one else _article(size or shape_word)
    else:
        article = "one" if one else _article(obj)
    return template.format(
        a=article, obj=obj, size=size, shape=shape_word, color=COLORS[color],
        pos=_pick(_POSITION_PHRASES[pos], k[4]), posw=_pick(_POSITION_SHORT[pos], k[5]),
        prefix=_pick(_PREFIXES, k[6]),
    )


def _caption_pair(objs: list[tuple[int, int, int, float]], relation: str, k: list[int]) -> str:
    template = _pick(_PAIR_TEMPLATES, k[0])
    (c0, s0, p0, f0), (c1, s1, p1, f1) = objs
    A = _phrase(c0, s0, f0, k[1], k[2])[0]
    B = _phrase(c1, s1, f1, k[3], k[4])[0]
    return template.format(
        a=_article(A), b=_article(B), A=A, B=B,
        rel=_pick(_RELATION_PHRASES[relation], k[5]), inv=_pick(_RELATION_PHRASES[_INVERSE[relation]], k[6]),
        posA=_pick(_POSITION_PHRASES[p0], k[7]), posB=_pick(_POSITION_PHRASES[p1], k[8]),
        poswA=_pick(_POSITION_SHORT[p0], k[9]), poswB=_pick(_POSITION_SHORT[p1], k[10]),
    )


def _captions_and_attributes(
    o: dict[str, np.ndarray], sc: _Scenes, per_image: int, rng: np.random.RandomState
) -> tuple[list[list[str]], list[dict]]:
    n = sc.n
    objs: list[list[tuple[int, int, int, float]]] = [[] for _ in range(n)]
    for i, c, s, p, f in zip(o["image"].tolist(), o["color"].tolist(), o["shape"].tolist(),
                             o["position"].tolist(), o["size_frac"].tolist()):
        objs[i].append((c, s, p, f))
    # All random choices are drawn up front: `per_image` draws per image, and spares used (in order)
    # only when a draw repeats an earlier caption of the same image.
    ks = rng.randint(_K, size=(n, per_image, 11)).tolist()
    spares = rng.randint(_K, size=(n, 3 * per_image, 11))
    captions, attributes = [], []
    for i in range(n):
        rel, obj = sc.relation[i], objs[i]
        found: list[str] = []
        for t in range(4 * per_image):
            k = ks[i][t] if t < per_image else spares[i, t - per_image].tolist()
            cap = _caption_single(*obj[0], k) if rel is None else _caption_pair(obj, rel, k)
            if cap not in found:
                found.append(cap)
                if len(found) == per_image:
                    break
        captions.append(found)
        items = [{"color": c, "shape": s, "position": p} for c, s, p, _ in obj]
        attributes.append({**items[0], "objects": items, "relation": rel})
    return captions, attributes


# --- caption parsing -----------------------------------------------------------------------------
_SHAPE_OF_WORD = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_POSITION_OF_WORD = {"left": 0, "right": 1, "top": 2, "upper": 2, "bottom": 3, "lower": 3,
                     "center": 4, "centre": 4, "middle": 4}


def _relation_in(tokens: list[str]) -> str | None:
    for i, t in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in ("above", "over") or (t == "top" and nxt == "of"):
            return "above"
        if t in ("below", "under", "beneath", "underneath"):
            return "below"
        if t in ("left", "right") and nxt == "of":
            return f"{t} of"
    return None


def parse_caption(caption: str) -> list[dict[str, int]] | None:
    """Objects described by a shapes caption, in order of mention, or None if it cannot be read.

    Returns [{"color": id, "shape": id, "position": id}, ...] (one or two objects). Understands
    every caption the dataset generates (and simple prompts in the same words), e.g.
    "a red circle on the left", "left: red circle", "the circle at the top is red",
    "a blue square above a yellow triangle", "left: red circle, right: blue disc".
    """
    tokens = _words(caption)
    colors = [(i, COLORS.index(t)) for i, t in enumerate(tokens) if t in COLORS]
    shapes = [(i, _SHAPE_OF_WORD[t]) for i, t in enumerate(tokens) if t in _SHAPE_OF_WORD]
    if len(colors) == 1 and len(shapes) == 1:
        rel = _relation_in(tokens)
        positions = [_POSITION_OF_WORD[t] for t in tokens if t in _POSITION_OF_WORD]
        if rel is not None or len(set(positions)) != 1:
            return None
        return [{"color": colors[0][1], "shape": shapes[0][1], "position": positions[0]}]
    if len(colors) != 2 or len(shapes) != 2:
        return None
    # Two objects: each colour word is directly followed (after no other token) by its shape word.
    objects = []
    for ci, c in colors:
        match = [s for si, s in shapes if si == ci + 1]
        if not match:
            return None
        objects.append({"color": c, "shape": match[0], "position": -1})
    between = tokens[colors[0][0] + 2: colors[1][0]]
    rel = _relation_in(between)
    if rel is not None:
        objects[0]["position"], objects[1]["position"] = _RELATION_POSITIONS[rel]
        return objects
    # "A on the left and B on the right" / "left: A, right: B": position words in order.
    positions = [_POSITION_OF_WORD[t] for t in tokens if t in _POSITION_OF_WORD]
    if len(positions) != 2 or _relation_in(tokens) is not None:
        return None
    objects[0]["position"], objects[1]["position"] = positions
    return objects


# --- public loaders ------------------------------------------------------------------------------
def _generate(
    split: str, num_images: int | None, seed: int | None, resolution: int, two_object_fraction: float,
    captions_per_image: int,
) -> tuple[np.ndarray, list[list[str]], list[dict]]:
    n = SHAPES_SPLIT_SIZES[split] if num_images is None else num_images
    seed = _SPLIT_SEEDS[split] if seed is None else seed
    geometry_rng = np.random.RandomState([seed, 0])  # legacy generator: its stream is frozen across numpy versions
    caption_rng = np.random.RandomState([seed, 1])
    if split == "train":
        sc = _sample_train_scenes(n, _pair_ids(SEEN_PAIRS), two_object_fraction, geometry_rng)
    else:
        sc = _sample_balanced_singles(n, _pair_ids(SEEN_PAIRS if split == "test_seen" else HELDOUT_PAIRS))
    o = sc.finish(geometry_rng)
    images = _render(o, n, resolution)
    captions, attributes = _captions_and_attributes(o, sc, captions_per_image, caption_rng)
    return images, captions, attributes


def render_single_objects(
    colors: Sequence[int], shapes: Sequence[int], positions: Sequence[int], *, seed: int = 0, resolution: int = 32
) -> np.ndarray:
    """uint8 (N, 3, R, R) renders of single objects with the given ids (random size/jitter from `seed`).

    Any colour-shape pair may be asked for, held-out ones included (the judge trains on these).
    """
    c, s, p = (np.asarray(v, dtype=np.int64) for v in (colors, shapes, positions))
    if not (c.shape == s.shape == p.shape and c.ndim == 1):
        raise ValueError(f"colors, shapes and positions must be 1-D of equal length, got {c.shape}, {s.shape}, {p.shape}")
    for name, v, k in (("colors", c, len(COLORS)), ("shapes", s, len(SHAPES)), ("positions", p, len(POSITIONS))):
        if len(v) and (v.min() < 0 or v.max() >= k):
            raise ValueError(f"{name} ids must be in [0, {k}), got values in [{v.min()}, {v.max()}]")
    check_resolution(resolution)
    sc = _Scenes(len(c))
    sc.add(np.arange(len(c)), c, s, p, slot=0)
    return _render(sc.finish(np.random.RandomState([seed, 0])), len(c), resolution)


def load_shapes(
    *,
    resolution: int | None = None,
    split: str = "train",
    channels: int | None = None,
    labels: bool = True,
    hflip: bool = False,
    num_images: int | None = None,
    seed: int | None = None,
    two_object_fraction: float = TWO_OBJECT_FRACTION,
    captions_per_image: int = 3,
) -> CaptionedImageDataset:
    """The captioned `shapes` dataset (see the module docstring for splits, held-out pairs, labels).

    resolution: None or 32 is the native size; any other size renders the same scenes directly at
        that size (geometry scales, nothing is resampled).
    channels: None or 3 gives RGB; 1 gives luma (0.299 R + 0.587 G + 0.114 B) - colours then differ
        only in brightness, so captions are no longer fully grounded.
    labels: False drops the 90 classes (all-zero labels, num_classes 0); captions stay.
    num_images / seed: override the split's pinned size / seed (eval splits stay balanced: image i
        is combination i mod #combinations).
    two_object_fraction: share of two-object scenes in "train" (0 gives single-object scenes only).
    captions_per_image: distinct captions drawn per image (fewer only if the templates run out).
    """
    check_resolution(resolution)
    check_channels(channels)
    if split not in SHAPES_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SHAPES_SPLITS)} for 'shapes'; got {split!r}")
    if hflip:
        raise ValueError("hflip=True is not valid for 'shapes': a flip swaps left and right and contradicts the "
                         "captions and labels; pass hflip=False")
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1):
        raise ValueError(f"num_images must be a positive integer or None, got {num_images!r}")
    if not 0.0 <= two_object_fraction <= 1.0:
        raise ValueError(f"two_object_fraction must be in [0, 1], got {two_object_fraction!r}")
    if isinstance(captions_per_image, bool) or not isinstance(captions_per_image, int) or captions_per_image < 1:
        raise ValueError(f"captions_per_image must be a positive integer, got {captions_per_image!r}")
    res = resolution or NATIVE_RESOLUTION
    parts = ("train", "test_seen", "heldout") if split == "all" else ("heldout" if split == "test" else split,)
    if split == "all" and (num_images is not None or seed is not None):
        raise ValueError("split='all' concatenates the pinned splits; num_images and seed apply to one split only")
    arrays, captions, attributes = [], [], []
    for part in parts:
        a, c, at = _generate(part, num_images, seed, res, two_object_fraction, captions_per_image)
        arrays.append(a), captions.extend(c), attributes.extend(at)
    u8 = torch.from_numpy(np.concatenate(arrays))  # (N, 3, R, R)
    if channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
        u8 = (u8.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    x = to_unit_range(u8).contiguous()
    y = torch.tensor([class_index(a["color"], a["shape"], a["position"]) for a in attributes], dtype=torch.long)
    names = [class_name(k) for k in range(NUM_SHAPES_CLASSES)]
    return CaptionedImageDataset(
        x, y if labels else None, captions=captions, attributes=attributes,
        class_names=names if labels else None, name="shapes", hflip=False,
    )
