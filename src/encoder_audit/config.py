"""Frozen dataclass configs: build from YAML dictionaries and ``--set key=value`` overrides.

Every method has one ``@dataclass(frozen=True)`` config carrying the paper's defaults and validating
itself in ``__post_init__`` (``ValueError`` on a bad value). This module fills such a config from
untrusted text without ever evaluating it: values are parsed with ``yaml.safe_load`` and coerced to
the field's annotated type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``["a=1", "b.c=x"]`` into a nested dictionary with YAML-typed values.

    Raises:
        ValueError: an item with no ``=``, an empty key part, a value that is not valid YAML, or a key
            that is both a value and a section (``a=1`` and ``a.b=2``).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        parts = [p.strip() for p in key.strip().split(".")]
        if not sep or not all(parts):
            raise ValueError(f"--set expects key=value, got {pair!r}")
        value = _safe_yaml(raw, f"--set {pair!r}") if raw.strip() else ""
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {pair!r}: {'.'.join(parts[: i + 1])} is already set to a value")
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"--set {pair!r}: {key.strip()} already holds options")
        node[parts[-1]] = value
    return out


def _safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` with its errors (syntax, python tags) turned into one-line ``ValueError``s."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ValueError(f"{where} is not valid YAML: {first}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; a missing file or non-mapping is a ``ValueError``."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file not found: {p}")
    data = _safe_yaml(p.read_text(), f"config file {p}") or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping, got {type(data).__name__}")
    return data


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a mapping of {annotation.__name__} options, got {value!r}")
        return build_config(annotation, value, where=name)
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, inner, f"{name}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{name}: {value!r} does not fit {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError(f"{name} needs {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, name) for v, a in zip(value, args))
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, name) for v in value]
        return tuple(seq) if origin is tuple else seq
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):  # YAML reads "--set flag=1" as the integer 1
            return bool(value)
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if isinstance(value, str) and "/" in value:  # "16/255"
            num, _, den = value.partition("/")
            try:
                return float(num) / float(den)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"{name} must be a number, got {value!r}") from None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    if annotation is Path:  # config_to_dict writes paths as strings
        if not isinstance(value, (str, Path)):
            raise ValueError(f"{name} must be a path, got {value!r}")
        return Path(value)
    return value


def build_config(cls: type[C], values: Mapping[str, Any] | None = None, *, where: str = "") -> C:
    """Instantiate the dataclass ``cls`` from a mapping, coercing types and rejecting unknown keys.

    Fields that are dataclasses themselves are built from nested mappings (``where`` is the dotted
    path used in error messages, e.g. ``stealing``).

    Raises:
        ValueError: unknown key, wrong type, or a value the config's own validation rejects.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(prefix + u for u in unknown)
        raise ValueError(f"unknown option(s) {names} for {cls.__name__}; valid: {', '.join(sorted(fields))}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}" if where else str(exc)) from None


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it; nested mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def override(config: C, values: Mapping[str, Any]) -> C:
    """Return a copy of ``config`` with ``values`` applied (validated again)."""
    merged = deep_merge(config_to_dict(config), values)
    return build_config(type(config), merged)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A YAML-friendly dictionary of a dataclass config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return config_to_dict(v)
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
