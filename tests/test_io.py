"""Atomic writes: all or nothing, no temporary files left, ordinary permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from encoder_audit.io import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_and_replaces(tmp_path: Path) -> None:
    p = tmp_path / "deep" / "dir" / "f.bin"
    assert atomic_write_bytes(p, b"one") == p
    assert p.read_bytes() == b"one"
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.bin"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "results.json"
    atomic_write_text(p, "old")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, half_then_crash)
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["results.json"]

    with pytest.raises(KeyboardInterrupt):  # even an interrupt cleans up
        atomic_write(p, lambda tmp: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert [x.name for x in tmp_path.iterdir()] == ["results.json"]


def test_json_handles_numpy_paths_sets_and_rejects_others(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    atomic_write_json(
        p, {"a": np.float32(0.5), "b": np.arange(3), "c": Path("x/y"), "d": {2}, "e": (1, 2), "f": np.int64(4)}
    )
    assert json.loads(p.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": "x/y", "d": [2], "e": [1, 2], "f": 4}
    assert p.read_text().endswith("\n")
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
    assert [x.name for x in tmp_path.iterdir()] == ["r.json"]


def test_result_has_ordinary_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "shared.txt", "x")
        reference = tmp_path / "plain.txt"
        reference.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode) == 0o644
