"""Entry point of ``encoder-audit``: builds the command tree and turns user errors into exit code 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from .. import __version__
from ..errors import UserError
from .common import HelpFormatter, setup_logging

# Every module of this package that defines ``register(subparsers)`` is a command; it sets a
# ``run(args) -> int`` as the parser's ``func``. ORDER fixes where the core commands appear in --help.
ORDER = [
    "audit",
    "pretrain",
    "evaluate",
    "convert",
    "steal",
    "verify",
    "membership",
    "poison",
    "protect",
    "serve",
    "keys",
    "run",
    "report",
    "info",
]

log = logging.getLogger("encoder_audit")


def command_modules() -> list[ModuleType]:
    """The command modules, in help order."""
    names = [m.name for m in pkgutil.iter_modules(importlib.import_module(__package__).__path__)]
    names = [n for n in names if n not in {"main", "common"} and not n.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    modules = [importlib.import_module(f"{__package__}.{n}") for n in names]
    return [m for m in modules if hasattr(m, "register")]


def extra_registries() -> list[tuple[str, dict[str, str]]]:
    """Registries that command modules expose through ``registries()``, for ``encoder-audit info``."""
    out: list[tuple[str, dict[str, str]]] = []
    for module in command_modules():
        if hasattr(module, "registries"):
            out += module.registries()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="encoder-audit",
        description="Red-team pre-trained self-supervised image encoders: stealing, membership inference, "
        "poisoning and data protection audits.",
        formatter_class=HelpFormatter,
        epilog="Run `encoder-audit COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"encoder-audit {args.command}: error: {exc}\n")
        if getattr(args, "verbose", 0) > 1:
            raise
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
