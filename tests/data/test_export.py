import csv

import click
import pytest
import torch
from click.testing import CliRunner

from noisecraft.cli.data_cmd import data_group
from noisecraft.data import DataError, load_dataset
from noisecraft.data.export import export_dataset, subset_indices
from noisecraft.modalities import get_modality


def _rows(out):
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("name,split,ext,atol", [
    ("digits", "test", ".png", 1 / 255),  # digits take values k/8 - 1: PNG keeps them to 8 bits
    ("shapes", "test", ".png", 0.0),  # rendered in 8 bits: exact
    ("waves", "test", ".npz", 0.0),
    ("blobs", "test", ".npz", 0.0),
])
def test_export_writes_n_files_that_read_back_as_the_dataset(tmp_path, name, split, ext, atol):
    out = export_dataset(name, split=split, n=6, seed=3, out=tmp_path / "o")
    ds = load_dataset(name, split=split)
    idx = subset_indices(len(ds), 6, 3)
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{k:06d}{ext}" for k in range(6)] + ["labels.csv"]
    rows = _rows(out)
    captioned = name == "shapes"
    assert rows[0] == (["file", "label", "caption"] if captioned else ["file", "label"])
    m = get_modality(ds.modality)
    for k, (row, i) in enumerate(zip(rows[1:], idx.tolist())):
        assert row[0] == f"{k:06d}{ext}" and row[1] == ds.class_names[int(ds.labels[i])]
        if captioned:
            assert row[2] == ds.captions[i][0]
        x = m.read(out / row[0], ds.sample_shape)
        assert (x - ds.data[i]).abs().max() <= atol + 1e-6
    assert len(rows) == 7


def test_export_subset_is_seeded_and_without_replacement(tmp_path):
    a = subset_indices(400, 50, seed=1)
    assert torch.equal(torch.from_numpy(a), torch.from_numpy(subset_indices(400, 50, seed=1)))
    assert len(set(a.tolist())) == 50 and list(a) == sorted(a)
    assert not (a == subset_indices(400, 50, seed=2)).all()
    export_dataset("waves", split="test", n=4, seed=1, out=tmp_path / "a")
    export_dataset("waves", split="test", n=4, seed=1, out=tmp_path / "b")
    for k in range(4):
        assert (tmp_path / "a" / f"{k:06d}.npz").read_bytes() == (tmp_path / "b" / f"{k:06d}.npz").read_bytes()


def test_export_image_scale(tmp_path):
    from PIL import Image

    export_dataset("digits", split="test", n=1, out=tmp_path / "s4")
    export_dataset("digits", split="test", n=1, out=tmp_path / "s1", scale=1)
    with Image.open(tmp_path / "s4" / "000000.png") as a, Image.open(tmp_path / "s1" / "000000.png") as b:
        assert a.size == (32, 32) and b.size == (8, 8)


def test_export_refuses_bad_arguments_and_never_overwrites(tmp_path):
    with pytest.raises(ValueError, match="name 'mnist' is not a built-in dataset; valid: blobs, darcy, digits, grf, grf-lengths, grf-scales, moving-digits, moving-shapes, navier-stokes, navier-stokes-forecast, notes, shapes, spoken-digits, waves"):
        export_dataset("mnist", split="test", n=1, out=tmp_path / "x")
    with pytest.raises(ValueError, match="split 'heldout' is not a split of 'waves'; valid: train, test, all"):
        export_dataset("waves", split="heldout", n=1, out=tmp_path / "x")
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        export_dataset("waves", split="test", n=0, out=tmp_path / "x")
    with pytest.raises(ValueError, match="n 401 is larger than the 'test' split of 'waves', which has 400 examples"):
        export_dataset("waves", split="test", n=401, out=tmp_path / "x")
    with pytest.raises(ValueError, match="scale must be an integer 1..64"):
        export_dataset("digits", split="test", n=1, out=tmp_path / "x", scale=0)
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_dataset("waves", split="test", n=1, out=tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    export_dataset("waves", split="test", n=1, out=tmp_path / "empty")  # an empty folder is fine
    assert len(list((tmp_path / "empty").iterdir())) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def _cli():
    @click.group()
    def root() -> None:
        pass

    root.add_command(data_group, "data")
    return root


def test_cli_data_export(tmp_path):
    out = tmp_path / "real"
    r = CliRunner().invoke(_cli(), ["data", "export", "blobs", "--split", "train", "--n", "3", "--seed", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 3 blobs examples" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.npz", "000001.npz", "000002.npz", "labels.csv"]
    r = CliRunner().invoke(_cli(), ["data", "export", "blobs", "--split", "train", "--n", "3", "--out", str(out)])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error: out ") and "not empty" in r.output
    r = CliRunner().invoke(_cli(), ["data", "export", "waves", "--split", "test", "--n", "500", "--out", str(tmp_path / "w")])
    assert r.exit_code == 2 and "which has 400 examples" in r.output and not (tmp_path / "w").exists()
    r = CliRunner().invoke(_cli(), ["data", "export", "digits", "--n", "3", "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "--split" in r.output  # click's own usage error


def test_export_errors_are_one_line_value_or_data_errors(tmp_path):
    for kw in (dict(name="nope"), dict(split="x"), dict(n=-1), dict(n=10**9)):
        args = dict(name="digits", split="test", n=1, out=tmp_path / "z") | kw
        with pytest.raises((ValueError, DataError)) as e:
            export_dataset(args.pop("name"), **args)
        assert "\n" not in str(e.value)
