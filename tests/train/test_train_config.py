"""Config dataclasses: presets, TOML files, dotted overrides, type and range checks, JSON round trip."""

from __future__ import annotations

import json

import pytest

from noisecraft.config import Config, ConfigError, config_from_dict, load_config, preset_names


def test_presets_load():
    assert {"digits", "tiny"} <= set(preset_names())
    for name in preset_names():
        if name.startswith("folder") or name == "video-folder":  # the folder presets need the user's folder
            with pytest.raises(ConfigError, match="--set data.source=PATH"):
                load_config(name)
            cfg = load_config(name, ["data.source=my/images"])
        else:
            cfg = load_config(name)
        assert isinstance(cfg, Config)


def test_overrides_are_typed():
    cfg = load_config("tiny", ["optim.lr=3e-3", "train.steps=7", "data.hflip=true", "ema.phema_stds=[0.04, 0.09]",
                               "net.overrides.model_channels=8", "sample.solver=dpmpp_2m", "optim.min_lr=0"])
    assert cfg.optim.lr == 3e-3 and cfg.train.steps == 7 and cfg.data.hflip is True
    assert cfg.ema.phema_stds == [0.04, 0.09] and cfg.net.overrides == {"model_channels": 8}
    assert cfg.sample.solver == "dpmpp_2m" and isinstance(cfg.optim.min_lr, float)


@pytest.mark.parametrize(
    "override, match",
    [
        ("optim.lrr=1", r"unknown key optim.lrr; valid keys in \[optim\]: lr, "),
        ("nope.x=1", "unknown config key 'nope.x'.*data, net, process"),
        ("train.steps=-5", r"train.steps = -5 is out of range; valid: an integer >= 1"),
        ("train.batch_size=0", "train.batch_size = 0 is out of range"),
        ("train.steps=1.5", "train.steps = 1.5 has type float; expected int"),
        ("train.steps=true", "expected int"),
        ("optim.lr=fast", "optim.lr = 'fast' has type str; expected float"),
        ("process.name=vx", "process.name = 'vx' is not valid; valid: ve, vp, vp_discrete, flow"),
        ("train.class_dropout=1.0", "class_dropout"),
        ("train.accum_steps=3", "a divisor of train.batch_size"),
        ("train.steps", "must look like section.key=value"),
        ("train.steps.x=1", "not a table"),
        ("sample.solver=magic", "sample.solver = 'magic' is not valid; valid: euler, heun"),
    ],
)
def test_bad_overrides(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny", [override])


def test_cross_field_check():
    with pytest.raises(ConfigError, match="prediction = 'flow' needs process.name = 'flow'"):
        load_config("tiny", ["process.prediction=flow"])
    load_config("tiny", ["process.prediction=flow", "process.name=flow"])


def test_messages_are_one_line():
    for bad in (["optim.lrr=1"], ["train.steps=0"], ["x.y=1"]):
        with pytest.raises(ConfigError) as e:
            load_config("tiny", bad)
        assert "\n" not in str(e.value)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'; valid presets: .*digits"):
        load_config("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.toml"))


def test_toml_file(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text('[train]\nsteps = 3\n[optim]\nlr = 1\n')
    cfg = load_config(str(p))
    assert cfg.train.steps == 3 and cfg.optim.lr == 1.0
    p.write_text('[train]\nstepz = 3\n')
    with pytest.raises(ConfigError, match="unknown key train.stepz"):
        load_config(str(p))
    p.write_text('[train\n')
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(str(p))


def test_json_roundtrip():
    cfg = load_config("digits", ["net.overrides.dropout=0.1"])
    back = config_from_dict(json.loads(cfg.to_json()))
    assert back == cfg
