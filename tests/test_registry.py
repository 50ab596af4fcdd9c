"""The name -> factory registry behind every family (datasets, encoders, views, defenses, ...)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from encoder_audit.errors import UserError
from encoder_audit.registry import Registry, UnknownNameError


@dataclass(frozen=True)
class _Cfg:
    n: int = 1


def _registry() -> Registry[str]:
    reg: Registry[str] = Registry("widget")

    @reg.register("beta", help="the second one")
    def beta(x: str = "b") -> str:
        return f"beta:{x}"

    @reg.register("alpha", config=_Cfg)
    def alpha(config: _Cfg | None = None) -> str:
        """First line of the docstring.

        More text that is not the help.
        """
        return f"alpha:{config}"

    return reg


def test_create_names_describe() -> None:
    reg = _registry()
    assert reg.names() == ["alpha", "beta"]
    assert reg.create("beta") == "beta:b" and reg.create("beta", "z") == "beta:z"
    assert reg.create("beta", x="y") == "beta:y"
    assert reg.describe() == {"alpha": "First line of the docstring.", "beta": "the second one"}
    assert "alpha" in reg and "gamma" not in reg
    assert reg.get("alpha") is reg._entries["alpha"]


def test_config_class() -> None:
    reg = _registry()
    assert reg.config_class("alpha") is _Cfg
    assert reg.config_class("beta") is None
    with pytest.raises(UnknownNameError):
        reg.config_class("gamma")


def test_unknown_name_lists_choices() -> None:
    reg = _registry()
    with pytest.raises(UnknownNameError) as info:
        reg.create("gamma")
    err = info.value
    assert isinstance(err, UserError) and isinstance(err, KeyError)  # CLI exit 2; dict-style lookups still work
    assert str(err) == "unknown widget 'gamma'; choose one of: alpha, beta"  # not quoted like a KeyError
    empty: Registry[int] = Registry("thing")
    with pytest.raises(UnknownNameError, match=r"\(none\)"):
        empty.get("x")


def test_duplicate_registration_is_refused_unless_overwritten() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("beta")(lambda: "again")
    assert reg.create("beta") == "beta:b"
    reg.register("beta", help="new", overwrite=True)(lambda: "again")
    assert reg.create("beta") == "again" and reg.describe()["beta"] == "new"


def test_decorator_returns_the_factory() -> None:
    reg: Registry[int] = Registry("n")

    def make() -> int:
        return 7

    assert reg.register("seven")(make) is make


def test_project_registries_are_populated() -> None:
    from encoder_audit.augment import VIEWS
    from encoder_audit.defenses import DEFENSES
    from encoder_audit.models import ENCODERS

    assert {"simclr", "moco-v1", "moco-v2", "none"} <= set(VIEWS.names())
    assert {"noise", "round", "topk"} <= set(DEFENSES.names())
    assert {"cnn-small", "resnet18", "vgg11"} <= set(ENCODERS.names())
    for reg in (VIEWS, DEFENSES, ENCODERS):
        assert all(reg.describe().values()), "every entry has a one-line description"
