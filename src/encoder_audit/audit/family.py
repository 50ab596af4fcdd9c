"""How an audit family plugs into the main job: a stage that returns a result, a builder that makes a section.

A family module (``audit/stealing.py``, ...) defines

- a result dataclass of raw numbers (per attack, per budget; JSON round-trips with
  :func:`result_to_json` / :func:`result_from_json`),
- ``run(ctx, config) -> result``: does the work against ``ctx.victim()`` and the splits in ``ctx.data``,
- a pure section builder ``build(result) -> Section`` in ``audit/sections/<family>.py``,

and registers them with :func:`register_family`. The runner stores each stage's *result* (not its
text), so a report can be rebuilt, and a section builder improved, without running an attack again.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..data.base import ImageDataset
from ..report.model import Figure, Section
from ..victim import Encoder
from .plan import AuditData

if typing.TYPE_CHECKING:
    from .config import AuditConfig

__all__ = [
    "Family",
    "StageContext",
    "families",
    "get_family",
    "register_family",
    "result_from_json",
    "result_to_json",
]

R = TypeVar("R")
C = TypeVar("C")


@dataclass
class StageContext:
    """What a stage receives.

    Attributes:
        config: the whole resolved audit config (a family reads its own part).
        data: the disjoint splits of this seed.
        out_dir: this stage's directory for figures, scores and manifests (created).
        run_dir: the run directory; figure paths in a section are relative to it.
        seed: this stage's seed (derived from the run seed and the stage name).
        run_seed: the audit seed this stage belongs to.
        device: the resolved torch device (``cpu`` / ``cuda`` / ``cuda:N``).
        progress: progress bars (None: automatic, False: off).
        victim_label: how the victim is named in the report.
        victim_trained_here: the victim is the embedded default trained by this audit (its training
            recipe and members are known exactly).
    """

    config: AuditConfig
    data: AuditData
    out_dir: Path
    run_dir: Path
    seed: int
    run_seed: int
    device: str
    progress: bool | None
    victim_label: str
    victim_trained_here: bool
    _victim: Callable[[], Encoder]
    _eval_sets: Callable[[], dict[str, tuple[ImageDataset, ImageDataset]]]
    notes: list[str] = field(default_factory=list)

    def victim(self) -> Encoder:
        """The encoder under audit (loaded once per audit)."""
        return self._victim()

    def eval_sets(self) -> dict[str, tuple[ImageDataset, ImageDataset]]:
        """``{name: (train, test)}`` labelled downstream datasets, the first one the headline's."""
        return self._eval_sets()

    def figure(self, path: Path, caption: str) -> Figure:
        """A :class:`Figure` for a file written under the run directory, its path relative to it."""
        return Figure(relative_to_run(path, self.run_dir), caption)


def relative_to_run(path: Path | str, run_dir: Path | str) -> str:
    """``path`` relative to ``run_dir`` (both resolved, so a relative runs directory works from any cwd).

    Raises:
        ValueError: ``path`` is not inside ``run_dir``.
    """
    p, r = Path(path).resolve(), Path(run_dir).resolve()
    try:
        return p.relative_to(r).as_posix()
    except ValueError:
        raise ValueError(f"figure {p} is not inside the run directory {r}") from None


@dataclass(frozen=True)
class Family(Generic[C, R]):
    """One audit family as the runner sees it.

    Attributes:
        key: the section key (``stealing``, ...).
        title: the section heading.
        config_attr: the attribute of :class:`AuditConfig` holding this family's config.
        result_type: the result dataclass.
        run: ``run(ctx, config) -> result``.
        build: the pure section builder ``build(result) -> Section``.
        skip: ``skip(ctx) -> reason or None``: why the stage cannot run here (e.g. unknown members).
    """

    key: str
    title: str
    config_attr: str
    result_type: type[R]
    run: Callable[[StageContext, C], R]
    build: Callable[[R], Section]
    skip: Callable[[StageContext], str | None] | None = None


_FAMILIES: dict[str, Family[Any, Any]] = {}


def register_family(family: Family[Any, Any]) -> Family[Any, Any]:
    """Make ``family`` a stage of the audit.

    Raises:
        ValueError: the key is taken.
    """
    if family.key in _FAMILIES and _FAMILIES[family.key] is not family:
        raise ValueError(f"audit family {family.key!r} is already registered")
    _FAMILIES[family.key] = family
    return family


def _load_builtin() -> None:
    import importlib

    for name in ("stealing", "membership", "poisoning", "protection"):  # each registers itself
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:  # a family module not written yet
            if exc.name != f"{__package__}.{name}":
                raise


def families() -> dict[str, Family[Any, Any]]:
    """Every registered family, in report order."""
    _load_builtin()
    from .config import SECTIONS

    return {k: _FAMILIES[k] for k in SECTIONS if k in _FAMILIES} | {
        k: f for k, f in _FAMILIES.items() if k not in SECTIONS
    }


def get_family(key: str) -> Family[Any, Any]:
    """The family of section ``key``.

    Raises:
        KeyError: no such family.
    """
    fams = families()
    if key not in fams:
        raise KeyError(f"no audit family {key!r}; registered: {', '.join(fams)}")
    return fams[key]


# --------------------------------------------------------------------------------------------- results as JSON


def result_to_json(obj: Any) -> Any:
    """A result dataclass (nested dataclasses, lists, tuples, dicts, numbers) as plain JSON values.

    Non-finite floats become None.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: result_to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): result_to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [result_to_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return result_to_json(obj.item())
    return obj


def result_from_json(cls: Any, data: Any) -> Any:
    """Rebuild a value of type ``cls`` (a result dataclass or a type hint) from :func:`result_to_json` output.

    Raises:
        ValueError: the data does not fit the type (a stage written by another version).
    """
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if cls is Any or cls is None:
        return data
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return result_from_json(arg, data)
            except (TypeError, ValueError, KeyError):
                continue
        raise ValueError(f"{data!r} does not fit {cls}")
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name in data:
                kwargs[f.name] = result_from_json(hints[f.name], data[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}: field {f.name!r} is missing")
        return cls(**kwargs)
    if origin in (list, tuple):
        if not isinstance(data, (list, tuple)):
            raise ValueError(f"expected a list, got {type(data).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            return tuple(result_from_json(a, v) for a, v in zip(args, data))
        inner = args[0] if args else Any
        seq = [result_from_json(inner, v) for v in data]
        return tuple(seq) if origin is tuple else seq
    if origin in (dict, Mapping):
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        inner = args[1] if len(args) == 2 else Any
        return {k: result_from_json(inner, v) for k, v in data.items()}
    if cls is float:
        return float("nan") if data is None else float(data)
    if cls is int:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ValueError(f"expected an integer, got {data!r}")
        return int(data)
    if cls is str:
        if not isinstance(data, str):
            raise ValueError(f"expected text, got {data!r}")
        return data
    if cls is bool:
        return bool(data)
    return data
