"""``encoder-audit keys``: create API keys (printed once, stored hashed) and list accounts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from .common import HelpFormatter, emit

EPILOG = """examples:
  encoder-audit keys create alice --file keys.yaml --budget 10000 --rate 20 --burst 40
  encoder-audit keys create bob --file keys.yaml              # unlimited budget, no rate limit
  encoder-audit keys create alice --file keys.yaml --replace  # issue a new key (usage counts stay)
  encoder-audit keys list --file keys.yaml --ledger keys.ledger.sqlite

The key is printed once on stdout; the file keeps only its SHA-256 digest.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys",
        help="create API keys for `serve` and list accounts",
        description="Manage the keys file of `encoder-audit serve`.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    c = ksub.add_parser(
        "create",
        help="create a key for an account (printed once)",
        description="Generate an API key with `secrets`, add its SHA-256 digest, budget and rate limit to the "
        "keys file (created if missing, written atomically) and print the key once.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    c.add_argument("name", help="account name (letters, digits, - _ .)")
    c.add_argument("--file", type=Path, default=Path("keys.yaml"), help="keys file")
    c.add_argument("--budget", type=int, default=None, help="total images the account may embed (default unlimited)")
    c.add_argument("--rate", type=float, default=None, help="requests per second (default: no rate limit)")
    c.add_argument("--burst", type=float, default=None, help="token-bucket size (default 2 x rate)")
    c.add_argument("--replace", action="store_true", help="replace the key of an existing account")
    c.set_defaults(func=run_create)
    ls = ksub.add_parser("list", help="list accounts (never keys)", formatter_class=HelpFormatter)
    ls.add_argument("--file", type=Path, default=Path("keys.yaml"), help="keys file")
    ls.add_argument(
        "--ledger",
        default=None,
        metavar="PATH|URL",
        help="show usage from this ledger, an SQLite file or a postgresql:// URL (default KEYS.ledger.sqlite)",
    )
    ls.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_create(args: argparse.Namespace) -> int:
    from ..service.auth import add_key

    if args.budget is not None and args.budget < 0:
        raise UserError(f"--budget must be >= 0, got {args.budget}")
    key = add_key(args.file, args.name, budget=args.budget, rate=args.rate, burst=args.burst, replace=args.replace)
    emit(key)
    budget = "unlimited" if args.budget is None else f"{args.budget} images"
    rate = "no rate limit" if args.rate is None else f"{args.rate:g} requests/s"
    sys.stderr.write(
        f"account {args.name!r} written to {args.file} ({budget}, {rate}). This key is shown once: store it now.\n"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    from ..service.auth import KeyStore
    from ..service.ledger import is_postgres_url, open_ledger

    store = KeyStore.load(args.file)
    where = args.ledger or str(args.file.with_name(args.file.stem + ".ledger.sqlite"))
    usage: dict[str, dict[str, int]] = {}
    if is_postgres_url(where) or Path(where).exists():
        try:
            ledger = open_ledger(where)
        except ImportError as exc:
            raise UserError(str(exc)) from None
        try:
            usage = ledger.all_usage()
        finally:
            ledger.close()
    emit(f"{'account':<20} {'budget':>12} {'used':>12} {'reserved':>9} {'remaining':>12} {'rate/s':>8}")
    for name, spec in store.specs.items():
        used = usage.get(name, {}).get("used", 0)
        reserved = usage.get(name, {}).get("reserved", 0)
        budget = "unlimited" if spec.budget is None else str(spec.budget)
        remaining = "-" if spec.budget is None else str(max(spec.budget - used - reserved, 0))
        rate = "-" if spec.rate is None else f"{spec.rate:g}"
        emit(f"{name:<20} {budget:>12} {used:>12} {reserved:>9} {remaining:>12} {rate:>8}")
    return 0
