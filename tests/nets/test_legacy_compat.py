"""Runs saved before the nets became dimension-generic (commit 68999e4) must still open: same
parameter names, shapes and order, and the same outputs for the same weights and inputs (bitwise against
the old code on one machine; to float32 rounding against the fixture, which another CPU wrote).

Two checks:

* a committed fixture (tests/nets/data/legacy_68999e4.*, a few KB) written by the old code: the
  configs as saved then (no `dims` key), the (name, shape) lists of their state dicts, seeded-init
  checksums, inputs and outputs. The weights are not stored: `formula_weights` fills every tensor
  from its name and position with exact integer arithmetic, so old and new code see the same bits.
* when the git history is at hand, the old package itself, read with `git show 68999e4:...`
  into a temporary package, side by side with the new one on a few more configurations.

Regenerate the fixture (only ever from the old code) with
    PYTHONPATH=src python tests/nets/test_legacy_compat.py
"""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from noisecraft.nets import build_net, build_net_from_config

COMMIT = "68999e4"
DATA = Path(__file__).parent / "data"
FIXTURE = DATA / f"legacy_{COMMIT}"
REPO = Path(__file__).resolve().parents[2]

# (case name, preset, build kwargs): every conditioning path of the two 2-D nets.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("unet_full", "unet-tiny", dict(in_channels=1, resolution=8, num_classes=3, context_dim=4, pooled_context=True,
                                    cond_channels=1)),
    ("unet_plain", "unet-tiny", dict(in_channels=2, resolution=8)),
    ("dit_full", "dit-tiny", dict(in_channels=1, resolution=8, num_classes=3, context_dim=4, pooled_context=True,
                                  cond_channels=1)),
    ("dit_plain", "dit-tiny", dict(in_channels=2, resolution=8, patch_size=4)),
]
# Larger presets: only their parameter names and shapes are pinned (as a hash, to stay small).
NAME_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("unet-small", dict(in_channels=1, resolution=16, num_classes=10)),
    ("unet-base", dict(in_channels=3, resolution=32, num_classes=10, context_dim=16)),
    ("dit-small", dict(in_channels=3, resolution=32, num_classes=10)),
]


def formula_weights(net: nn.Module) -> None:
    """Fill every state-dict tensor with values in [-0.1, 0.1] from its name and element index,
    by exact integer arithmetic (identical on any machine and torch version)."""
    with torch.no_grad():
        for name, t in net.state_dict().items():
            i = torch.arange(t.numel(), dtype=torch.int64)
            k = (i * 7919 + zlib.crc32(name.encode())) % 1999 - 999  # integers in [-999, 999]
            t.copy_((k.double() / 9990).reshape(t.shape).to(t.dtype))


def names_and_shapes(net: nn.Module) -> list[list[Any]]:
    return [[k, list(v.shape)] for k, v in net.state_dict().items()]


def names_hash(net: nn.Module) -> str:
    """Hash of the state-dict (name, shape) list and of the parameter order."""
    text = json.dumps([names_and_shapes(net), [n for n, _ in net.named_parameters()]])
    return hashlib.sha256(text.encode()).hexdigest()


def make_inputs(case: str, kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    res, ch = kwargs["resolution"], kwargs["in_channels"]
    out = {"x": torch.randn(2, ch, res, res, generator=gen), "c_noise": torch.randn(2, generator=gen)}
    if kwargs.get("num_classes"):
        out["class_labels"] = torch.tensor([0, kwargs["num_classes"] - 1])
    if kwargs.get("context_dim"):
        out["context"] = torch.randn(2, 3, kwargs["context_dim"], generator=gen)
        out["context_mask"] = torch.tensor([[True, True, False], [True, False, False]])
    if kwargs.get("cond_channels"):
        out["image_cond"] = torch.randn(2, kwargs["cond_channels"], res, res, generator=gen)
    return out


def run_case(net: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Outputs with every condition given, and with only the required ones (context/label dropped)."""
    x, c = inputs["x"], inputs["c_noise"]
    kw = {k: inputs[k] for k in ("context_mask", "image_cond") if k in inputs}
    full = net(x, c, inputs.get("class_labels"), inputs.get("context"), **kw)
    bare = net(x, c, image_cond=inputs.get("image_cond"))
    return {"full": full, "bare": bare}


def build_case(build: Any, preset: str, kwargs: dict[str, Any]) -> nn.Module:
    torch.manual_seed(0)
    return build(preset, **kwargs).eval()


def init_sums(net: nn.Module) -> list[float]:
    return [float(v.double().sum()) for v in net.state_dict().values()]


# --- the committed fixture ------------------------------------------------------------------------


def _fixture() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return json.loads(FIXTURE.with_suffix(".json").read_text()), load_file(FIXTURE.with_suffix(".safetensors"))


@pytest.mark.parametrize("case, preset, kwargs", CASES, ids=[c[0] for c in CASES])
def test_old_checkpoint_loads_strictly_and_reproduces_outputs(case: str, preset: str, kwargs: dict) -> None:
    meta, tensors = _fixture()
    saved = meta["cases"][case]
    assert "dims" not in saved["config"]  # as written by the old release
    net = build_net_from_config(saved["config"]).eval()
    assert net.cfg.dims == 2
    # Names, shapes and their order are exactly the old ones (other code compares them strictly).
    assert names_and_shapes(net) == saved["state_dict"]
    assert [n for n, _ in net.named_parameters()] == saved["parameters"]
    formula_weights(net)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(weights, strict=True)
    inputs = {k.rsplit("/", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{case}/in/")}
    with torch.no_grad():
        outputs = run_case(net, inputs)
    for key, out in outputs.items():
        want = tensors[f"{case}/out/{key}"]
        assert out.abs().max() > 0  # a real check, not zeros against zeros
        # The fixture was written on one CPU (Intel); another CPU's float32 kernels (e.g. AMD, other SIMD widths)
        # round differently, so across machines the outputs agree to float32 rounding (measured <= 5e-7 of an
        # output scale ~1) - a wrong weight, layer or order changes them by orders of magnitude more. Bitwise
        # equality of old and new code is checked on one machine by test_side_by_side_with_the_old_package.
        scale = float(want.abs().max())
        assert torch.allclose(out, want, rtol=1e-5, atol=1e-5 * scale), (key, (out - want).abs().max().item(), scale)
    # The same preset built today equals the old saved config, and a seeded build the old init.
    new = build_case(build_net, preset, kwargs)
    new_keys = ({"dims": 2, "patch_size": 1, "padding_mode": "zeros", "video_attention": "factorized",
                 "cross_attention_positions": False}
                if preset.startswith("unet")
                else {"dims": 2, "temporal_patch": 1})
    new_keys["guidance_embedding"] = False
    new_keys["num_params"] = 0
    assert new.config == {**saved["config"], **new_keys}  # only new fields, at their 2-D defaults
    torch.testing.assert_close(torch.tensor(init_sums(new)), torch.tensor(saved["init_sums"]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("preset, kwargs", NAME_ONLY, ids=[p for p, _ in NAME_ONLY])
def test_old_preset_parameter_names_unchanged(preset: str, kwargs: dict) -> None:
    meta, _ = _fixture()
    assert names_hash(build_net(preset, **kwargs)) == meta["names_hash"][preset]


# --- side by side with the old package, when the git history is here ------------------------------


def legacy_nets(tmp_path: Path):
    """Import the nets package of COMMIT from git into a temporary package; None without git history."""
    pkg = tmp_path / f"legacy_nets_{COMMIT}"
    pkg.mkdir()
    for name in ("__init__", "layers", "unet", "dit", "registry"):
        try:
            text = subprocess.run(["git", "-C", str(REPO), "show", f"{COMMIT}:src/noisecraft/nets/{name}.py"],
                                  capture_output=True, check=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        (pkg / f"{name}.py").write_text(text)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(pkg.name)
    finally:
        sys.path.remove(str(tmp_path))


LIVE = CASES + [
    ("unet_small_ctx", "unet-small", dict(in_channels=3, resolution=16, num_classes=4, context_dim=8, dropout=0.1)),
    ("unet_attn_everywhere", "unet-tiny", dict(in_channels=1, resolution=8, attn_resolutions=(8, 4),
                                               channel_mult=(1, 2, 2), attn_head_channels=8)),
    ("dit_p1", "dit-tiny", dict(in_channels=1, resolution=4, patch_size=1, num_classes=2)),
]


def test_side_by_side_with_the_old_package(tmp_path: Path) -> None:
    old = legacy_nets(tmp_path)
    if old is None:
        pytest.skip(f"no git history with commit {COMMIT} here")
    try:
        for case, preset, kwargs in LIVE:
            old_net, new_net = build_case(old.build_net, preset, kwargs), build_case(build_net, preset, kwargs)
            assert names_and_shapes(new_net) == names_and_shapes(old_net), case
            assert [n for n, _ in new_net.named_parameters()] == [n for n, _ in old_net.named_parameters()], case
            for a, b in zip(old_net.state_dict().values(), new_net.state_dict().values()):
                assert torch.equal(a, b), case  # same seed, same init
            formula_weights(old_net)
            new_net.load_state_dict(old_net.state_dict(), strict=True)
            inputs = make_inputs(case, kwargs)
            with torch.no_grad():
                want, got = run_case(old_net, inputs), run_case(new_net, inputs)
            for key in want:
                assert torch.equal(got[key], want[key]), (case, key)
            assert build_net_from_config(old_net.config).config == new_net.config
    finally:
        for mod in [m for m in sys.modules if m.startswith(f"legacy_nets_{COMMIT}")]:
            del sys.modules[mod]


# --- writing the fixture from the old code --------------------------------------------------------


def write_fixture() -> None:
    import tempfile

    from safetensors.torch import save_file

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        old = legacy_nets(Path(tmp))
        assert old is not None, f"needs the git history with commit {COMMIT}"
        meta: dict[str, Any] = {"commit": COMMIT, "torch": torch.__version__, "cases": {}, "names_hash": {}}
        tensors: dict[str, torch.Tensor] = {}
        for case, preset, kwargs in CASES:
            net = build_case(old.build_net, preset, kwargs)
            entry = {"preset": preset, "config": net.config, "state_dict": names_and_shapes(net),
                     "parameters": [n for n, _ in net.named_parameters()], "init_sums": init_sums(net)}
            formula_weights(net)
            inputs = make_inputs(case, kwargs)
            with torch.no_grad():
                outputs = run_case(net, inputs)
            tensors.update({f"{case}/in/{k}": v.contiguous() for k, v in inputs.items()})
            tensors.update({f"{case}/out/{k}": v.contiguous() for k, v in outputs.items()})
            meta["cases"][case] = entry
        for preset, kwargs in NAME_ONLY:
            meta["names_hash"][preset] = names_hash(old.build_net(preset, **kwargs))
    DATA.mkdir(exist_ok=True)
    FIXTURE.with_suffix(".json").write_text(json.dumps(meta, separators=(",", ":")) + "\n")
    save_file(tensors, str(FIXTURE.with_suffix(".safetensors")))
    print(f"wrote {FIXTURE}.json and .safetensors")


if __name__ == "__main__":
    write_fixture()
