import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from noisecraft.data import DataError, ImageDataset, load_dataset
from noisecraft.data.digits import digits_split_indices


@pytest.fixture(scope="module")
def splits():
    return {s: load_dataset("digits", split=s) for s in ("train", "test", "all")}


def test_all_matches_sklearn_pixels_and_labels(splits):
    ds, sk = splits["all"], sk_load_digits()
    assert isinstance(ds, ImageDataset) and len(ds) == 1797
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == torch.float32
    expected = torch.from_numpy(sk.images.astype(np.float32)) / 8 - 1  # 0 -> -1 background, 16 -> +1 stroke
    assert torch.equal(ds.images[:, 0], expected)
    assert torch.equal(ds.labels, torch.from_numpy(sk.target).long())
    assert ds.labels.dtype == torch.long
    assert ds.num_classes == 10 and ds.class_names == [str(d) for d in range(10)]
    assert ds.channels == 1 and ds.resolution == 8 and ds.name == "digits" and ds.hflip is False


def test_range_and_polarity(splits):
    x = splits["all"].images
    assert x.min() == -1 and x.max() == 1
    # dark background dominates; corners are background in (almost) every digit
    assert (x < 0).float().mean() > 0.5
    assert x[:, 0, 0, 0].mean() < -0.95


def test_split_sizes_stratified_disjoint(splits):
    tr, te = splits["train"], splits["test"]
    assert len(tr) + len(te) == 1797
    assert len(te) == 269  # round(15%) of each class; pinned so a change in the split is noticed
    per_class_all = torch.bincount(splits["all"].labels, minlength=10)
    per_class_test = torch.bincount(te.labels, minlength=10)
    assert torch.equal(per_class_test, (per_class_all.double() * 0.15).round().long())
    # disjoint and complete, and each split holds exactly the images at its indices
    y = sk_load_digits().target
    tr_idx, te_idx = digits_split_indices(y, "train"), digits_split_indices(y, "test")
    assert set(tr_idx.tolist()).isdisjoint(te_idx.tolist())
    assert sorted(tr_idx.tolist() + te_idx.tolist()) == list(range(1797))
    everything = splits["all"]
    for ds, idx in ((tr, tr_idx), (te, te_idx)):
        assert torch.equal(ds.images, everything.images[torch.from_numpy(idx)])
        assert torch.equal(ds.labels, everything.labels[torch.from_numpy(idx)])


def test_split_is_deterministic():
    a = load_dataset("digits", split="test")
    b = load_dataset("digits", split="test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("res", [16, 32])
def test_upsampled(res):
    ds = load_dataset("digits", resolution=res, split="test")
    assert ds.images.shape == (269, 1, res, res) and ds.resolution == res
    assert ds.images.min() >= -1 and ds.images.max() <= 1
    # upsampling preserves the mean brightness of each image closely
    small = load_dataset("digits", split="test").images
    assert torch.allclose(ds.images.mean((1, 2, 3)), small.mean((1, 2, 3)), atol=0.05)


def test_channels_labels_hflip_options():
    ds = load_dataset("digits", split="test", channels=3, labels=False, hflip=True)
    assert ds.images.shape[1] == 3 and torch.equal(ds.images[:, 0], ds.images[:, 2])
    assert ds.num_classes == 0 and ds.class_names == [] and not ds.labels.any()
    assert ds.hflip is True
    img, label = ds[3]
    assert img.shape == (3, 8, 8) and label.item() == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(resolution=0), "resolution"),
        (dict(resolution=-8), "resolution"),
        (dict(split="val"), "split"),
        (dict(on_error="ignore"), "on_error"),
        (dict(channels=2), "channels"),
    ],
)
def test_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        load_dataset("digits", **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(e.value)


def test_unknown_name_lists_builtins():
    with pytest.raises(DataError, match="digits") as e:
        load_dataset("no-such-dataset-xyz")
    assert "no-such-dataset-xyz" in str(e.value)
