"""A restricted unpickler for the CIFAR "python version" batches: numpy arrays and plain containers only.

The CIFAR archives' python version is a set of pickled dicts (``data``: a uint8 numpy array,
``labels``: a list of ints, names as strings). A pickle can name any importable callable, so a
crafted file could run ``os.system`` the moment it is loaded. This project never unpickles arbitrary
objects: :func:`load_restricted_pickle` resolves only the handful of numpy globals that a pickled
``ndarray`` refers to (for Python 2's protocol 2, Python 3's protocols 2-4 and protocol 5's
``_frombuffer``) and refuses every other global with :class:`UnsafePickleError`, naming the file.
Everything else in such a file (dicts, lists, strings, numbers) needs no global at all.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFileError

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_restricted_pickle"]


class UnsafePickleError(CorruptFileError):
    """A pickle names a global outside the allow-list; it was not loaded."""


def _numpy_attr(module: str, name: str) -> Callable[..., Any]:
    # numpy 2 moved numpy.core to numpy._core; pickles written by either name resolve to the same object
    for mod in (module, module.replace("numpy.core", "numpy._core", 1), module.replace("numpy._core", "numpy.core", 1)):
        try:
            return getattr(importlib.import_module(mod), name)  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"{module}.{name}")


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes, limited to latin-1."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return obj.encode("latin1", errors)


ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_attr("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_attr("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_attr("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_attr("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_attr("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_attr("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"): lambda: _latin1_encode,
}
"""(module, name) -> resolver of the only globals a CIFAR python batch may name."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        resolver = ALLOWED_GLOBALS.get((module, name))
        if resolver is None:
            raise UnsafePickleError(
                f"{self._path}: refusing to unpickle {module}.{name}; only numpy arrays and plain "
                "containers are allowed in dataset files (is this really a CIFAR python batch?)"
            )
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._path}: refusing a pickle with persistent ids")


def load_restricted_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only numpy arrays, dtypes, scalars and built-in containers.

    Strings written by Python 2 are decoded as latin-1 (as torchvision does for CIFAR), so dict keys
    come back as ``str``.

    Raises:
        UnsafePickleError: the file names any other global (nothing from it was executed).
        CorruptFileError: the file is unreadable or not a valid pickle.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, path).load()  # type: ignore[arg-type]
    except UnsafePickleError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CorruptFileError(f"cannot read {path} as a numpy pickle: {exc}") from None
