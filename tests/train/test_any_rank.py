"""One trainer for every signal: a 1-D, a 2-D and a 3-D dataset go through the same `train()` call,
save, resume bitwise, reopen with `Run.open` and generate - with the same code path throughout
(tests/package/test_code_shape.py keeps train/, runs/ and sampling/ free of modality branches)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from noisecraft.config import load_config
from noisecraft.data import load_dataset
from noisecraft.modalities import get_modality
from noisecraft.runs import Run
from noisecraft.train import train

from test_train_loop import _assert_same_state, _final_state, _same_snapshots, _snapshots

# name -> (built-in dataset, data.resolution, expected sample shape, modality)
SIGNALS = {
    "1d": ("waves", 32, (1, 32), "array"),
    "2d": ("digits", 8, (1, 8, 8), "image"),
    "3d": ("blobs", 8, (1, 8, 8, 8), "array"),
}


def _config(source: str, resolution: int, *overrides: str):
    base = [f"data.source={source}", f"data.resolution={resolution}", "train.batch_size=8", "train.accum_steps=2",
            "train.steps=6", "train.checkpoint_every=100", "train.log_every=2", "train.class_dropout=0.25",
            "ema.phema_every=2", "sample.per_class=2", "sample.nfe=2", "optim.warmup_steps=2", "train.tensorboard=false"]
    return load_config("tiny", base + list(overrides))


@pytest.fixture(scope="module", params=sorted(SIGNALS))
def trained(request, tmp_path_factory):
    source, resolution, shape, modality = SIGNALS[request.param]
    ds = load_dataset(source, resolution=resolution, split="train")
    ds = type(ds)(ds.data[:48].clone(), ds.labels[:48].clone(), class_names=ds.class_names, name=ds.name,
                  modality=ds.modality) if type(ds).__name__ == "SignalDataset" else ds
    cfg = _config(source, resolution)
    root = tmp_path_factory.mktemp(request.param)
    straight = train(cfg, root / "a", dataset=ds, progress=False)
    train(cfg, root / "b", dataset=ds, progress=False, stop_at=3)
    rest = train(None, root / "b", resume=True, dataset=ds, progress=False)
    return request.param, root, straight, rest, shape, modality


def test_every_rank_resumes_bitwise(trained):
    _, root, straight, rest, _, _ = trained
    assert rest.resumed_from == 3 and straight.losses[3:] == rest.losses
    _assert_same_state(_final_state(root / "a"), _final_state(root / "b"))
    _same_snapshots(_snapshots(root / "a"), _snapshots(root / "b"))


def test_every_rank_reopens_and_generates(trained):
    name, root, _, _, shape, modality = trained
    run = Run.open(root / "a")
    assert run.shape == shape and run.modality == modality and run.num_classes > 0
    meta = json.loads((root / "a" / "run.json").read_text())
    assert meta["format"] == "noisecraft-run/2" and meta["net"]["dims"] == len(shape) - 1
    spec = run.spec(seed=4, nfe=3, guidance=2.0)
    x = run.generate(spec, 3, class_labels=[0, 1, 2])
    assert x.shape == (3, *shape) and torch.isfinite(x).all()
    assert torch.equal(x, run.generate(spec, 3, class_labels=[0, 1, 2]))  # same seeds, same bits
    # sample i is drawn from seed + i: alone it is the same sample (up to the rounding of batched convolutions)
    torch.testing.assert_close(x[1:2], run.generate(spec.replace(seed=5), 1, class_labels=1), atol=1e-4, rtol=0)
    # guidance reaches the samples; the weights are the EMA weights of the last checkpoint
    assert not torch.equal(x, run.generate(spec.replace(guidance=1.0), 3, class_labels=[0, 1, 2]))


def test_every_rank_writes_a_preview_in_its_modality(trained):
    _, root, _, _, shape, modality = trained
    preview = root / "a" / "samples" / "step-00000006.png"
    assert preview.is_file()
    with Image.open(preview) as im:
        assert min(im.size) > 8 and len(np.unique(np.asarray(im.convert("L")))) > 2  # a picture, not a blank
    x = Run.open(root / "a").generate(None, 1)
    path = get_modality(modality).write(x[0], root / f"one{get_modality(modality).file_ext}")
    back = get_modality(modality).read(path, shape)
    # PNG: the clamped sample within 8-bit rounding; NPZ: the sample bit for bit
    assert back.shape == x[0].shape
    assert torch.equal(back, x[0]) or (back - x[0].clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6
