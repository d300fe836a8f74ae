"""The Forecast tab of a next-state field run (`[cond] image = "previous"`) through the HTTP API: the same
forecast.npz, heat-map strips and metrics.json as `noisecraft forecast`, byte for byte; only such runs show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from web_helpers import cli_run, served

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def forecast_setup(tmp_path_factory):
    """Tiny navier-stokes-forecast splits (16x16, 1-time-unit spin-up, private cache), a 2-step next-state run
    served as "nsf" next to a plain grf run, and one exported test trajectory."""
    from noisecraft.data import fields as fdata

    d = tmp_path_factory.mktemp("webforecast")
    mp = pytest.MonkeyPatch()
    mp.setenv("NOISECRAFT_CACHE", str(d / "cache"))
    mp.setattr(fdata, "FIELD_SPLIT_SIZES", {k: {"train": 4, "test": 2} for k in fdata.FIELD_SPLIT_SIZES})
    mp.setattr(fdata, "NS_CONFIG", fdata.NSConfig(spinup=1.0))
    mp.setattr(fdata, "FIELD_NATIVE_SIZE", 16)
    try:
        common = ["--steps", 2, "--set", "data.resolution=16", "--set", "data.conditional=false", "--set",
                  "train.batch_size=4", "--set", "sample.nfe=2", "--set", "ema.phema_every=0", "--quiet"]
        for name, extra in (("nsf", ["--set", "data.source='navier-stokes-forecast'", "--set", "cond.image='previous'"]),
                            ("grf", ["--set", "data.source='grf'"])):
            r = cli_run("train", "tiny", "--out", d / name, *common, *extra)
            assert r.exit_code == 0, r.output
        r = cli_run("data", "export", "navier-stokes-forecast", "--split", "test", "--n", 1, "--out", d / "traj")
        assert r.exit_code == 0, r.output
        with served({"nsf": d / "nsf", "grf": d / "grf"}, d / "root", preview_interval=0) as url:
            yield d, Client(url, verbose=False)
    finally:
        mp.undo()


def test_forecast_tab_equals_cli_forecast_bytes(forecast_setup, tmp_path):
    d, client = forecast_setup
    traj = d / "traj" / "000000.npz"
    job = client.submit("nsf", handle_file(str(traj)), handle_file(str(traj)), 3, None, 2, 5, 3, api_name="/forecast")
    out = job.result()
    names = [Path(p).name for p in out[2]]
    assert names == ["forecast.npz", "member0.png", "mean.png", "std.png", "truth.png", "error.png", "metrics.json"]
    r = cli_run("forecast", d / "nsf", "--state", traj, "--truth", traj, "--steps", 3, "--n", 3, "--nfe", 2,
                "--seed", 5, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    for p in map(Path, out[2]):
        assert p.read_bytes() == (tmp_path / "cli" / p.name).read_bytes(), p.name
    last = json.loads(Path(out[2][-1]).read_text())["leads"][-1]
    assert out[4].startswith("forecast: 3 member(s) of a forecast (last lead), seeds 5..7")
    assert f"rel_l2 {last['rel_l2']:.4g}" in out[4] and "persistence_rel_l2" in out[4], out[4]
    assert any(o[4].startswith("forecast: step ") for o in job.outputs()[:-1])  # the live view streamed


def test_only_next_state_runs_forecast(forecast_setup):
    d, client = forecast_setup
    traj = d / "traj" / "000000.npz"
    with pytest.raises(Exception) as info:
        client.predict("grf", handle_file(str(traj)), None, 2, None, 2, 0, 1, api_name="/forecast")
    assert "run 'grf' cannot forecast" in " ".join(str(info.value).split())
    shown = client.predict("nsf", api_name="/select_run")
    assert "field run; tasks: Generate, Forecast" in shown[-1]
