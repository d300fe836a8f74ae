"""Continuous-parameter conditioning: the grf-scales data, the parameter embedding, the `Parameters`
conditioner, and the train / sample / eval round trip of a model asked for any ℓ in its range."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noisecraft.conditioning import Batch, ConditionError, Parameters, conditioners_from_meta
from noisecraft.config import ConfigError, load_config
from noisecraft.data import fields as fdata
from noisecraft.data import load_dataset
from noisecraft.nets import DiT, DiTConfig, UNet, UNetConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from field_helpers import use_small_fields  # noqa: E402


# --- data --------------------------------------------------------------------------------------------

def test_grf_scales_draws_a_log_uniform_length_per_field_that_the_exact_fit_gives_back(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 400, "test": 64} for k in fdata.FIELD_SPLIT_SIZES})
    d = load_dataset("grf-scales", split="train", resolution=64)
    assert d.data.shape == (400, 1, 64, 64) and d.num_classes == 0
    assert d.param_names == ["length"] and d.param_log == [True] and d.param_ranges == [fdata.GRF_SCALE_RANGE]
    ell = d.param_values[:, 0].numpy()
    assert d.param_values.shape == (400, 1) and d.param_values.dtype == torch.float64
    assert 0.05 <= ell.min() and ell.max() <= 0.2
    # log-uniform: ln ℓ spreads evenly, a quarter of the log range per quarter (400 draws: +-0.08 is ~3.7 sd)
    u = (np.log(ell) - math.log(0.05)) / math.log(4)
    assert np.allclose(np.histogram(u, bins=4, range=(0, 1))[0] / 400, 0.25, atol=0.08)
    # field i depends on (seed, i) only: a longer split starts with the same fields and lengths
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 410, "test": 64} for k in fdata.FIELD_SPLIT_SIZES})
    longer = fdata.load_grf_scales(split="train", resolution=64, use_cache=False)
    assert torch.equal(longer.data[:400], d.data) and torch.equal(longer.param_values[:400], d.param_values)
    # the fields are drawn with the ℓ they carry: the maximum-likelihood fit recovers it (the eval's floor)
    fit = fdata.fit_lengths(d.data[:100].double(), grid=np.geomspace(0.02, 0.5, 241)).numpy()
    err = np.abs(np.log(fit / ell[:100]))
    assert np.median(err) < 0.02 and err.max() < 0.1
    test = load_dataset("grf-scales", split="test", resolution=64)
    assert not np.isin(test.param_values.numpy(), d.param_values.numpy()).any()  # fresh draws


def test_export_of_grf_scales_writes_each_field_s_length(tmp_path, monkeypatch):
    from noisecraft.data.export import export_dataset

    use_small_fields(monkeypatch, tmp_path)
    out = export_dataset("grf-scales", split="test", n=3, out=tmp_path / "x")
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "label", "length"] and len(rows) == 4
    from noisecraft.data.export import subset_indices

    ds = load_dataset("grf-scales", split="test", resolution=64)
    idx = subset_indices(len(ds), 3, 0)  # the files are these examples, in this order
    assert [float(r[2]) for r in rows[1:]] == [float(ds.param_values[i, 0]) for i in idx]


# --- the net ---------------------------------------------------------------------------------------

def _pair(arch: str = "unet", num_params: int = 2):
    if arch == "unet":
        cls, cfg = UNet, UNetConfig
        kw = dict(in_channels=1, resolution=8, model_channels=8, channel_mult=(1, 2), num_blocks=1, mid_attention=False)
    else:
        cls, cfg = DiT, DiTConfig
        kw = dict(in_channels=1, resolution=8, patch_size=2, hidden_size=32, depth=1, num_heads=2)
    torch.manual_seed(0)
    plain = cls(cfg(**kw))
    torch.manual_seed(0)
    with_params = cls(cfg(**kw, num_params=num_params))
    return plain, with_params


@pytest.mark.parametrize("arch", ["unet", "dit"])
def test_a_parameter_given_as_nan_adds_exactly_nothing_and_the_embedding_leaves_other_inits_alone(arch):
    plain, net = _pair(arch)
    shared = {k: v for k, v in net.state_dict().items() if not k.startswith("params_emb.")}
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in shared.items())  # forked RNG: same init
    with torch.no_grad():  # zero-initialised layers (output, modulations) would hide the embedding: randomize all
        for q in plain.parameters():
            q.normal_(0.0, 0.2)
    net.load_state_dict({**net.state_dict(), **plain.state_dict()})
    x, c = torch.randn(3, 1, 8, 8), torch.tensor([-0.5, 0.0, 0.7])
    none = torch.full((3, 2), math.nan)
    assert torch.equal(net(x, c, params=none), plain(x, c))  # "not given" = the unconditional net
    given = torch.tensor([[0.1, -0.3], [0.9, 0.2], [-1.0, 1.0]])
    out = net(x, c, params=given)
    assert not torch.allclose(out, plain(x, c))
    half = given.clone()
    half[:, 1] = math.nan  # one parameter given: differs from both
    assert not torch.allclose(net(x, c, params=half), out) and not torch.allclose(net(x, c, params=half), plain(x, c))
    one = net(x[:1], c[:1], params=given[:1])  # per-sample: a row's output does not depend on the others
    assert torch.allclose(one, out[:1], atol=1e-6)


def test_the_net_refuses_params_it_was_not_built_for_and_requires_those_it_was():
    plain, net = _pair()
    x, c = torch.randn(2, 1, 8, 8), torch.zeros(2)
    with pytest.raises(ValueError, match="takes no continuous parameters"):
        plain(x, c, params=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"give params of shape \(B, num_params\) = \(2, 2\)"):
        net(x, c)
    with pytest.raises(ValueError, match=r"expected params as a float tensor of shape .* = \(2, 2\), got torch.float32 \(2, 3\)"):
        net(x, c, params=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="infinite"):
        net(x, c, params=torch.tensor([[0.0, math.inf], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="num_params must be an integer >= 0"):
        UNetConfig(in_channels=1, resolution=8, num_params=-1)


# --- the conditioner -------------------------------------------------------------------------------

def _cond(dropout: float = 0.0) -> Parameters:
    return Parameters(["length", "speed"], [(0.05, 0.2), (-1.0, 3.0)], [True, False], dropout)


def test_parameters_map_each_range_onto_minus_one_to_one_log_evenly_where_asked():
    p = _cond()
    v = torch.tensor([[0.05, -1.0], [0.1, 1.0], [0.2, 3.0]], dtype=torch.float64)
    got = p.normalize(v)
    assert torch.allclose(got, torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]), atol=1e-6)  # 0.1 = √(0.05·0.2)
    assert got.dtype == torch.float32


def test_prepare_takes_names_strings_numbers_and_rows_and_refuses_values_outside_the_trained_range():
    p = _cond()
    a = p.prepare({"length": 0.07, "speed": 2}, 3)
    assert a.shape == (3, 2) and torch.equal(a[0], torch.tensor([0.07, 2.0], dtype=torch.float64))
    assert torch.equal(p.prepare("length=0.07,speed=2", 3), a)
    rows = p.prepare([{"length": 0.05, "speed": 0}, {"length": 0.2, "speed": 3}], 2)
    assert rows[:, 0].tolist() == [0.05, 0.2]
    assert torch.equal(p.prepare(torch.tensor([[0.1, 0.0], [0.2, 1.0]]), 2)[:, 1], torch.tensor([0.0, 1.0], dtype=torch.float64))
    one = Parameters(["length"], [(0.05, 0.2)], [True])
    assert one.prepare(0.1, 2).tolist() == [[0.1], [0.1]]
    with pytest.raises(ConditionError, match=r"params length=0.3 is outside the range this model was trained on; "
                                             r"valid: 0.05 <= length <= 0.2"):
        p.prepare({"length": 0.3, "speed": 0}, 1)
    with pytest.raises(ConditionError, match=r"missing speed; this model takes length, speed \(0.05 <= length <= 0.2, "
                                             r"-1 <= speed <= 3\)"):
        p.prepare({"length": 0.1}, 1)
    with pytest.raises(ConditionError, match="unknown mass"):
        p.prepare({"length": 0.1, "speed": 0, "mass": 1}, 1)
    with pytest.raises(ConditionError, match="this model takes 2 parameters"):
        p.prepare(0.1, 1)
    with pytest.raises(ConditionError, match="is not NAME=VALUE"):
        p.prepare("length=abc,speed=1", 1)
    with pytest.raises(ConditionError, match="got 2 params settings for 3 samples"):
        p.prepare([{"length": 0.1, "speed": 0}] * 2, 3)
    with pytest.raises(ConditionError, match="outside the range"):
        p.prepare({"length": math.nan, "speed": 0}, 1)


def test_the_default_sweeps_the_first_parameter_and_holds_the_others_at_their_middle():
    d = _cond().default_value(3)
    assert torch.allclose(d[:, 0], torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64))
    assert d[:, 1].tolist() == [1.0, 1.0, 1.0]


def test_training_drops_the_parameters_of_a_share_of_samples_and_the_null_is_nan():
    class Data:
        param_values = torch.rand(1000, 2, dtype=torch.float64) * torch.tensor([0.15, 4.0]) + torch.tensor([0.05, -1.0])

    p = _cond(dropout=0.25)
    gen = torch.Generator().manual_seed(0)
    got = p.train_inputs(None, Batch(torch.zeros(1000), torch.arange(1000), Data), gen, "cpu")["params"]
    dropped = torch.isnan(got).all(1)
    assert torch.isnan(got).any(1).eq(dropped).all()  # a row is dropped whole
    assert abs(float(dropped.double().mean()) - 0.25) < 0.05
    assert torch.allclose(got[~dropped], p.normalize(Data.param_values)[~dropped])
    again = p.train_inputs(None, Batch(torch.zeros(1000), torch.arange(1000), Data), torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(torch.isnan(again["params"]), torch.isnan(got))  # the trainer's generator decides
    assert p.guided and not _cond(0.0).guided  # no dropped examples: nothing to guide from
    assert torch.isnan(p.null_inputs(None, {"params": got})["params"]).all()
    back = conditioners_from_meta([json.loads(json.dumps(p.meta()))])[0]
    assert isinstance(back, Parameters) and back.meta() == p.meta()
    with pytest.raises(ValueError, match="range \\[0.0, 1.0\\] is not valid"):
        Parameters(["length"], [(0.0, 1.0)], [True])


def test_cond_params_needs_data_with_parameters():
    from noisecraft.conditioning import conditioners_for_training

    cfg = load_config("tiny", ["cond.params=true"])
    with pytest.raises(ConfigError, match="cond.params = true conditions on the dataset's physical parameters"):
        conditioners_for_training(cfg, load_dataset("blobs", split="train", resolution=8))
    with pytest.raises(ConfigError, match="cond.params_dropout = 1.0 is out of range"):
        load_config("tiny", ["cond.params_dropout=1.0"])


# --- end to end ------------------------------------------------------------------------------------

_TINY_NET = "net.overrides={patch_size=1,channel_mult=[1,2],attn_resolutions=[],padding_mode='circular',model_channels=16,mid_attention=false}"


def test_a_trained_grf_scales_model_draws_fields_of_the_length_it_is_asked_for(tmp_path, monkeypatch):
    """200 steps at 16x16: the fitted ℓ follows the ℓ asked for (an untrained net's fields do not)."""
    from noisecraft.runs import Run

    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 800, "test": 16} for k in fdata.FIELD_SPLIT_SIZES})
    fits = {}
    for steps in (2, 200):
        out = tmp_path / f"r{steps}"
        result = run("train", "grf-scales", "--out", out, "--steps", steps, "--set", "data.resolution=16", "--set", _TINY_NET,
                     "--set", "train.batch_size=16", "--set", f"train.checkpoint_every={steps}", "--set",
                     "train.tensorboard=false", "--set", "ema.phema_every=0", "--set", "optim.warmup_steps=20", "--quiet")
        assert result.exit_code == 0, result.output
        r = Run.open(out)
        fits[steps] = [float(np.median(fdata.fit_lengths(r.generate(r.spec(nfe=10, seed=0), 12, params=ell).double())))
                       for ell in (0.05, 0.2)]
    lo, hi = fits[200]
    assert hi / lo > 2.5, fits  # asked 4x apart (exact fields: ~4x; measured 0.051 vs 0.171 when written)
    assert 0.035 < lo < 0.08 and 0.12 < hi < 0.3, fits
    lo2, hi2 = fits[2]
    assert hi2 / lo2 < 1.5, fits  # the check can fail: an untrained net makes the same noise at every ℓ


def test_the_grf_scales_preset_samples_any_length_in_range_and_is_scored_on_length(tmp_path, monkeypatch):
    from noisecraft.runs import Run

    use_small_fields(monkeypatch, tmp_path, train=12, test=6)
    out = tmp_path / "gs"
    result = run("train", "grf-scales", "--out", out, "--steps", 2, "--set", "data.resolution=16", "--set",
                 "train.batch_size=4", "--set", "sample.nfe=2", "--set", "train.tensorboard=false", "--set",
                 "ema.phema_every=0", "--quiet")
    assert result.exit_code == 0, result.output
    r = Run.open(out)
    assert [c.kind for c in r.conditioners] == ["params"] and r.net_config["num_params"] == 1
    result = run("sample", out, "--n", 2, "--param", "length=0.07", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "params.txt").read_text() == "000000.npz\tlength=0.07\n000001.npz\tlength=0.07\n"
    result = run("sample", out, "--n", 3, "--out", tmp_path / "s3")
    assert result.exit_code == 0, result.output
    assert "length=0.05\n" in (tmp_path / "s3" / "params.txt").read_text()  # default: swept over the range
    for args, fragments in (
            (("--param", "length=0.3"), ("--param length=0.3 is outside the range", "0.05 <= length <= 0.2")),
            (("--param", "ell=0.1"), ("--param ell=0.1: unknown ell",)),
            (("--param", "length"), ("is not NAME=VALUE",)),
            (("--param", "length=0.1", "--guidance", 2), ("without an unconditional mode to guide from",))):
        assert_user_error(run("sample", out, "--n", 2, *args, "--out", tmp_path / "bad"), *fragments)
    grf = tmp_path / "plain"
    assert run("train", "grf", "--out", grf, "--steps", 1, "--set", "data.resolution=16", "--set", "train.batch_size=2",
               "--set", "train.tensorboard=false", "--set", "ema.phema_every=0", "--quiet").exit_code == 0
    assert_user_error(run("sample", grf, "--n", 2, "--param", "length=0.1", "--out", tmp_path / "bad"),
                      "--param length=0.1 needs a model conditioned on continuous parameters")
    assert not (tmp_path / "bad").exists()
    result = run("eval", out, "--out", tmp_path / "rep", "--n", 6, "--nfe", 2, "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    gen, floor = rep["generated"], rep["noise_floor"]
    assert floor["length_log_error_median"] < gen["length_log_error_median"]  # a 2-step model makes noise
    assert 0 <= gen["length_within_10pct"] <= floor["length_within_10pct"] <= 1
    assert [row["class"] for row in rep["per_class"]][0] == "l in [0.05, 0.0794)"
    assert sum(row["n"] for row in rep["per_class"]) == 6 and sum(row["n_floor"] for row in rep["per_class"]) == 6
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Per bin of ℓ" in md and "| l in [0.05, 0.0794) |" in md and "fitted ℓ / asked ℓ" in md
