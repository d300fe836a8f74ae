"""Guidance as a student input (Meng et al. 2023): the zero-output w embedding leaves a student built
from its teacher's weights equal to the teacher; `distill --guidance-range` writes a run that takes w,
samples it in one call per step at any w of the range (different w, different samples), resumes
bitwise, and refuses bad ranges and out-of-range weights in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402

from noisecraft.conditioning import ConditionError, GuidanceWeight  # noqa: E402
from noisecraft.distill.runner import DistillError, distill, resume_distill  # noqa: E402
from noisecraft.guidance.cfg import cfg, cfg_weight_input  # noqa: E402
from noisecraft.nets import build_net_from_config  # noqa: E402
from noisecraft.runs import Run, latest_checkpoint, load_checkpoint  # noqa: E402

TINY = ["--steps", 4, "--set", "train.batch_size=8", "--set", "sample.per_class=1", "--set", "sample.guidance=1.5",
        "--set", "sample.guidance_interval=[0.1, 10.0]", "--set", "train.checkpoint_every=2", "--quiet"]
SMALL = dict(train_steps=4, batch_size=4, progress=False, n_levels=5, guidance_range=[1.0, 3.0])
NETS = [
    {"name": "unet", "in_channels": 1, "resolution": 8, "num_classes": 3, "model_channels": 8, "channel_mult": [1, 2],
     "num_blocks": 1, "attn_resolutions": [4]},
    {"name": "dit", "in_channels": 1, "resolution": 8, "num_classes": 3, "patch_size": 2, "hidden_size": 16, "depth": 1,
     "num_heads": 2},
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    r = run("train", "tiny", "--out", root / "run", *TINY)
    assert r.exit_code == 0, r.output
    return root / "run"


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "cdw"
    r = run("distill", teacher, "--method", "consistency", "--steps", 2, "--train-steps", 4, "--batch-size", 4,
            "--levels", 5, "--lr", 2e-3, "--guidance-range", "1,3", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("config", NETS, ids=["unet", "dit"])
def test_zero_output_guidance_embedding_keeps_the_teacher(config):
    torch.manual_seed(3)
    plain = build_net_from_config(config).eval()
    torch.manual_seed(3)
    guided = build_net_from_config({**config, "guidance_embedding": True}).eval()
    shared = plain.state_dict()
    own = guided.state_dict()
    assert {k for k in own if k not in shared} == {k for k in own if k.startswith("guidance_emb.")}
    assert all(torch.equal(shared[k], own[k]) for k in shared)  # the w embedding leaves the seeded inits alone
    torch.manual_seed(4)
    for p in plain.parameters():  # a "trained" teacher: every weight non-zero
        p.data.normal_(0, 0.1)
    missing = guided.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("guidance_emb.") for k in missing)
    x, c_noise, labels = torch.randn(3, 1, 8, 8), torch.randn(3), torch.tensor([0, 1, 2])
    with torch.no_grad():
        ref = plain(x, c_noise, labels)
        for w in (0.0, 1.0, 2.7):
            assert torch.equal(guided(x, c_noise, labels, guidance=torch.full((3,), w)), ref)  # bitwise, at any w
        guided.guidance_emb.mlp[2].weight.data.normal_(0, 0.1)  # once trained, w matters
        a = guided(x, c_noise, labels, guidance=torch.full((3,), 1.0))
        b = guided(x, c_noise, labels, guidance=torch.full((3,), 2.0))
    assert not torch.allclose(a, b)


def test_guidance_input_is_required_exactly_by_a_guidance_net():
    plain = build_net_from_config(NETS[0])
    guided = build_net_from_config({**NETS[0], "guidance_embedding": True})
    x, c = torch.randn(2, 1, 8, 8), torch.zeros(2)
    with pytest.raises(ValueError, match="takes no guidance weight"):
        plain(x, c, guidance=torch.ones(2))
    with pytest.raises(ValueError, match="takes the guidance weight as an input"):
        guided(x, c)
    with pytest.raises(ValueError, match=r"expected guidance of shape \(B,\) = \(2,\)"):
        guided(x, c, guidance=torch.ones(3))


def test_per_sample_cfg_teacher_matches_fixed_weight_cfg():
    """The distillation target at w per row equals CFG at that fixed w, inside and outside the interval."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 16)

    def den(x, sigma, class_labels):
        return x * 0.5 + lin(class_labels).reshape(x.shape) * sigma.reshape(-1, 1, 1, 1)

    x, labels = torch.randn(4, 1, 4, 4), torch.eye(3)[[0, 1, 2, 0]]
    sigma = torch.tensor([0.5, 2.0, 7.0, 0.05])
    w = torch.tensor([1.0, 1.7, 2.5, 3.0])
    per_row = cfg_weight_input(den, interval=(0.1, 5.0), num_classes=3)(x, sigma, class_labels=labels, guidance=w)
    for i in range(4):
        fixed = cfg(den, float(w[i]), interval=(0.1, 5.0), num_classes=3)
        ref = fixed(x[i:i + 1], sigma[i:i + 1], class_labels=labels[i:i + 1])
        torch.testing.assert_close(per_row[i:i + 1], ref, rtol=0, atol=1e-6)


def test_distilled_w_run_records_its_range_and_samples_at_two_weights(teacher, student, tmp_path):
    s = Run.open(student)
    meta = json.loads((student / "run.json").read_text())
    assert meta["net"]["guidance_embedding"] is True and meta["distill"]["guidance_range"] == [1.0, 3.0]
    assert {"kind": "guidance", "range": [1.0, 3.0], "lr_scale": 10.0} in meta["conditioners"]  # the default scale
    assert s.spec().guidance == 1.5 and s.spec().guidance_interval is None  # the teacher's weight, within the range
    paths = []
    for w in ("1.2", "2.8"):
        r = run("sample", student, "--class", 2, "--n", 3, "--guidance", w, "--seed", 7, "--out", tmp_path / w)
        assert r.exit_code == 0, r.output
        paths.append(sorted((tmp_path / w).glob("0*.png")))
    assert len(paths[0]) == len(paths[1]) == 3
    a = s.generate(s.spec(guidance=1.2, seed=7), 3, class_labels=2)
    b = s.generate(s.spec(guidance=2.8, seed=7), 3, class_labels=2)
    assert a.shape == (3, *s.shape) and float((a - b).abs().max()) > 1e-5  # EMA 0.99 after 4 steps: small, yet far above rounding
    assert torch.equal(a, s.generate(s.spec(guidance=1.2, seed=7), 3, class_labels=2))
    # an older run without w (the teacher) still opens and samples with CFG as before
    t = Run.open(teacher)
    assert "guidance_embedding" not in t.net_config or t.net_config["guidance_embedding"] is False
    assert torch.isfinite(t.generate(t.spec(nfe=2), 2, class_labels=1)).all()


def test_eval_of_a_w_run_uses_the_weight_given(student, tmp_path):
    feats = tmp_path / "features"
    r = run("eval", "fit-features", "digits", "--out", feats, "--resolution", 8, "--steps", 2, "--width", 4,
            "--feature-dim", 4, "--batch-size", 8, "--quiet")
    assert r.exit_code == 0, r.output
    r = run("eval", "run", student, "--out", tmp_path / "e", "--n", 10, "--metrics", "fd,acc", "--features", feats,
            "--guidance", 2.5, "--quiet", "--no-cache")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "e" / "report.json").read_text())["guidance"] == 2.5
    assert_user_error(run("eval", "run", student, "--out", tmp_path / "e2", "--n", 10, "--metrics", "fd",
                          "--features", feats, "--guidance", 4, "--quiet", "--no-cache"), "1 <= guidance <= 3")


def test_one_network_call_per_step(student):
    s = Run.open(student)
    net = s.denoiser("ema").net
    calls = []
    hook = net.register_forward_hook(lambda m, args, kwargs, out: calls.append((args[0].shape[0], kwargs["guidance"].clone())),
                                     with_kwargs=True)
    try:
        s.generate(s.spec(guidance=2.5, nfe=2), 4, class_labels=1)
    finally:
        hook.remove()
    assert len(calls) == 2 and all(b == 4 for b, _ in calls)  # no unconditional branch: batch 4, not 8
    assert all(torch.equal(w, torch.full((4,), 2.5)) for _, w in calls)


@pytest.mark.parametrize("w", ["0.5", "3.5"])
def test_out_of_range_weight_is_refused(student, tmp_path, w):
    assert_user_error(run("sample", student, "--n", 2, "--guidance", w, "--out", tmp_path / "s"),
                      f"--guidance {w} is outside the range this student was distilled on", "1 <= guidance <= 3")
    s = Run.open(student)
    with pytest.raises(ConditionError, match="1 <= guidance <= 3"):
        s.generate(s.spec(guidance=float(w)), 2)


def test_resume_is_bitwise(teacher, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    straight = distill(teacher, a, method="consistency", steps=1, **SMALL)
    distill(teacher, b, method="consistency", steps=1, stop_at=2, **SMALL)
    rest = resume_distill(b, progress=False)
    assert rest.losses == straight.losses[2:]
    sa = load_checkpoint(latest_checkpoint(a / "checkpoints"))[1]
    sb = load_checkpoint(latest_checkpoint(b / "checkpoints"))[1]
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert any(k.startswith("guidance_emb.") and sa["model"][k].abs().sum() > 0 for k in sa["model"])  # w was learnt


def test_progressive_w_run(teacher, tmp_path):
    out = tmp_path / "pd"
    distill(teacher, out, method="progressive", steps=1, start_steps=4, **{**SMALL, "train_steps": 2})
    s = Run.open(out)
    a = s.generate(s.spec(guidance=1.0), 2, class_labels=0)
    b = s.generate(s.spec(guidance=3.0), 2, class_labels=0)
    assert s.spec().solver == "euler_open" and not torch.allclose(a, b)


@pytest.mark.parametrize("value, fragment", [("3,1", "'3,1' is not valid"), ("1", "'1' is not valid"),
                                             ("a,b", "'a,b' is not valid"), ("-1,2", "'-1,2' is not valid"),
                                             ("1,inf", "'1,inf' is not valid")])
def test_bad_ranges_are_one_line_errors(teacher, tmp_path, value, fragment):
    out = tmp_path / "x"
    assert_user_error(run("distill", teacher, "--method", "consistency", "--steps", 1, "--guidance-range", value,
                          "--out", out), f"--guidance-range {fragment}", "0 <= lo < hi < 100")
    assert not out.exists()


def test_conflicting_and_unguided_settings_are_refused(teacher, tmp_path):
    assert_user_error(run("distill", teacher, "--method", "consistency", "--steps", 1, "--guidance", 2,
                          "--guidance-range", "1,3", "--out", tmp_path / "x"), "were both given", "give one")
    with pytest.raises(DistillError, match=r"guidance range \[3, 1\] is not valid"):
        distill(teacher, tmp_path / "y", method="consistency", steps=1, **{**SMALL, "guidance_range": [3, 1]})
    r = run("train", "tiny", "--out", tmp_path / "u", "--steps", 1, "--set", "data.conditional=false",
            "--set", "train.batch_size=4", "--quiet")
    assert r.exit_code == 0, r.output
    with pytest.raises(DistillError, match="needs a teacher with classifier-free guidance"):
        distill(tmp_path / "u", tmp_path / "z", method="consistency", steps=1, **SMALL)
    assert_user_error(run("train", "tiny", "--out", tmp_path / "p", "--steps", 1, "--set", "cond.guidance_range=[1, 3]"),
                      "cond.guidance_range", "noisecraft distill --guidance-range")


def test_a_w_student_is_not_a_teacher(student, tmp_path):
    with pytest.raises(DistillError, match="is a guidance-distilled student"):
        distill(student, tmp_path / "x", method="consistency", steps=1, **SMALL)
    assert not (tmp_path / "x").exists()


def test_guidance_weight_conditioner_round_trip():
    c = GuidanceWeight([1, 3])
    assert c.meta() == {"kind": "guidance", "range": [1.0, 3.0], "lr_scale": 1.0}
    assert torch.equal(c.prepare(2, 3), torch.full((3,), 2.0))
    assert torch.equal(c.prepare([1, 2, 3], 3), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ConditionError, match="got 2 guidance weights for 3 samples"):
        c.prepare([1, 2], 3)


def test_web_app_feeds_and_checks_the_weight(student, tmp_path):
    from noisecraft.web import Jobs, Settings, WebError

    run_ = Run.open(student)
    jobs = Jobs({"w": run_}, tmp_path / "jobs")
    spec, n = jobs.spec(run_, Settings(guidance=2.5, n=2, nfe=1, solver="consistency"))
    assert spec.guidance == 2.5 and n == 2
    with pytest.raises(WebError, match="guidance 3.5 is outside the range this student was distilled on"):
        jobs.spec(run_, Settings(guidance=3.5))


def test_guidance_lr_scale_speeds_up_only_the_w_embedding(teacher, tmp_path):
    """Adam's first step moves each weight by about the lr: the w embedding's by lr x scale, the rest by lr."""
    moved = {}
    for scale in (1.0, 10.0):
        out = tmp_path / f"s{scale}"
        distill(teacher, out, method="consistency", steps=1, stop_at=1, **{**SMALL, "guidance_lr_scale": scale})
        raw = load_checkpoint(latest_checkpoint(out / "checkpoints"))[1]["model"]
        moved[scale] = (float(raw["guidance_emb.mlp.2.bias"].abs().max()), raw)
        assert json.loads((out / "run.json").read_text())["conditioners"][-1]["lr_scale"] == scale
    assert moved[10.0][0] == pytest.approx(10 * moved[1.0][0], rel=1e-3)
    a, b = moved[1.0][1], moved[10.0][1]
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("guidance_emb."))
    with pytest.raises(DistillError, match="guidance_lr_scale 0 is out of range"):
        distill(teacher, tmp_path / "bad", method="consistency", steps=1, **{**SMALL, "guidance_lr_scale": 0})
    assert_user_error(run("distill", teacher, "--method", "consistency", "--steps", 1, "--guidance-lr-scale", 5,
                          "--out", tmp_path / "x"), "--guidance-lr-scale 5.0 needs --guidance-range")
