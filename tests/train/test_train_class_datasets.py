"""A class-conditional + classifier-free-guidance path for every built-in dataset and for image
folders with one sub-folder per class: train a few steps, then `Run.generate(spec, n, class_labels=...)`
with guidance w."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.data import load_dataset
from noisecraft.config import ConfigError, load_config
from noisecraft.train import build_dataset, train
from noisecraft.runs import Run

TINY = ["train.steps=2", "train.batch_size=8", "sample.nfe=2", "sample.per_class=1", "ema.phema_every=0",
        "data.resolution=8", "net.name=unet-tiny", "train.tensorboard=false"]


def _generate_guided(run, classes):
    info = Run.open(run)
    assert info.num_classes > 0
    labels = torch.tensor(classes)
    spec = info.spec(seed=0, solver="euler", nfe=3)
    x = info.generate(spec.replace(guidance=2.0), len(classes), class_labels=labels)
    unguided = info.generate(spec.replace(guidance=1.0), len(classes), class_labels=labels)
    assert x.shape == (len(classes), info.shape[0], 8, 8) and bool(x.isfinite().all())
    assert not torch.equal(x, unguided)  # reaches the net; its direction: test_guidance_moves_samples_toward_the_requested_class
    return info


def test_shapes_class_preset_uses_single_object_scenes():
    cfg = load_config("shapes-class", ["data.resolution=8"])
    assert cfg.data.conditional and cfg.data.options == {"two_object_fraction": 0.0}
    ds = build_dataset(cfg)
    assert ds.num_classes == 90
    assert all(a["relation"] is None and len(a["objects"]) == 1 for a in ds.attributes[:500])
    default = load_dataset("shapes", resolution=8)
    assert any(a["relation"] is not None for a in default.attributes[:500])  # the option changed the data


def test_data_options_are_checked():
    with pytest.raises(ConfigError, match="unknown key data.options.two_objects for 'shapes'; valid: .*two_object_fraction"):
        load_config("shapes-class", ["data.options.two_objects=0.0"])
    # a folder takes only the video clip options (which read it as videos: tests/data/test_video_folder.py)
    with pytest.raises(ConfigError, match="unknown key data.options.seed for the folder './some/folder': a folder takes the "
                                          "video clip options frames, stride, clip_every, fps"):
        load_config("tiny", ["data.source=./some/folder", "data.options.seed=1"])


@pytest.mark.parametrize("preset, classes", [("digits", [0, 7, 9]), ("shapes-class", [0, 44, 89])])
def test_builtin_datasets_train_class_conditional_with_guidance(tmp_path, preset, classes):
    train(load_config(preset, TINY), tmp_path / preset, progress=False)
    info = _generate_guided(tmp_path / preset, classes)
    assert info.num_classes == (10 if preset == "digits" else 90)


def _class_folder(root, rng):
    """Three classes of 8x8 RGB images that differ in brightness: cats dark, dogs bright, owls grey."""
    for name, value in (("cats", 40), ("dogs", 200), ("owls", 120)):
        (root / name).mkdir(parents=True)
        for i in range(6):
            img = np.clip(rng.normal(value, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.png")


def test_image_folder_with_class_subfolders(tmp_path):
    _class_folder(tmp_path / "data", np.random.default_rng(0))
    cfg = load_config("tiny", TINY + [f"data.source={tmp_path / 'data'}", "data.resolution=0"])
    train(cfg, tmp_path / "run", progress=False)
    info = _generate_guided(tmp_path / "run", [0, 1, 2])
    assert info.class_names == ["cats", "dogs", "owls"] and info.shape[0] == 3


def test_guidance_moves_samples_toward_the_requested_class(tmp_path):
    """Trained briefly (30 steps) on classes that differ in brightness, the net has learnt some of
    it: conditional samples (w = 1) are nearer their class's mean brightness than unconditional ones
    (w = 0), and guidance w = 2 (extrapolating away from the unconditional prediction) brings them
    nearer still: darker for the dark class, brighter for the bright one. Fails if guidance were
    ignored (w = 2 gives w = 1's samples) or applied with the wrong sign (it moves them back).
    Measured at this seed: mean distance to the class means 0.45 (w = 0), 0.24 (w = 1), 0.18 (w = 2);
    w = 2 is 0.09 darker for cats and 0.08 brighter for dogs than w = 1."""
    _class_folder(tmp_path / "data", np.random.default_rng(0))
    cfg = load_config("tiny", TINY + [f"data.source={tmp_path / 'data'}", "data.resolution=0", "train.steps=30"])
    train(cfg, tmp_path / "run", progress=False)
    info = Run.open(tmp_path / "run")
    data = build_dataset(cfg)
    target = torch.stack([data.images[data.labels == c].mean() for c in range(3)])  # (3,) class brightness
    labels = torch.arange(3).repeat_interleave(8)
    spec = info.spec(seed=0, solver="euler", nfe=3)
    brightness = {}
    for w in (0.0, 1.0, 2.0):
        x = info.generate(spec.replace(guidance=w), len(labels), class_labels=labels)
        brightness[w] = torch.stack([x[labels == c].mean() for c in range(3)])
    distance = {w: float((b - target).abs().mean()) for w, b in brightness.items()}
    assert distance[2.0] < distance[1.0] - 0.03 and distance[1.0] < distance[0.0] - 0.05, (distance, brightness)
    push = brightness[2.0] - brightness[1.0]  # what guidance adds, per class
    assert push[0] < -0.04 and push[1] > 0.04, push  # cats darker, dogs brighter
