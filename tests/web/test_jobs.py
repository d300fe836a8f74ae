"""What the app computes, without a server: run names, supported tasks, one-line checks of settings,
streaming with cancellation, and the `noisecraft serve` command's errors."""

from __future__ import annotations

import threading
import time

import pytest

from web_helpers import cli_run

from noisecraft.runs import Run
from noisecraft.web import Jobs, Preview, Result, Settings, WebError, run_names, tasks_of


@pytest.fixture(scope="module")
def jobs(tiny_run, tmp_path_factory):
    return Jobs({"tiny": Run.open(tiny_run)}, tmp_path_factory.mktemp("jobs"))


def test_run_names_are_folder_names_made_unique(tmp_path):
    names = run_names([tmp_path / "a" / "demo", tmp_path / "b" / "demo", tmp_path / "notes"])
    assert list(names) == ["demo", "demo-2", "notes"]


def test_tiny_image_run_supports_every_task(jobs):
    assert tasks_of(jobs.run("tiny")) == ["generate", "inpaint", "img2img", "upscale"]


@pytest.mark.parametrize("settings, fragment", [
    (Settings(seed=-1), "seed -1 is out of range; valid: an integer 0..9223372036854775807"),
    (Settings(n=0), "n 0 is out of range; valid: an integer 1..64"),
    (Settings(nfe="many"), "nfe 'many' is not an integer"),
    (Settings(nfe=2.5), "nfe 2.5 is out of range"),
    (Settings(solver="nope"), "solver 'nope' is not a solver for this tab; valid: euler"),
    (Settings(guidance="strong"), "guidance 'strong' is not a number"),
    (Settings(guidance=float("nan")), "guidance nan is out of range"),
    (Settings(seed=2**63 - 1, n=2), "valid: an integer 0..9223372036854775806"),
])
def test_bad_settings_name_the_value_and_what_is_valid(jobs, settings, fragment):
    with pytest.raises(WebError) as info:
        jobs.generate_work("tiny", settings)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_only_served_runs_and_known_classes(jobs):
    with pytest.raises(WebError, match=r"run '\.\./x' is not served here; valid: tiny"):
        jobs.run("../x")
    with pytest.raises(WebError, match="class '12' is not a class of this run; valid: 0, 1"):
        jobs.generate_work("tiny", Settings(), "12")


def test_stream_previews_then_result(jobs):
    events = list(jobs.stream(jobs.generate_work("tiny", Settings(nfe=6, n=2, seed=3), "4"), every=2,
                                  min_interval=0))
    previews, result = events[:-1], events[-1]
    steps = [p.step for p in previews]  # every 2nd step; one behind the sampler skips to the newest
    assert steps[0] == 0 and steps == sorted(set(steps)) and set(steps) <= {0, 2, 4}
    assert all(isinstance(p, Preview) and p.image.dtype.name == "uint8" and p.image.shape[-1] == 3 for p in previews)
    assert isinstance(result, Result) and [f.name for f in result.files] == ["000000.png", "000001.png"]
    assert result.first_preview_seconds is not None and result.first_preview_seconds <= result.seconds


def test_closing_the_stream_stops_the_sampler(jobs):
    work = jobs.generate_work("tiny", Settings(nfe=500, n=1), "1")
    stream = jobs.stream(work, every=1, min_interval=0)
    assert isinstance(next(stream), Preview)
    stream.close()
    deadline = time.monotonic() + 10
    while any(t.name == "noisecraft-web-tiny" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "noisecraft-web-tiny" for t in threading.enumerate())


def test_errors_inside_the_sampler_reach_the_caller(jobs):
    work = jobs.generate_work("tiny", Settings(nfe=2), "1")

    def broken(callback):
        raise ValueError("boom")

    work.fn = broken
    with pytest.raises(ValueError, match="boom"):
        list(jobs.stream(work))


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_serve_without_a_run_or_the_demo_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_error(cli_run("serve"), "make demo", "noisecraft serve RUN_DIR")


def test_serve_refuses_folders_that_are_not_runs_and_bad_ports(tmp_path, tiny_run):
    _one_line_error(cli_run("serve", tmp_path / "missing"), "does not exist")
    _one_line_error(cli_run("serve", tiny_run, "--port", 70000), "--port 70000 is out of range")


def test_serve_binds_to_localhost_by_default():
    from noisecraft.cli.serve_cmd import serve_cmd

    host = next(p for p in serve_cmd.params if p.name == "host")
    assert host.default == "127.0.0.1"


def test_previews_are_throttled_in_time(jobs):
    """With a minimum interval longer than the whole run, only the first estimate is shown."""
    events = list(jobs.stream(jobs.generate_work("tiny", Settings(nfe=6), "4"), every=1, min_interval=60))
    assert [type(e).__name__ for e in events] == ["Preview", "Result"] and events[0].step == 0


def test_serve_says_when_the_port_is_taken(tiny_run):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _one_line_error(cli_run("serve", tiny_run, "--port", port), f"--port {port} cannot be used")


def test_training_tab_reports_the_last_logged_step_and_the_newest_evaluation(tiny_run, tmp_path):
    import json
    import shutil

    from noisecraft.web.app import _report_markdown

    text = _report_markdown(Run.open(tiny_run))
    assert "Training, last logged: step 2, samples 16, loss" in text and "No evaluation recorded" in text
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_run, copy)
    (copy / "eval.jsonl").write_text(json.dumps({"step": 1, "fd": 9.0}) + "\n" + json.dumps({"step": 2, "fd": 7.5}) + "\n")
    text = _report_markdown(Run.open(copy))
    assert "| fd | 7.5 |" in text and "| step | 2 |" in text and "9" not in text.split("Newest evaluation")[1]


def test_serve_without_a_run_offers_the_demo_on_localhost(tiny_run, tmp_path, monkeypatch):
    import shutil

    import noisecraft.web.app as web_app
    from web_helpers import free_port

    shutil.copytree(tiny_run, tmp_path / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(web_app, "launch", lambda app, **kw: calls.append((app, kw)))
    port = free_port()
    result = cli_run("serve", "--port", port)
    assert result.exit_code == 0, result.output
    assert f"serving demo at http://127.0.0.1:{port}" in result.output
    (app, kw), = calls
    assert kw["host"] == "127.0.0.1" and kw["port"] == port
    assert app.analytics_enabled is False
