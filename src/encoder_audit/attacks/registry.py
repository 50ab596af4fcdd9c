"""One registration path for every attack family: ``@register_attack(family, name)`` and ``create_attack``.

Each method registers itself in its own file::

    @register_attack("stealing", "rda", config=RDAConfig)
    class RDAAttack(StealingAttack): ...

and every caller (CLI, YAML configs, Python) builds it the same way::

    attack = create_attack("stealing", "rda", epochs=1)

A family is named with the one verb its attacks share (:data:`FAMILIES`); importing a family's
package registers its methods, and :func:`create_attack` imports it on first use, so importing this
module does nothing else. Capabilities are class attributes, never checks of a class or name:

- ``needs_labels``: the method needs labelled data;
- ``uses_views``: it queries augmented views of each image;
- ``white_box``: it needs the victim's weights (a ``WhiteBox`` victim), not just ``embed``;
- ``query_cost(n)``: images charged to the victim for ``n`` attacker images (black-box methods).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from ..config import build_config
from ..registry import Registry

__all__ = ["FAMILIES", "attack_class", "attack_names", "create_attack", "register_attack", "registry"]

T = TypeVar("T")

# family -> (the verb its attacks implement, the package that registers them)
FAMILIES: dict[str, tuple[str, str]] = {
    "stealing": ("extract", "encoder_audit.attacks.stealing"),
    "membership": ("infer", "encoder_audit.attacks.membership"),
    "poisoning": ("poison", "encoder_audit.attacks.poisoning"),
    "backdoor": ("backdoor", "encoder_audit.attacks.poisoning"),
    "protection": ("protect", "encoder_audit.attacks.unlearnable"),
}

_REGISTRIES: dict[str, Registry[Any]] = {name: Registry(f"{name} attack") for name in FAMILIES}


def _family(family: str) -> Registry[Any]:
    if family not in _REGISTRIES:
        raise ValueError(f"unknown attack family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return _REGISTRIES[family]


def registry(family: str) -> Registry[Any]:
    """The registry of ``family`` with its methods loaded."""
    reg = _family(family)
    importlib.import_module(FAMILIES[family][1])
    return reg


def register_attack(
    family: str, name: str, *, config: type | None = None, help: str = ""
) -> Callable[[type[T]], type[T]]:
    """Class decorator: register an attack of ``family`` under ``name`` with its config dataclass.

    The class must implement its family's verb (``FAMILIES[family][0]``).

    Raises:
        ValueError: unknown family, a taken name, or a class without the family's verb.
    """
    reg = _family(family)
    verb = FAMILIES[family][0]

    def decorator(cls: type[T]) -> type[T]:
        if not callable(getattr(cls, verb, None)):
            raise ValueError(f"{cls.__name__} is registered as a {family} attack but has no {verb}() method")
        cls.name = name  # type: ignore[attr-defined]
        cls.family = family  # type: ignore[attr-defined]
        if config is not None:
            cls.config_class = config  # type: ignore[attr-defined]
        reg.register(name, config=config, help=help)(cls)
        return cls

    return decorator


def attack_names(family: str) -> list[str]:
    """Names registered in ``family``."""
    return registry(family).names()


def attack_class(family: str, name: str) -> Any:
    """The class registered as ``name`` in ``family``.

    Raises:
        UnknownNameError: no such attack.
    """
    return registry(family).get(name)


def create_attack(family: str, name: str, config: Any = None, **params: Any) -> Any:
    """Build attack ``name`` of ``family`` from its config dataclass or keyword values.

    Keyword values are coerced to the config's field types; unknown keys are refused.

    Raises:
        UnknownNameError: not a registered attack.
        ValueError: an unknown family, an invalid or unknown option, or both a config and keywords.
    """
    reg = registry(family)
    if config is not None and params:
        raise ValueError("pass either a config or keyword options, not both")
    cls = reg.config_class(name)
    if config is None and cls is not None:
        config = build_config(cls, params)
        return reg.create(name, config)
    if config is not None:
        return reg.create(name, config)
    return reg.create(name, **params)
