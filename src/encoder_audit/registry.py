"""A tiny name -> factory registry shared by every family (datasets, encoders, attacks, defenses).

The CLI, YAML configs and the Python API all resolve names through a :class:`Registry`, so the list
of choices shown in ``--help`` is the list of things that exist.

Example:
    >>> widgets: Registry[int] = Registry("widget")
    >>> @widgets.register("one")
    ... def make_one() -> int:
    ...     return 1
    >>> widgets.create("one")
    1
    >>> widgets.names()
    ['one']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import UserError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class UnknownNameError(UserError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to factories that build a ``T``.

    Args:
        kind: what the registry holds, used in error messages ("dataset", "encoder", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}
        self._configs: dict[str, type] = {}

    def register(
        self, name: str, *, help: str = "", config: type | None = None, overwrite: bool = False
    ) -> Callable[[F], F]:
        """Decorator that registers ``factory`` under ``name`` (with its config dataclass, if any)."""

        def decorator(factory: F) -> F:
            if name in self._entries and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = factory
            doc = (factory.__doc__ or "").strip().splitlines()
            self._help[name] = help or (doc[0] if doc else "")
            if config is not None:
                self._configs[name] = config
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory for ``name`` or raise :class:`UnknownNameError` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build the entry registered as ``name``."""
        return self.get(name)(*args, **kwargs)

    def config_class(self, name: str) -> type | None:
        """The frozen config dataclass registered with ``name`` (None if it takes none)."""
        self.get(name)
        return self._configs.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description, for ``--help`` texts."""
        return {name: self._help[name] for name in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries
