import pytest
import torch

from noisecraft.data import BUILTIN_DATASETS, ImageDataset, SignalDataset, load_dataset
from noisecraft.data.blobs import BLOB_DIRECTIONS
from noisecraft.data.waves import WAVE_CLASSES


def test_signal_dataset_any_rank_and_its_properties():
    for shape, modality in [((1, 16), "array"), ((1, 8, 8), "image"), ((2, 8, 8), "array"), ((1, 3, 4, 5), "array")]:
        ds = SignalDataset(torch.zeros(6, *shape), torch.arange(6) % 2, class_names=["a", "b"], name="t")
        assert ds.sample_shape == shape and ds.channels == shape[0] and ds.spatial_rank == len(shape) - 1
        assert ds.modality == modality and ds.num_classes == 2 and len(ds) == 6
        assert ds.images is ds.data  # one tensor, two names
        x, y = ds[3]
        assert x.shape == shape and int(y) == 1
    with pytest.raises(ValueError, match="spatial rank 1, 2 or 3"):
        SignalDataset(torch.zeros(2, 1))
    with pytest.raises(ValueError, match="spatial rank 1, 2 or 3"):
        SignalDataset(torch.zeros(2, 1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="image sample shape \\(1, 16\\)"):
        SignalDataset(torch.zeros(2, 1, 16), modality="image")
    with pytest.raises(ValueError, match="unknown modality"):
        SignalDataset(torch.zeros(2, 1, 16), modality="sound")


def test_image_dataset_is_the_rank_2_signal_dataset():
    ds = ImageDataset(torch.zeros(3, 3, 8, 8))
    assert isinstance(ds, SignalDataset) and ds.resolution == 8 and ds.images.shape == (3, 3, 8, 8)
    assert ds.modality == "image" and repr(ds).startswith("ImageDataset(name=")
    with pytest.raises(ValueError, match=r"images must be a float32 tensor \(N, C, H, W\)"):
        ImageDataset(torch.zeros(3, 1, 8))


@pytest.mark.parametrize("name,shape,classes,n_train,n_test", [
    ("waves", (1, 64), WAVE_CLASSES, 2000, 400),
    ("blobs", (1, 8, 16, 16), BLOB_DIRECTIONS, 1000, 200),
])
def test_synthetic_builtins_shapes_classes_splits(name, shape, classes, n_train, n_test):
    assert name in BUILTIN_DATASETS
    tr, te = load_dataset(name, split="train"), load_dataset(name, split="test")
    assert isinstance(tr, SignalDataset) and tr.modality == "array" and tr.name == name
    assert tr.sample_shape == shape and tuple(tr.class_names) == classes
    assert (len(tr), len(te)) == (n_train, n_test)
    assert tr.data.dtype == torch.float32 and tr.data.min() >= -1 and tr.data.max() <= 1
    assert torch.isfinite(tr.data).all() and tr.data.std() > 0.2
    assert torch.bincount(tr.labels).tolist() == [n_train // 4] * 4  # balanced
    assert not torch.equal(tr.data[:n_test], te.data)  # different seeds
    again = load_dataset(name, split="train")
    assert torch.equal(again.data, tr.data) and torch.equal(again.labels, tr.labels)  # deterministic
    al = load_dataset(name, split="all")
    assert torch.equal(al.data, torch.cat([tr.data, te.data]))
    unl = load_dataset(name, labels=False)
    assert unl.num_classes == 0 and not unl.labels.any()


def test_synthetic_builtins_options():
    assert load_dataset("waves", resolution=100).sample_shape == (1, 100)
    assert load_dataset("blobs", resolution=8).sample_shape == (1, 8, 8, 8)
    for name in ("waves", "blobs"):
        with pytest.raises(ValueError, match="channels must be 1 or None"):
            load_dataset(name, channels=3)
        with pytest.raises(ValueError, match="split must be one of train, test, all"):
            load_dataset(name, split="heldout")
    with pytest.raises(ValueError, match="hflip=True is not valid for 'blobs'"):
        load_dataset("blobs", hflip=True)


def test_waves_classes_have_their_shape():
    ds = load_dataset("waves", resolution=512)
    x = ds.data[:, 0]  # (N, L)
    amp = x.abs().amax(1)
    for k, name in enumerate(WAVE_CLASSES):
        sel = x[ds.labels == k] / amp[ds.labels == k, None]
        levels = (sel.abs() > 0.999).float().mean(1)  # share of samples at +-amplitude
        if name == "square":
            assert (levels == 1).all()
        else:
            assert (levels < 0.2).all()
        if name == "sawtooth":  # rises slowly, falls at once: most steps are small positive
            assert ((sel.diff(dim=1) > 0).float().mean(1) > 0.9).all()


def test_blobs_move_in_their_direction():
    ds = load_dataset("blobs")
    x = (ds.data[:, 0] + 1) / 2  # (N, T, H, W) weights
    grid = torch.arange(16.0)
    mass = x.sum((-1, -2))
    row = (x.sum(-1) * grid).sum(-1) / mass  # (N, T)
    col = (x.sum(-2) * grid).sum(-1) / mass
    drow, dcol = row[:, -1] - row[:, 0], col[:, -1] - col[:, 0]
    want = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
    for k, name in enumerate(BLOB_DIRECTIONS):
        sel = ds.labels == k
        r, c = want[name]
        moved = drow[sel] * r + dcol[sel] * c
        across = drow[sel] * c + dcol[sel] * r
        assert (moved > 3).all() and (across.abs() < 0.5).all()
