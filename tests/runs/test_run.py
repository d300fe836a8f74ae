"""`noisecraft.runs`: a saved run as an object. Runs written by the first release (format
noisecraft-run/1, the fixture in data/run-v1 was written by commit 68999e4) still open, sample the
same images, resume and extend; unknown formats and bad values get one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from noisecraft.conditioning import ClassLabels
from noisecraft.runs import Run, RunError, is_run
from noisecraft.sampling import SamplingSpec, SpecError
from noisecraft.train import train

DATA = Path(__file__).parent / "data"


@pytest.fixture
def v1(tmp_path) -> Path:
    run = tmp_path / "run-v1"
    shutil.copytree(DATA / "run-v1", run)
    return run


def test_a_first_release_run_opens_and_samples_what_it_sampled(v1):
    assert json.loads((v1 / "run.json").read_text())["format"] == "noisecraft-run/1" and is_run(v1)
    run = Run.open(v1)
    assert run.shape == (1, 8, 8) and run.modality == "image"
    assert run.modality_options == {} and run.get_modality().name == "image"  # options came later: none recorded
    assert [type(c) for c in run.conditioners] == [ClassLabels] and run.num_classes == 10
    # the images the old code drew (class 1..3, seeds 0..2, euler 3 steps, guidance 2)
    x = run.generate(SamplingSpec(solver="euler", nfe=3, guidance=2.0, seed=0), 3, class_labels=[1, 2, 3])
    torch.testing.assert_close(x, load_file(DATA / "run-v1-samples.safetensors")["samples"], atol=1e-5, rtol=0)


def test_a_first_release_run_resumes_and_stays_v1(v1):
    result = train(None, v1, resume=True, progress=False)  # it was finished at step 3
    assert result.step == 3
    cfg = Run.open(v1).config
    cfg.train.steps = 5
    assert train(cfg, v1, resume=True, progress=False).step == 5
    assert json.loads((v1 / "run.json").read_text())["format"] == "noisecraft-run/1"
    assert Run.open(v1).generate(None, 2).shape == (2, 1, 8, 8)


def test_unknown_or_broken_runs_are_one_line_errors(v1, tmp_path):
    doc = json.loads((v1 / "run.json").read_text())
    (v1 / "run.json").write_text(json.dumps({**doc, "format": "noisecraft-run/9"}))
    with pytest.raises(RunError, match="format 'noisecraft-run/9', written by a newer noisecraft.*upgrade"):
        Run.open(v1)
    with pytest.raises(RunError, match="does not exist"):
        Run.open(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="is not a noisecraft run"):
        Run.open(tmp_path / "plain")


def test_bad_conditions_and_specs_name_the_parameter(v1):
    run = Run.open(v1)
    with pytest.raises(ValueError, match="class_labels 12 is not a class of this model; valid: 0..9"):
        run.generate(None, 1, class_labels=12)
    with pytest.raises(ValueError, match="prompts is not a condition of this model; valid: class_labels"):
        run.generate(None, 1, prompts="a red circle")
    with pytest.raises(ValueError, match="got 2 class_labels for 3 samples"):
        run.generate(None, 3, class_labels=[1, 2])
    with pytest.raises(RunError, match="weights 'nope' is not valid; valid: raw, ema"):
        run.denoiser("nope")
    for bad, match in [(dict(solver="magic"), "solver 'magic' is not a solver"), (dict(nfe=0), "nfe 0 is out of range"),
                       (dict(guidance=float("nan")), "guidance nan is out of range"),
                       (dict(guidance_interval=(2.0, 1.0)), "guidance_interval"), (dict(seed=-1), "seed -1")]:
        with pytest.raises(SpecError, match=match):
            SamplingSpec(**bad)


def test_class_names_and_indices_are_the_same_condition(v1):
    run = Run.open(v1)
    spec = SamplingSpec(solver="euler", nfe=2, seed=3)
    assert torch.equal(run.generate(spec, 2, class_labels="7"), run.generate(spec, 2, class_labels=7))
    # no class: classes in turn, like the CLI
    assert torch.equal(run.generate(spec, 3), run.generate(spec, 3, class_labels=[0, 1, 2]))


def test_modality_options_are_recorded_and_optional(tmp_path):
    from noisecraft.config import load_config

    cfg = load_config("tiny", ["data.source=notes", "data.resolution=64", "data.sample_rate=11025", "train.steps=1",
                               "train.batch_size=4", "ema.phema_every=0", "sample.per_class=1", "sample.nfe=1"])
    train(cfg, tmp_path / "audio", progress=False)
    doc = json.loads((tmp_path / "audio" / "run.json").read_text())
    assert doc["modality"] == "audio" and doc["modality_options"] == {"sample_rate": 11025}
    run = Run.open(tmp_path / "audio")
    assert run.modality_options == {"sample_rate": 11025} and run.get_modality().sample_rate == 11025
    # a noisecraft-run/2 folder written before modality options existed opens with the defaults
    del doc["modality_options"]
    (tmp_path / "audio" / "run.json").write_text(json.dumps(doc))
    assert Run.open(tmp_path / "audio").modality_options == {}
    assert Run.open(tmp_path / "audio").get_modality().sample_rate == 8000
    (tmp_path / "audio" / "run.json").write_text(json.dumps({**doc, "modality_options": [1, 2]}))
    with pytest.raises(RunError, match="unreadable run.json"):
        Run.open(tmp_path / "audio")
