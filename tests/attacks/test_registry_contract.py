"""Every registry entry keeps the contract: it builds from its defaults, has its family's verb, cites its paper."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys

import pytest

from encoder_audit.attacks.registry import FAMILIES, attack_class, attack_names, create_attack

CITATION = re.compile(r"(19|20)\d\d|arXiv|NeurIPS|ICML|ICLR|CVPR|ECCV|ICCV|CCS|USENIX|S&P|AAAI", re.I)
IMPORTS_AUDIT = re.compile(r"^\s*(from\s+(\.\.+audit|encoder_audit\.audit)\b|import\s+encoder_audit\.audit\b)", re.M)
IMPORTS_ATTACKS = re.compile(
    r"^\s*(from\s+(\.\.attacks|encoder_audit\.attacks)\b|import\s+encoder_audit\.attacks\b)", re.M
)
ATTACKS = [(family, name) for family in FAMILIES for name in attack_names(family)]


def test_every_family_has_methods() -> None:
    for family in FAMILIES:
        assert attack_names(family), f"no {family} attack is registered"


@pytest.mark.parametrize(("family", "name"), ATTACKS)
def test_each_attack_builds_from_defaults_has_its_verb_and_cites_its_paper(family: str, name: str) -> None:
    verb = FAMILIES[family][0]
    cls = attack_class(family, name)
    attack = create_attack(family, name)
    assert callable(getattr(attack, verb, None)), f"{family}/{name} has no {verb}()"
    doc = " ".join(filter(None, [inspect.getdoc(cls), inspect.getdoc(inspect.getmodule(cls))]))
    assert CITATION.search(doc), f"{family}/{name}: the docstring cites no paper"
    for capability in ("needs_labels", "white_box"):
        assert isinstance(getattr(cls, capability, False), bool)


@pytest.mark.parametrize(("family", "name"), ATTACKS)
def test_unknown_options_are_refused(family: str, name: str) -> None:
    if getattr(attack_class(family, name), "config_class", None) is None:
        pytest.skip("takes no config")
    with pytest.raises(ValueError, match="unknown option"):
        create_attack(family, name, definitely_not_an_option=1)


def test_unknown_family_and_name_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown attack family"):
        create_attack("mind-reading", "x")
    with pytest.raises(KeyError, match="choose one of"):
        create_attack("stealing", "nope")


@pytest.mark.parametrize(
    "module",
    ["encoder_audit.registry", "encoder_audit.defenses", "encoder_audit.data", "encoder_audit.models"],
)
def test_other_registries_build_their_defaults(module: str) -> None:
    mod = importlib.import_module(module)
    from encoder_audit.registry import Registry

    regs = [v for v in vars(mod).values() if isinstance(v, Registry)]
    for reg in regs:
        assert reg.names(), f"{reg.kind} registry is empty"
        for name in reg.names():
            assert reg.describe()[name], f"{reg.kind} {name!r} has no description"


def test_importing_families_has_no_cycles_and_does_nothing() -> None:
    """Each package imports first on its own (an import cycle fails then), in a fresh interpreter.

    One interpreter keeps torch loaded and forgets every ``encoder_audit`` module before each import.
    """
    packages = sorted({p for _, p in FAMILIES.values()} | {"encoder_audit.defenses", "encoder_audit.audit"})
    code = (
        "import sys, importlib, torch\n"
        f"for pkg in {packages!r}:\n"
        "    for name in [m for m in sys.modules if m == 'encoder_audit' or m.startswith('encoder_audit.')]:\n"
        "        del sys.modules[name]\n"
        "    importlib.import_module(pkg)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_audits_live_above_attacks_and_defenses() -> None:
    """attacks/ and defenses/ never import the audit layer; defenses do not import attacks."""
    from pathlib import Path

    root = Path(importlib.import_module("encoder_audit").__file__).parent
    for layer in ("attacks", "defenses"):
        for path in (root / layer).rglob("*.py"):
            text = path.read_text()
            assert not IMPORTS_AUDIT.search(text), f"{path} imports the audit layer"
    for path in (root / "defenses").rglob("*.py"):
        assert not IMPORTS_ATTACKS.search(path.read_text()), f"{path} imports attacks"
