"""What image and audio folders share: finding the files, classes from sub-folders, strict/skip.

* `list_files(root, extensions)`: files under `root` with one of `extensions` (case-insensitive),
  recursive, hidden files and folders (names starting with ".") ignored, sorted by their path
  relative to `root` (POSIX form, plain string order), so a folder always gives the same order.
* `folder_classes(root, files, labels, what)`: with `labels=True` and every file inside a
  first-level sub-folder, the sorted sub-folder names are the classes; files directly in `root`
  make the data unlabeled; a mix raises `DataError`. Classes come from the files found, before
  decoding, so a skipped file never shifts class indices.
* `Skips`: the on_error policy: "strict" raises `DataError` naming the first unreadable file,
  "skip" collects it (`files`) and warns once at the end.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from .dataset import DataError

__all__ = ["ON_ERROR", "list_files", "folder_files", "folder_classes", "Skips"]

ON_ERROR = ("strict", "skip")


def list_files(root: str | os.PathLike, extensions: Sequence[str]) -> list[Path]:
    """Files under `root` whose extension is in `extensions`, sorted by relative POSIX path."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in extensions:
                found.append(Path(dirpath, f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def folder_files(root: Path, extensions: Sequence[str], kind: str, noun: str) -> list[Path]:
    """The `extensions` files under the folder `root`; DataError if it is not a folder or holds none.

    kind / noun name the data in messages, e.g. "image" / "images" or "audio" / "audio files"."""
    ext = ", ".join(extensions)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"{kind} folder {str(root)!r} {what}; expected a folder of {noun} ({ext})")
    files = list_files(root, extensions)
    if not files:
        raise DataError(f"no {noun} found in {str(root)!r} (searched recursively for {ext})")
    return files


def folder_classes(root: Path, files: Sequence[Path], labels: bool, what: str) -> list[str]:
    """Class names from the first-level sub-folders holding `files` ([] = unlabeled)."""
    if not labels:
        return []
    parts = [f.relative_to(root).parts for f in files]
    at_root = [f for f, p in zip(files, parts) if len(p) == 1]
    if len(at_root) == len(files):
        return []
    if at_root:
        raise DataError(
            f"{str(root)!r} has {what} both in class sub-folders and directly in the folder (e.g. {str(at_root[0])!r}); "
            "move them into a sub-folder per class, or pass labels=False"
        )
    return sorted({p[0] for p in parts})


class Skips:
    """Unreadable files under the on_error policy ("strict" or "skip") of a folder of `what` ("image")."""

    def __init__(self, root: Path, on_error: str, what: str) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be 'strict' (raise on the first unreadable file) or 'skip', got {on_error!r}")
        self.root, self.on_error, self.what = root, on_error, what
        self.files: list[str] = []
        self.reasons: list[str] = []

    def fail(self, path: Path, why: str, cause: BaseException | None = None) -> None:
        """Raise (strict) or remember (skip) that `path` cannot be read because of `why`."""
        if self.on_error == "strict":
            raise DataError(f"cannot read {self.what} {str(path)!r}: {why} (pass on_error='skip' to leave such files out)") from cause
        self.files.append(str(path))
        self.reasons.append(why)

    def finish(self, kept: int) -> None:
        """DataError when nothing was readable; one warning naming the first skipped file otherwise."""
        if not kept:
            raise DataError(f"no readable {self.what}s in {str(self.root)!r}: all {len(self.files)} files were skipped; "
                            f"first: {self.files[0]!r} ({self.reasons[0]})")
        if self.files:
            warnings.warn(f"skipped {len(self.files)} unreadable {self.what}(s) in {str(self.root)!r}; first: "
                          f"{self.files[0]!r} ({self.reasons[0]})", stacklevel=3)
