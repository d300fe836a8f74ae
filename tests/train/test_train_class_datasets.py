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
    assert not torch.equal(x, unguided)  # guidance acts
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
    with pytest.raises(ConfigError, match="needs a built-in data.source"):
        load_config("tiny", ["data.source=./some/folder", "data.options.seed=1"])


@pytest.mark.parametrize("preset, classes", [("digits", [0, 7, 9]), ("shapes-class", [0, 44, 89])])
def test_builtin_datasets_train_class_conditional_with_guidance(tmp_path, preset, classes):
    train(load_config(preset, TINY), tmp_path / preset, progress=False)
    info = _generate_guided(tmp_path / preset, classes)
    assert info.num_classes == (10 if preset == "digits" else 90)


def test_image_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    for name, value in (("cats", 40), ("dogs", 200), ("owls", 120)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            img = np.clip(rng.normal(value, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "data" / name / f"{i}.png")
    cfg = load_config("tiny", TINY + [f"data.source={tmp_path / 'data'}", "data.resolution=0"])
    train(cfg, tmp_path / "run", progress=False)
    info = _generate_guided(tmp_path / "run", [0, 1, 2])
    assert info.class_names == ["cats", "dogs", "owls"] and info.shape[0] == 3
