"""The trainer stays in small pieces: no function in noisecraft/train is longer than 60 lines, and
train/, runs/ and sampling/ never ask which modality or kind of condition they hold."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import noisecraft

ROOT = Path(noisecraft.__file__).parent
MAX_LINES = 60


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_long_function_in_train():
    long = [f"{p.name}:{line} {name} ({n} lines)" for p in sorted((ROOT / "train").glob("*.py"))
            for name, line, n in _functions(p) if n > MAX_LINES]
    assert not long, long


# A branch on the kind of signal or condition: a comparison with a modality or conditioner name.
_BRANCH = re.compile(r"""(modality|\.kind|\.key|image_cond|\.image)\s*(==|!=|in)\s*['"(]|==\s*['"](image|audio|video|field|mask|lowres|text|class)['"]""")


def test_no_modality_or_condition_branches_in_train_runs_sampling():
    found = []
    for package in ("train", "runs", "sampling"):
        for p in sorted((ROOT / package).glob("*.py")):
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                if _BRANCH.search(line.split("#")[0]):
                    found.append(f"{package}/{p.name}:{i}: {line.strip()}")
    assert not found, found


def test_the_branch_pattern_catches_branches():
    for line in ('if ds.modality == "image":', "if c.kind == 'text':", 'if cfg.cond.image == "mask":',
                 'if key in ("class_labels",):'.replace("key", "c.key")):
        assert _BRANCH.search(line), line
