"""The grf / darcy / navier-stokes built-ins: deterministic, cached by content hash, exported as NPZ
files with key "field"; the `noisecraft data export` and `noisecraft reconstruct` round trip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noisecraft.data import fields as fdata
from noisecraft.data import load_dataset
from noisecraft.fields import darcy_residual

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from field_helpers import use_small_fields  # noqa: E402


@pytest.fixture(autouse=True)
def small(monkeypatch, tmp_path):
    return use_small_fields(monkeypatch, tmp_path)


def test_grf_is_deterministic_and_cached(small):
    a = load_dataset("grf", split="test", resolution=16)
    assert a.data.shape == (4, 1, 16, 16) and a.modality == "field" and a.num_classes == 0
    files = list((small / "cache" / "datasets" / "grf").glob("*.safetensors"))
    assert len(files) == 1
    b = load_dataset("grf", split="test", resolution=16)  # from the cache
    assert torch.equal(a.data, b.data)
    c = fdata.load_grf(split="test", resolution=16, use_cache=False)
    assert torch.equal(a.data, c.data)
    train = load_dataset("grf", split="train", resolution=16)
    assert not torch.equal(train.data[:4], a.data)  # splits never share a field
    assert load_dataset("grf", split="all", resolution=16).data.shape[0] == 10


def test_a_corrupt_cache_is_regenerated_with_a_warning(small):
    a = load_dataset("grf", split="test", resolution=8)
    (path,) = (small / "cache" / "datasets" / "grf").glob("*.safetensors")
    path.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        b = load_dataset("grf", split="test", resolution=8)
    assert torch.equal(a.data, b.data)


def test_darcy_pairs_solve_the_pde_in_physical_units():
    ds = load_dataset("darcy", split="test", resolution=16)
    assert ds.data.shape == (4, 2, 16, 16) and ds.channel_names == ["a", "u"]
    phys = ds.to_physical(ds.data.double())
    for a, u in phys:
        assert set(np.unique(a.numpy()).round(4)) <= {3.0, 12.0}
        assert darcy_residual(a.numpy(), u.numpy()) < 1e-5  # float32 storage
    logn = fdata.load_darcy(split="test", resolution=16, coefficient="lognormal")
    a, u = logn.to_physical(logn.data.double())[0]
    assert (a > 0).all() and darcy_residual(a.numpy(), u.numpy()) < 1e-5


def test_navier_stokes_loads():
    ds = load_dataset("navier-stokes", split="test", resolution=16)
    assert ds.data.shape == (4, 1, 16, 16) and torch.isfinite(ds.data).all() and ds.data.std() > 0.05


@pytest.mark.parametrize("kw, fragment", [
    (dict(source="grf", channels=3), "channels must be 1 or None for 'grf'"),
    (dict(source="darcy", resolution=16, channels=1), "channels must be 2 or None for 'darcy' (a, u)"),
    (dict(source="navier-stokes", resolution=15), "resolution 15 is too small for 'navier-stokes'; valid: >= 16 and even"),
    (dict(source="grf", hflip=True), "hflip=True is not valid for 'grf'"),
])
def test_bad_options(kw, fragment):
    with pytest.raises(ValueError) as e:
        load_dataset(kw.pop("source"), **kw)
    assert fragment in str(e.value)


@pytest.mark.parametrize("name, channels", [("grf", 1), ("darcy", 2), ("navier-stokes", 1)])
def test_export_writes_one_npz_per_field(small, monkeypatch, name, channels):
    monkeypatch.setattr(fdata, "FIELD_NATIVE_SIZE", 16)
    out = small / f"export-{name}"
    result = run("data", "export", name, "--split", "test", "--n", 3, "--out", out)
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.npz"))
    assert len(files) == 3
    with np.load(files[0], allow_pickle=False) as z:
        assert z.files == ["field"] and z["field"].shape == (channels, 16, 16) and z["field"].dtype == np.float32
    ds = load_dataset(name, split="test", resolution=16)
    assert any(np.array_equal(np.load(files[0])["field"], x.numpy()) for x in ds.data)


@pytest.fixture()
def field_run(small):
    out = small / "run"
    result = run("train", "tiny", "--out", out, "--steps", 2, "--set", "data.source='grf'", "--set", "data.resolution=8",
                 "--set", "data.conditional=false", "--set", "train.batch_size=4", "--set", "sample.nfe=2",
                 "--set", "ema.phema_every=0", "--quiet")
    assert result.exit_code == 0, result.output
    truth = load_dataset("grf", split="test", resolution=8).data[0]
    np.savez(small / "truth.npz", field=truth.numpy())
    np.savez(small / "obs.npz", idx=np.array([[0, 0], [3, 4], [7, 7]]), values=truth[0, [0, 3, 7], [0, 4, 7]].numpy())
    return out


def test_reconstruct_cli_round_trip(field_run, small):
    out = small / "rec"
    result = run("reconstruct", field_run, "--observations", small / "obs.npz", "--n", 3, "--nfe", 3, "--seed", 1,
                 "--method", "pigdm", "--truth", small / "truth.npz", "--out", out)
    assert result.exit_code == 0, result.output
    with np.load(out / "posterior.npz", allow_pickle=False) as z:
        assert z["samples"].shape == (3, 1, 8, 8) and z["mean"].shape == (1, 8, 8) and z["std"].shape == (1, 8, 8)
        np.testing.assert_allclose(z["mean"], z["samples"].mean(0), rtol=1e-5, atol=1e-6)
        # pigdm without noise fits the observed pixels exactly
        np.testing.assert_allclose(z["samples"][:, 0, 3, 4], np.load(small / "obs.npz")["values"][1], atol=1e-5)
    for png in ("mean.png", "std.png", "error.png", "truth.png"):
        assert (out / png).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"relative_l2", "coverage_50", "coverage_90", "crps", "spread_skill"} <= set(metrics)
    again = small / "rec2"
    run("reconstruct", field_run, "--observations", small / "obs.npz", "--n", 3, "--nfe", 3, "--seed", 1,
        "--method", "pigdm", "--out", again)
    assert np.array_equal(np.load(again / "posterior.npz")["samples"], np.load(out / "posterior.npz")["samples"])


def test_reconstruct_cli_errors(field_run, small):
    np.savez(small / "far.npz", idx=np.array([[0, 9]]), values=np.zeros(1))
    assert_user_error(run("reconstruct", field_run, "--observations", small / "far.npz", "--out", small / "r"),
                      "idx[0] = [0, 9] is outside the 8x8 field")
    np.savez(small / "nan.npz", idx=np.array([[0, 1]]), values=np.array([np.nan]))
    assert_user_error(run("reconstruct", field_run, "--observations", small / "nan.npz", "--out", small / "r"),
                      "values[0] is not finite")
    assert_user_error(run("reconstruct", field_run, "--observations", small / "obs.npz", "--method", "magic",
                          "--out", small / "r"), "--method 'magic' is not a method; valid: projection, pigdm, dps, tmpd, model")
    np.savez(small / "bad_truth.npz", field=np.zeros((1, 4, 4), np.float32))
    assert_user_error(run("reconstruct", field_run, "--observations", small / "obs.npz", "--truth", small / "bad_truth.npz",
                          "--out", small / "r"), "expected (1, 8, 8)")


def test_field_modality_writes_key_field_bitwise(tmp_path):
    from noisecraft.data import DataError
    from noisecraft.modalities import get_modality

    m = get_modality("field")
    x = torch.randn(2, 5, 7)
    m.write(x, tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        assert z.files == ["field"]
    assert torch.equal(m.read(tmp_path / "f.npz", (2, 5, 7)), x)
    np.savez(tmp_path / "x.npz", x=x.numpy())  # an array-modality file is not a field file
    with pytest.raises(DataError, match="has no array 'field' \\(keys: x\\)"):
        m.read(tmp_path / "x.npz", (2, 5, 7))
    with pytest.raises(ValueError, match="field sample shape"):
        m.check_shape((1, 8))
    assert m.preview_image(x[None], nrow=1).shape[0] == 3


def test_grf_lengths_is_labeled_by_length_scale_and_its_oracle_knows_them(small):
    from noisecraft.data.fields import GRF_LENGTH_NAMES, classify_lengths

    d = load_dataset("grf-lengths", split="all", resolution=16)  # train 6 then test 4: labels restart per split
    assert d.data.shape == (10, 1, 16, 16) and d.num_classes == 3 and d.class_names == list(GRF_LENGTH_NAMES)
    assert d.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert torch.equal(classify_lengths(d.data), d.labels)
    plain = load_dataset("grf", split="all", resolution=16)
    assert torch.equal(d.data[1], plain.data[1])  # class l=0.1 is the grf field of the same (seed, index)
    assert not torch.equal(d.data[0], plain.data[0])
    assert load_dataset("grf-lengths", split="test", resolution=16, labels=False).num_classes == 0
