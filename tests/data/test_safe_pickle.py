"""The restricted unpickler admits numpy arrays and plain containers, nothing that could run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from encoder_audit.data.safe_pickle import UnsafePickleError, load_restricted_pickle
from encoder_audit.errors import CorruptFileError


def _dump(path: Path, obj: object, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_dict_round_trip(tmp_path: Path, protocol: int) -> None:
    obj = {
        "data": np.arange(24, dtype=np.uint8).reshape(2, 12),
        "labels": [1, 2],
        "name": "batch",
        "raw": b"\x00\xff",
        "f": np.float32(1.5),
    }
    back = load_restricted_pickle(_dump(tmp_path / "ok", obj, protocol))
    assert np.array_equal(back["data"], obj["data"]) and back["data"].dtype == np.uint8
    assert back["labels"] == [1, 2] and back["name"] == "batch" and back["raw"] == b"\x00\xff"
    assert back["f"] == np.float32(1.5)


def test_legacy_numpy_core_module_name(tmp_path: Path) -> None:
    """Pickles written by numpy 1.x (and by Python 2 for the CIFAR archives) name ``numpy.core.multiarray``."""
    raw = pickle.dumps({"data": np.arange(6, dtype=np.uint8)}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "legacy").write_bytes(raw)
    assert load_restricted_pickle(tmp_path / "legacy")["data"].tolist() == list(range(6))


class _Reduce:
    def __init__(self, fn: object, args: tuple) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return (self.fn, self.args)


def _evil_payloads(marker: Path) -> list[object]:
    import builtins
    import os
    import subprocess

    return [
        _Reduce(os.system, (f"touch {marker}",)),
        _Reduce(builtins.eval, (f"open({str(marker)!r}, 'w')",)),
        _Reduce(subprocess.Popen, (["touch", str(marker)],)),
        {"data": [_Reduce(builtins.exec, (f"open({str(marker)!r}, 'w')",))]},
        _Reduce(pickle.loads, (pickle.dumps(_Reduce(os.system, (f"touch {marker}",))),)),
    ]


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("protocol", [2, 5])
def test_code_execution_payloads_are_refused(tmp_path: Path, which: int, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = _dump(tmp_path / "data_batch_1", _evil_payloads(marker)[which], protocol)
    with pytest.raises(UnsafePickleError, match=r"data_batch_1: refusing to unpickle"):
        load_restricted_pickle(path)
    assert not marker.exists()


def test_refusal_is_a_corrupt_file_error_and_codecs_are_limited(tmp_path: Path) -> None:
    import codecs

    path = _dump(tmp_path / "x", _Reduce(codecs.encode, ("abc", "rot13")))
    with pytest.raises(CorruptFileError, match="rot13"):
        load_restricted_pickle(path)
    assert issubclass(UnsafePickleError, CorruptFileError)


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    raw = pickle.dumps({"data": np.zeros((4, 4), dtype=np.uint8)}, protocol=2)
    (tmp_path / "short").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="short"):
        load_restricted_pickle(tmp_path / "short")
    (tmp_path / "garbage").write_bytes(b"not a pickle at all")
    with pytest.raises(CorruptFileError, match="garbage"):
        load_restricted_pickle(tmp_path / "garbage")
