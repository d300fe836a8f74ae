"""Feature extractors: the fitted classifier (save/load), any module, the FID Inception-v3."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import noisecraft.eval as ev
from noisecraft.eval.features import InceptionV3


def test_tiny_fit_gives_a_loadable_extractor(tiny_features, digits8_splits):
    folder, result = tiny_features
    assert (folder / "extractor.json").is_file() and (folder / "weights.safetensors").is_file()
    meta = json.loads((folder / "extractor.json").read_text())
    assert meta["format"] == ev.features.FEATURES_FORMAT and meta["held_out_accuracy"] == result.held_out_accuracy
    assert 0.0 <= result.held_out_accuracy <= 1.0 and meta["class_names"] == [str(i) for i in range(10)]
    loaded = ev.load_extractor(folder)
    assert loaded.fingerprint == result.extractor.fingerprint
    assert loaded.feature_dim == 8 and loaded.num_classes == 10
    images = digits8_splits[1].images[:20]
    f1, p1 = result.extractor.features_and_predictions(images)
    f2, p2 = loaded.features_and_predictions(images)
    assert f1.shape == (20, 8) and f1.dtype == np.float64
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    # Inputs of another size/channel count go through the extractor's own preprocessing.
    assert loaded.features(images.repeat(1, 3, 2, 2)).shape == (20, 8)


def test_fit_is_deterministic(digits8_splits):
    train, _ = digits8_splits
    a = ev.fit_classifier(train.images[:200], train.labels[:200], train.class_names, steps=5, width=4, feature_dim=8)
    b = ev.fit_classifier(train.images[:200], train.labels[:200], train.class_names, steps=5, width=4, feature_dim=8)
    c = ev.fit_classifier(train.images[:200], train.labels[:200], train.class_names, steps=5, width=4, feature_dim=8,
                          seed=1)
    assert a.extractor.fingerprint == b.extractor.fingerprint != c.extractor.fingerprint


def test_bad_extractor_paths(tmp_path):
    with pytest.raises(ev.EvalError, match="does not exist"):
        ev.load_extractor(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ev.EvalError, match="without extractor.json"):
        ev.load_extractor(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "extractor.json").write_text("{not json")
    with pytest.raises(ev.EvalError, match="cannot be loaded"):
        ev.load_extractor(bad)


def test_module_extractor():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2))
    ext = ev.module_extractor(net, name="mine", size=12, channels=3)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    f = ext.features(x)
    assert f.shape == (5, 16) and ext.feature_dim == 16 and ext.num_classes == 0
    fp = ext.fingerprint
    with torch.no_grad():
        net[0].bias.add_(1.0)
    assert ev.module_extractor(net, name="mine", size=12, channels=3).fingerprint != fp
    assert ev.module_extractor(net, name="mine", size=16, channels=3).fingerprint != ext.fingerprint
    with pytest.raises(ev.EvalError, match="no classifier head"):
        ext.predict(x)


def test_preprocess():
    pre = ev.Preprocess(size=6, channels=3)
    assert pre(torch.zeros(2, 1, 4, 4)).shape == (2, 3, 6, 6)
    gray = ev.Preprocess(channels=1)(torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 0.5)]))
    assert gray.shape == (2, 1, 2, 2) and gray[1].eq(0.5).all()
    with pytest.raises(ValueError, match="takes 3"):
        ev.Preprocess(channels=3)(torch.zeros(1, 2, 4, 4))


def test_inception_missing_file_says_where(tmp_path, monkeypatch):
    with pytest.raises(ev.EvalError) as e:
        ev.inception_extractor()
    msg = str(e.value)
    assert str(ev.default_inception_path()) in msg and ev.INCEPTION_URL in msg and "NOISECRAFT_INCEPTION_WEIGHTS" in msg
    assert str(tmp_path) in msg  # the isolated cache root
    with pytest.raises(ev.EvalError, match="not found"):
        ev.load_extractor("inception")


def test_inception_architecture_and_loading(tmp_path):
    torch.manual_seed(0)
    net = InceptionV3().eval()
    sizes = {}
    for name in ("Mixed_5d", "Mixed_6e", "Mixed_7c"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, tuple(o.shape[1:])))
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 299, 299))
    # The published shapes: 35x35x288 -> 17x17x768 -> 8x8x2048 -> pool3 (2048).
    assert out.shape == (1, 2048)
    assert sizes == {"Mixed_5d": (288, 35, 35), "Mixed_6e": (768, 17, 17), "Mixed_7c": (2048, 8, 8)}
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert "Conv2d_1a_3x3.conv.weight" in state and "Mixed_7c.branch3x3dbl_3b.bn.running_var" in state
    assert state["fc.weight"].shape == (1008, 2048)
    # A .pth state dict (read with weights_only=True) and a safetensors file both load.
    pth = tmp_path / ev.INCEPTION_FILENAME
    torch.save(state, pth)
    ext = ev.load_extractor(pth)
    assert ext.feature_dim == 2048 and ext.preprocess == ev.Preprocess(size=299, channels=3, antialias=False)
    gray = torch.rand(1, 1, 8, 8) * 2 - 1
    with torch.no_grad():
        expected = net(torch.nn.functional.interpolate(gray.expand(1, 3, 8, 8), size=(299, 299), mode="bilinear",
                                                       align_corners=False)).double().numpy()
    np.testing.assert_allclose(ext.features(gray), expected, rtol=1e-5, atol=1e-6)
    st = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    assert ev.inception_extractor(st).fingerprint == ext.fingerprint  # same weights, same preprocessing
    # A file with other tensors is a clear error, not a traceback.
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ev.EvalError, match="does not match the FID Inception-v3"):
        ev.inception_extractor(tmp_path / "other.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ev.EvalError, match="cannot be read"):
        ev.inception_extractor(tmp_path / "junk.pth")
