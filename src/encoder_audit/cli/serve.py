"""``encoder-audit serve``: the embedding API (FastAPI on uvicorn) with keys, budgets and defenses."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

from ..errors import UserError
from .common import VICTIM_SPEC_HELP, HelpFormatter, add_common, add_victim_arguments, emit, victim_options

log = logging.getLogger(__name__)

EPILOG = """examples:
  encoder-audit keys create alice --file keys.yaml --budget 10000 --rate 20      # prints the key once
  encoder-audit serve runs/x/encoder.safetensors --keys keys.yaml --port 8000
  encoder-audit serve runs/x/encoder.safetensors --keys keys.yaml --defense noise:sigma=0.1 --defense round:decimals=3
  encoder-audit serve runs/x/encoder.safetensors --keys keys.yaml --defense b4b

  curl -s localhost:8000/healthz
  curl -s -H "Authorization: Bearer $KEY" -F image=@shoe.png localhost:8000/v1/embeddings
  curl -s -H "Authorization: Bearer $KEY" localhost:8000/v1/usage

  # replicas behind a load balancer share one PostgreSQL ledger:
  encoder-audit serve runs/x/encoder.safetensors --keys keys.yaml --ledger postgresql://audit@db:5432/audit

Usage counts live in the ledger (default: an SQLite file next to the keys file, KEYS.ledger.sqlite)
and survive restarts. Images are reserved before any decoding and charged once their response was
written; a request that fails, times out or whose client leaves is not charged. See docs/SERVICE.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from ..defenses import DEFENSES

    p = sub.add_parser(
        "serve",
        help="serve an encoder over HTTP with API keys, query budgets and defenses",
        description="Serve a checkpoint as an embedding API: POST /v1/embeddings, GET /v1/info, GET /v1/usage, "
        "GET /healthz, GET /metrics. Every image is one query, charged atomically to the caller's budget.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", metavar="VICTIM", help=VICTIM_SPEC_HELP)
    add_victim_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless --allow-remote)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--keys", type=Path, required=True, help="keys file (see `encoder-audit keys create`)")
    p.add_argument(
        "--ledger",
        default=None,
        metavar="PATH|URL",
        help="usage ledger: an SQLite file or a postgresql:// URL shared by replicas (default: KEYS.ledger.sqlite)",
    )
    p.add_argument(
        "--defense",
        action="append",
        default=[],
        metavar="SPEC",
        help="output defense, repeatable, applied in order: " + ", ".join(DEFENSES.names()) + " (e.g. noise:sigma=0.1)",
    )
    p.add_argument("--max-batch", type=int, default=1024, help="images per request")
    p.add_argument("--max-pixels", type=int, default=1024 * 1024, help="height x width of one image")
    p.add_argument(
        "--max-request-pixels",
        type=int,
        default=64 * 1024 * 1024,
        help="sum of height x width over the images of one request",
    )
    p.add_argument("--max-body-mb", type=float, default=64.0, help="request body cap in MiB")
    p.add_argument("--decode-concurrency", type=int, default=2, help="images decoded at once in the whole server")
    p.add_argument(
        "--request-timeout",
        type=float,
        default=60.0,
        help="seconds a request may wait for its answer to start (then 503, not charged)",
    )
    p.add_argument(
        "--write-timeout",
        type=float,
        default=30.0,
        help="seconds a client may take to read its answer (else not charged)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads for inference (0 = torch default)")
    p.add_argument(
        "--durability",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite synchronous mode: FULL fsyncs every charge; NORMAL survives crashes, not power loss",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    p.add_argument(
        "--expose-head",
        action="store_true",
        help="also serve the projection head's output z = g(h) at POST /v1/embeddings?output=z (the head "
        "saved beside the checkpoint: head.safetensors); a membership audit of the URL then attacks both",
    )
    add_common(p, data=False)
    p.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..defenses import parse_defense_spec
    from ..service.app import create_app
    from ..service.auth import KeyStore
    from ..service.config import ServiceConfig
    from ..service.ledger import is_postgres_url, redact_url
    from ..victim import load_encoder

    if not _is_loopback(args.host) and not args.allow_remote:
        raise UserError(f"refusing to bind {args.host}: the service binds loopback only unless --allow-remote")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in [0, 65535], got {args.port}")
    try:
        config = ServiceConfig(
            max_batch=args.max_batch,
            max_pixels=args.max_pixels,
            max_request_pixels=args.max_request_pixels,
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            decode_concurrency=args.decode_concurrency,
            request_timeout=args.request_timeout,
            write_timeout=args.write_timeout,
            sqlite_synchronous=args.durability,
            inference_threads=args.threads,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    keys = KeyStore.load(args.keys)
    if not len(keys):
        raise UserError(
            f"{args.keys} holds no accounts; add one with `encoder-audit keys create NAME --file {args.keys}`"
        )
    defenses = [parse_defense_spec(s) for s in args.defense]
    device = "cpu" if args.device == "auto" else args.device
    encoder = load_encoder(args.checkpoint, device=device, **victim_options(args))
    head = None
    if args.expose_head:
        from ..attacks.membership.targets import load_head
        from ..victim import WhiteBox

        head = load_head(args.checkpoint) if Path(args.checkpoint).exists() else None
        if head is None:
            raise UserError(f"--expose-head: no projection head saved beside {args.checkpoint} (head.safetensors)")
        if not isinstance(encoder, WhiteBox):
            raise UserError("--expose-head needs a checkpoint the service can run with its head")
    ledger = args.ledger or str(args.keys.with_name(args.keys.stem + ".ledger.sqlite"))
    if is_postgres_url(ledger):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise UserError("a postgresql:// ledger needs the psycopg driver: pip install 'psycopg[binary]'") from None
    app = create_app(encoder, keys=keys, ledger=ledger, defenses=defenses, config=config, head=head)
    location = redact_url(ledger) if is_postgres_url(ledger) else ledger
    emit(
        f"serving {args.checkpoint} ({encoder.input_shape} -> {encoder.embedding_dim}-d) "
        f"on http://{args.host}:{args.port} "
        f"for {len(keys)} account(s); defenses: {', '.join(args.defense) or 'none'}; ledger: {location}"
        + (f"; head output z ({head[1]}) at ?output=z" if head else "")
    )
    level = "warning" if args.quiet else ("info" if args.verbose else "warning")
    # On SIGTERM, requests in flight may finish (and be charged) within their time-outs; past that
    # they are cancelled and released.
    grace = int(config.request_timeout + config.write_timeout) + 1
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=level,
        access_log=bool(args.verbose),
        timeout_graceful_shutdown=grace,
    )
    return 0


def registries() -> list[tuple[str, dict[str, str]]]:
    """Output defenses, listed by ``encoder-audit info`` (``serve --defense NAME:KEY=VALUE``)."""
    from ..defenses import DEFENSES

    return [("output defenses (serve --defense)", DEFENSES.describe())]
