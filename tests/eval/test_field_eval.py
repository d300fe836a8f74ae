"""`noisecraft eval RUN` for field runs: physical statistics of generated fields next to real floors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from noisecraft.data import fields as fdata

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402


@pytest.fixture()
def small(monkeypatch, tmp_path):
    """A private cache and tiny splits (the real sizes are FIELD_SPLIT_SIZES)."""
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 12, "test": 6} for k in fdata.FIELD_SPLIT_SIZES})
    return tmp_path


def _train(small, source: str) -> Path:
    out = small / source
    result = run("train", "tiny", "--out", out, "--steps", 2, "--set", f"data.source='{source}'",
                 "--set", "data.resolution=8", "--set", "data.conditional=false", "--set", "train.batch_size=4",
                 "--set", "sample.nfe=2", "--set", "ema.phema_every=0", "--set", "train.tensorboard=false", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_eval_of_a_grf_run_reports_spectrum_and_pixels_with_floors(small):
    run_dir = _train(small, "grf")
    result = run("eval", run_dir, "--out", small / "rep", "--quiet")
    assert result.exit_code == 0, result.output
    assert "spectrum_max_rel_error" in result.output and "floor" in result.output
    rep = json.loads((small / "rep" / "report.json").read_text())
    assert rep["format"] == "noisecraft-field-report/1" and rep["n"] == 6  # default n: the floor's test fields
    assert rep["reference"] == {"n_reference": 12, "reference_split": "train", "n_floor": 6, "floor_split": "test"}
    assert rep["metrics"] == ["spectrum", "pixels"]  # no Darcy residual for a GRF run
    for side in ("generated", "noise_floor"):
        s = rep[side]
        assert len(s["spectrum"][0]) == 5 and len(s["spectrum_rel_error"][0]) == 5  # bands 0..4 on an 8x8 grid
        assert s["spectrum_max_rel_error"] == pytest.approx(max(s["spectrum_rel_error"][0][1:]))
        assert 0 <= s["spectrum_bands_within_10pct"] <= 1 and s["pixel_w1"] >= 0
    # a 2-step model makes noise, far from the real spectrum; real test fields are much closer
    assert rep["generated"]["spectrum_mean_rel_error"] > 2 * rep["noise_floor"]["spectrum_mean_rel_error"]
    for name in ("report.md", "spectrum.png", "samples.png"):
        assert (small / "rep" / name).is_file()
    again = run("eval", run_dir, "--out", small / "rep2", "--quiet")
    assert json.loads((small / "rep2" / "report.json").read_text())["generated"] == rep["generated"]  # seeded


def test_eval_of_a_darcy_run_scores_the_pde_residual_of_generated_pairs(small):
    run_dir = _train(small, "darcy")
    result = run("eval", run_dir, "--out", small / "rep", "--n", 4, "--metrics", "residual", "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((small / "rep" / "report.json").read_text())
    gen, floor = rep["generated"], rep["noise_floor"]
    assert set(gen) == {"darcy_residual_median", "darcy_residual_mean", "darcy_residual_p90", "darcy_nonpositive_a",
                        "darcy_residual_snapped_median", "darcy_u_error_median"}  # snapped: the default is piecewise
    assert floor["darcy_residual_median"] < 1e-4  # real pairs: float32 storage only
    assert floor["darcy_nonpositive_a"] == 0 and floor["darcy_residual_snapped_median"] == floor["darcy_residual_median"]
    assert floor["darcy_u_error_median"] < 1e-5 and gen["darcy_u_error_median"] > 1e-2
    assert gen["darcy_residual_median"] > 100 * floor["darcy_residual_median"]  # untrained pairs break the PDE


def test_field_eval_errors_are_one_line(small):
    run_dir = _train(small, "grf")
    assert_user_error(run("eval", run_dir, "--out", small / "r", "--metrics", "residual"),
                      "metric 'residual' is not a field metric (darcy runs only)", "valid for this field run: spectrum, pixels")
    assert_user_error(run("eval", run_dir, "--out", small / "r", "--metrics", "vorticity"),
                      "metric 'vorticity' is not a field metric (navier-stokes runs only)")
    assert_user_error(run("eval", run_dir, "--out", small / "r", "--metrics", "fd"), "metric 'fd' is not a field metric")
    assert_user_error(run("eval", run_dir, "--out", small / "r", "--features", "inception"),
                      "take a classifier fitted on fields", "not the Inception image network")
    assert_user_error(run("eval", run_dir, "--out", small / "r", "--sweep-nfe", "2,4"), "is not available for field runs")
    assert not (small / "r").exists()


def _train_preset(out: Path, preset: str):
    """2 training steps of a field preset at 16x16 through the CLI; the saved Run."""
    from noisecraft.runs import Run

    result = run("train", preset, "--out", out, "--steps", 2, "--set", "data.resolution=16", "--set",
                 "train.batch_size=4", "--set", "sample.nfe=2", "--set", "train.tensorboard=false", "--set",
                 "ema.phema_every=0", "--quiet")
    assert result.exit_code == 0, result.output
    return Run.open(out)


def test_the_grf_preset_trains_an_unconditional_patch_net_through_the_cli(small):
    r = _train_preset(small / "preset", "grf")
    assert r.shape == (1, 16, 16) and r.modality == "field" and r.num_classes == 0
    assert r.net_config["patch_size"] == 2 and r.config.process.sigma_data == 0.5


def test_the_darcy_preset_trains_samples_evaluates_and_reconstructs_through_the_cli(small):
    import numpy as np

    from noisecraft.config import load_config
    from noisecraft.data import load_dataset

    cfg = load_config("darcy")
    assert cfg.data.source == "darcy" and dict(cfg.data.options) == {"coefficient": "piecewise"}
    assert cfg.train.threads == 1 and cfg.data.conditional is False
    out = small / "darcy-preset"
    r = _train_preset(out, "darcy")
    assert r.shape == (2, 16, 16) and r.modality == "field" and r.num_classes == 0
    assert r.net_config["patch_size"] == 2 and r.net_config.get("padding_mode", "zeros") == "zeros"  # Dirichlet walls
    assert r.config.process.sigma_data == 0.8
    result = run("eval", out, "--out", small / "darcy-rep", "--n", 3, "--nfe", 2, "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((small / "darcy-rep" / "report.json").read_text())
    assert rep["metrics"] == ["spectrum", "pixels", "residual"] and rep["channels"] == ["a", "u"]
    assert len(rep["generated"]["spectrum"]) == 2  # one spectrum per channel
    truth = load_dataset("darcy", split="test", resolution=16).data[0]
    idx = np.array([[1, 2], [5, 9], [12, 3], [14, 14]])
    np.savez(small / "dobs.npz", idx=idx, values=truth[:, idx[:, 0], idx[:, 1]].T.numpy())  # (M, 2): a and u
    np.savez(small / "dtruth.npz", field=truth.numpy())
    result = run("reconstruct", out, "--observations", small / "dobs.npz", "--n", 2, "--nfe", 2, "--truth",
                 small / "dtruth.npz", "--out", small / "drec")
    assert result.exit_code == 0, result.output
    with np.load(small / "drec" / "posterior.npz", allow_pickle=False) as z:
        assert z["samples"].shape == (2, 2, 16, 16) and np.isfinite(z["samples"]).all()
        default = z["samples"]
    result = run("reconstruct", out, "--observations", small / "dobs.npz", "--n", 2, "--nfe", 2, "--zeta", 10,
                 "--out", small / "drec10")
    assert result.exit_code == 0, result.output
    assert not np.allclose(np.load(small / "drec10" / "posterior.npz")["samples"], default)  # ζ reaches DPS
    assert_user_error(run("reconstruct", out, "--observations", small / "dobs.npz", "--zeta", 0, "--out", small / "z"),
                      "--zeta 0.0 is out of range", "valid: 0 < zeta <= 10000")
    assert_user_error(run("reconstruct", out, "--observations", small / "dobs.npz", "--zeta", 5, "--method", "pigdm",
                          "--out", small / "z"), "--zeta is DPS's step size", "not 'pigdm'")


def test_the_navier_stokes_preset_trains_samples_evaluates_and_reconstructs_through_the_cli(small):
    import numpy as np

    from noisecraft.config import load_config
    from noisecraft.data import load_dataset

    cfg = load_config("navier-stokes")
    assert cfg.data.source == "navier-stokes" and cfg.data.conditional is False and cfg.train.threads == 1
    out = small / "ns-preset"
    r = _train_preset(out, "navier-stokes")
    assert r.shape == (1, 16, 16) and r.modality == "field" and r.num_classes == 0
    assert r.net_config["patch_size"] == 2 and r.net_config["padding_mode"] == "circular"  # the torus
    assert r.config.process.sigma_data == cfg.process.sigma_data
    result = run("eval", out, "--out", small / "ns-rep", "--n", 3, "--nfe", 2, "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((small / "ns-rep" / "report.json").read_text())
    assert rep["metrics"] == ["spectrum", "pixels", "vorticity"] and rep["channels"] == ["vorticity"]
    gen, floor = rep["generated"], rep["noise_floor"]
    assert floor["ns_mean_vorticity_rel"] < 1e-6  # real fields: zero circulation, up to float32 storage
    assert gen["ns_mean_vorticity_rel"] > 100 * floor["ns_mean_vorticity_rel"]  # a 2-step model does not know it
    for side in (gen, floor):
        assert side["ns_enstrophy_ratio"] > 0 and side["ns_energy_ratio"] > 0
        assert min(side["ns_enstrophy_distance"], side["ns_energy_distance"], side["ns_max_vorticity_distance"]) >= 0
    md = (small / "ns-rep" / "report.md").read_text()
    assert "enstrophy ½⟨ω²⟩, mean / reference mean" in md
    truth = load_dataset("navier-stokes", split="test", resolution=16).data[0]
    idx = np.array([[1, 2], [5, 9], [12, 3], [14, 14]])
    np.savez(small / "obs.npz", idx=idx, values=truth[0, idx[:, 0], idx[:, 1]].numpy())
    result = run("reconstruct", out, "--observations", small / "obs.npz", "--n", 2, "--nfe", 2, "--out", small / "rec")
    assert result.exit_code == 0, result.output
    with np.load(small / "rec" / "posterior.npz", allow_pickle=False) as z:
        assert z["samples"].shape == (2, 1, 16, 16) and np.isfinite(z["samples"]).all()


@pytest.mark.parametrize("preset, kind, cond_channels", [("navier-stokes-forecast", "previous", 1),
                                                         ("navier-stokes-obs", "points", 2)])
def test_the_conditioned_navier_stokes_presets_train_through_the_cli(small, preset, kind, cond_channels):
    """The forecasting and observation-conditioned presets: the navier-stokes net plus their one condition."""
    r = _train_preset(small / preset, preset)
    assert r.shape == (1, 16, 16) and r.modality == "field"
    assert [c.image for c in r.conditioners] == [kind] and r.net_config["cond_channels"] == cond_channels
    assert r.net_config["patch_size"] == 2 and r.net_config["padding_mode"] == "circular"


def test_physics_guidance_through_sample_eval_and_reconstruct(small):
    """--physics (darcy runs): sampling, eval and reconstruction (u observed alone) take the residual term; it
    changes the draws only where it acts (σ <= --physics-sigma), and is refused where there is no residual."""
    import numpy as np

    from noisecraft.data import load_dataset

    run_dir = _train(small, "darcy")
    plain = run("sample", run_dir, "--n", 2, "--nfe", 4, "--out", small / "s0")
    guided = run("sample", run_dir, "--n", 2, "--nfe", 4, "--physics", 3, "--out", small / "s1")
    late = run("sample", run_dir, "--n", 2, "--nfe", 4, "--physics", 3, "--physics-sigma", 1e-9, "--out", small / "s2")
    for r in (plain, guided, late):
        assert r.exit_code == 0, r.output
    a, b, c = (np.load(small / d / "000000.npz")["field"] for d in ("s0", "s1", "s2"))
    assert not np.allclose(a, b) and np.array_equal(a, c)  # off above σ_p: the unguided draw, bit for bit
    result = run("eval", run_dir, "--out", small / "rep", "--n", 2, "--nfe", 4, "--metrics", "residual", "--physics", 3,
                 "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((small / "rep" / "report.json").read_text())
    assert rep["physics"] == {"step": 3.0, "sigma_max": "inf"}
    assert "physics guidance ζ_p 3 at σ <= inf" in (small / "rep" / "report.md").read_text()
    truth = load_dataset("darcy", split="test", resolution=8).data[0]
    idx = np.array([[1, 2], [5, 6], [3, 3]])
    np.savez(small / "uobs.npz", idx=idx, values=truth[1, idx[:, 0], idx[:, 1]].numpy(), channels=np.array([1]))
    np.savez(small / "truth.npz", field=truth.numpy())
    result = run("reconstruct", run_dir, "--observations", small / "uobs.npz", "--n", 2, "--nfe", 2, "--physics", 2,
                 "--truth", small / "truth.npz", "--out", small / "rec")
    assert result.exit_code == 0, result.output
    assert "dps+physics, 3 points" in result.output
    assert json.loads((small / "rec" / "metrics.json").read_text())["method"] == "dps+physics"
    bad = [(("sample", "--n", 2, "--physics", 0), "--physics 0.0 is out of range"),
           (("sample", "--n", 2, "--physics", 1, "--physics-sigma", -1), "--physics-sigma -1.0 is out of range"),
           (("reconstruct", "--observations", small / "uobs.npz", "--physics", 1, "--method", "pigdm"),
            "--physics adds a term to DPS"),
           (("eval", "--physics", -2), "--physics -2.0 is out of range")]
    for args, fragment in bad:
        cmd, *rest = args
        assert_user_error(run(cmd, run_dir, *rest, "--out", small / "bad"), fragment)
    grf_dir = _train(small, "grf")
    for cmd, extra in (("sample", ("--n", 2)), ("eval", ())):
        assert_user_error(run(cmd, grf_dir, *extra, "--physics", 1, "--out", small / "bad"), "'grf' has none built in",
                          "valid: darcy")
    assert not (small / "bad").exists()


def test_the_grf_lengths_preset_is_class_conditional_and_scored_per_class(small):
    r = _train_preset(small / "gl", "grf-lengths")
    assert r.num_classes == 3 and r.shape == (1, 16, 16) and r.class_names == ["l=0.05", "l=0.1", "l=0.2"]
    result = run("sample", small / "gl", "--n", 2, "--class", "l=0.2", "--out", small / "gl-s")
    assert result.exit_code == 0, result.output
    result = run("eval", small / "gl", "--out", small / "gl-rep", "--n", 6, "--nfe", 2, "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((small / "gl-rep" / "report.json").read_text())
    assert [row["class"] for row in rep["per_class"]] == ["l=0.05", "l=0.1", "l=0.2"]
    assert all(row["n"] == 2 and row["n_floor"] == 2 for row in rep["per_class"])  # classes in turn; test split 6
    gen, floor = rep["generated"], rep["noise_floor"]
    assert floor["class_accuracy"] == 1.0  # the oracle labels every real field
    assert 0 <= gen["class_accuracy"] <= 1
    assert gen["class_spectrum_max_rel_error"] == max(row["generated"]["spectrum_max_rel_error"] for row in rep["per_class"])
    assert gen["class_spectrum_mean_rel_error"] > floor["class_spectrum_mean_rel_error"]  # a 2-step model is noise
    assert "| l=0.2 | 2 |" in (small / "gl-rep" / "report.md").read_text()
    for row in rep["per_class"]:  # where each class's samples went, and the floor per class
        assert sum(row["generated_predicted"]) == 2 and row["noise_floor"]["class_accuracy"] == 1.0
        assert row["generated"]["length_fit"][0] <= row["generated"]["length_fit"][2]
    assert_user_error(run("sample", small / "gl", "--n", 2, "--physics", 1, "--out", small / "bad"), "--physics guides "
                      "unconditional field runs")
    with pytest.raises(ValueError, match="wrap applies to unconditional runs; this run is conditional"):
        r.generate(r.spec(nfe=2), 2, wrap=lambda den: den)
    # a classifier fitted on the fields: Fréchet distance in its features and its own class accuracy
    fit = run("eval", "fit-features", "grf-lengths", "--resolution", 16, "--steps", 30, "--feature-dim", 3, "--width", 4,
              "--out", small / "feats", "--quiet")
    assert fit.exit_code == 0, fit.output
    result = run("eval", small / "gl", "--out", small / "gl-fd", "--n", 6, "--nfe", 2, "--features", small / "feats",
                 "--metrics", "pixels", "--quiet")
    assert result.exit_code == 0, result.output
    rep = json.loads((small / "gl-fd" / "report.json").read_text())
    gen, floor = rep["generated"], rep["noise_floor"]
    assert gen["fd"] > floor["fd"] >= 0  # a 2-step model's noise is further from the reference than real fields
    assert 0 <= gen["feature_class_accuracy"] <= 1 and rep["features"]["dim"] == 3
