"""Finding a dataset's files: the search order shared by every file-backed loader.

Roots are tried in this order: the ``root`` argument (``--data-root``), ``$ENCODER_AUDIT_DATA``, then
``~/.cache/encoder-audit/data`` (torchvision's convention of a ``root`` plus an opt-in ``download``
flag; the style guide's B.3 "resolve the data root as --data-root, then a <PKG>_DATA env var, then
~/.cache/<pkg>/data"). Within each root a loader names the sub-folders it accepts (the official archive
folder such as ``cifar-10-batches-bin``, a short name such as ``cifar10/``, and torchvision's layout),
so a root prepared by torchvision works as it is. Nothing is fetched unless ``download=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DataNotFoundError

log = logging.getLogger(__name__)

__all__ = ["candidate_dirs", "find_dataset_dir", "search_roots"]


def search_roots(root: Path | str | None) -> list[Path]:
    """The data roots to search, in order: ``root``, ``$ENCODER_AUDIT_DATA``, ``~/.cache/encoder-audit/data``."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    env = os.environ.get("ENCODER_AUDIT_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(Path.home() / ".cache" / "encoder-audit" / "data")
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def candidate_dirs(root: Path | str | None, subdirs: Sequence[str]) -> list[Path]:
    """Every folder that may hold the files: each search root itself and ``root/sub`` for each ``sub``."""
    out: list[Path] = []
    for r in search_roots(root):
        for d in (r, *(r / s for s in subdirs)):
            if d not in out:
                out.append(d)
    return out


def find_dataset_dir(
    name: str,
    split: str,
    root: Path | str | None,
    *,
    subdirs: Sequence[str],
    required: Sequence[str] | Callable[[Path], bool],
    hint: str,
    download: Callable[[Path], None] | None = None,
    what: str | None = None,
) -> Path:
    """The first candidate folder that holds a dataset's files, downloading only when asked.

    Args:
        name: dataset name, for messages.
        split: split name, for messages.
        root: the ``root`` argument (may be None).
        subdirs: sub-folders of each root to try (relative paths).
        required: file names that must all exist in the folder, or a predicate on the folder.
        hint: what the files look like and where to get them, appended to the error message.
        download: called with the target root when nothing is found (only pass it if the user asked).
        what: the files looked for, for the message (default: ``required`` joined).

    Raises:
        DataNotFoundError: nothing found (the message lists every folder tried and ``hint``).
    """

    def ok(d: Path) -> bool:
        if callable(required):
            return d.is_dir() and required(d)
        return all((d / f).is_file() for f in required)

    dirs = candidate_dirs(root, subdirs)
    for d in dirs:
        if ok(d):
            log.debug("%s %s: using %s", name, split, d)
            return d
    if download is not None:
        target = search_roots(root)[0]
        log.info("%s: downloading into %s", name, target)
        target.mkdir(parents=True, exist_ok=True)
        try:
            download(target)
        except Exception as exc:  # network errors, bad archives: one clear line for the user
            raise DataNotFoundError(f"{name}: download into {target} failed: {exc}") from exc
        for d in candidate_dirs(target, subdirs):
            if ok(d):
                return d
    looked = "; ".join(f"{r} (and its sub-folders {', '.join(subdirs)})" for r in search_roots(root))
    if what is None:
        what = ", ".join(required) if not callable(required) else "the files"
    raise DataNotFoundError(
        f"{name} {split}: {what} not found; looked in {looked}. {hint} "
        "Point --data-root (or $ENCODER_AUDIT_DATA) at the folder holding them, or pass --download "
        "to fetch them with torchvision."
    )
