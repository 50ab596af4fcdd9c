"""Run the embedding service on 127.0.0.1 in a background thread, for audits, tests and benchmarks.

>>> from encoder_audit.service.testing import serve_in_background          # doctest: +SKIP
>>> with serve_in_background("runs/x/encoder.safetensors", budget=5000) as (url, key):  # doctest: +SKIP
...     victim = RemoteEncoder(url, key)
...     stolen = attack.extract(victim, ...)
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..defenses.output import OutputDefense
from ..victim import Encoder
from .auth import KeySpec, KeyStore, generate_key, hash_key
from .config import ServiceConfig
from .ledger import BaseLedger, is_postgres_url

log = logging.getLogger(__name__)


class ServerHandle(tuple):
    """``(url, api_key)`` (unpacks as a pair), plus ``.keys`` (account -> key), ``.app``, ``.ledger_path``
    (the SQLite file; None for a PostgreSQL ledger) and ``.server`` (the ``uvicorn.Server``)."""

    url: str
    api_key: str | None
    keys: dict[str, str]
    app: Any
    ledger_path: Path | None
    server: Any

    def __new__(
        cls, url: str, api_key: str | None, *, keys: dict[str, str], app: Any, ledger_path: Path | None, server: Any
    ) -> ServerHandle:
        self = super().__new__(cls, (url, api_key))
        self.url, self.api_key, self.keys = url, api_key, keys
        self.app, self.ledger_path, self.server = app, ledger_path, server
        return self


def _keystore(
    keys: KeyStore | str | Path | Mapping[str, Any] | None,
    budget: int | None,
    rate: float | None,
    burst: float | None,
) -> tuple[KeyStore, dict[str, str]]:
    if keys is None:
        key = generate_key()
        return KeyStore([KeySpec("default", hash_key(key), budget, rate, burst)]), {"default": key}
    if isinstance(keys, KeyStore):
        return keys, {}
    if isinstance(keys, (str, Path)):
        return KeyStore.load(keys), {}
    specs, plain = [], {}
    for name, entry in keys.items():
        entry = {"key": entry} if isinstance(entry, str) or entry is None else dict(entry)
        key = entry.pop("key", None) or generate_key()
        specs.append(KeySpec(name, hash_key(key), entry.get("budget"), entry.get("rate"), entry.get("burst")))
        plain[name] = key
    return KeyStore(specs), plain


@contextlib.contextmanager
def serve_in_background(
    checkpoint_or_encoder: Encoder | str | Path,
    *,
    keys: KeyStore | str | Path | Mapping[str, Any] | None = None,
    budget: int | None = None,
    rate: float | None = None,
    burst: float | None = None,
    defenses: Sequence[OutputDefense | str] = (),
    port: int = 0,
    host: str = "127.0.0.1",
    ledger: BaseLedger | str | Path | None = None,
    config: ServiceConfig | None = None,
    log_level: str = "warning",
    head: tuple[Any, str] | None = None,
) -> Iterator[ServerHandle]:
    """Serve an encoder over real HTTP (uvicorn) until the ``with`` block ends.

    Args:
        checkpoint_or_encoder: a checkpoint path or any :class:`~encoder_audit.victim.Encoder`.
        keys: None (one fresh account ``"default"`` with ``budget``/``rate``/``burst``), a keys file or
            :class:`KeyStore` (plaintext keys unknown: ``api_key`` is None), or a mapping
            ``{name: key | {"key"?, "budget"?, "rate"?, "burst"?}}`` (missing keys are generated).
        budget, rate, burst: the default account's limits when ``keys`` is None.
        defenses: output defenses or specs (``"noise:sigma=0.1"``, ``"b4b"``).
        port: TCP port (0 = a free one chosen by the OS).
        host: bind address (loopback by default; the service is not meant to face the Internet).
        ledger: the usage ledger, its SQLite path or a ``postgresql://`` URL (default: a temporary
            SQLite file, deleted afterwards); pass the same location to a second server to continue
            the counts (restart) or to share them (replicas).
        config: limits.
        head: a projection head ``(module, kind)`` to serve at ``?output=z`` (``serve --expose-head``).

    Yields:
        A :class:`ServerHandle` that unpacks as ``(url, api_key)``; ``api_key`` is the first account's key.
    """
    import uvicorn

    from .app import create_app

    store, plain = _keystore(keys, budget, rate, burst)
    with contextlib.ExitStack() as stack:
        if ledger is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="encoder-audit-ledger-"))
            ledger = Path(tmp) / "ledger.sqlite"
        ledger_path: Path | None
        if isinstance(ledger, BaseLedger):
            ledger_path = getattr(ledger, "path", None)
        else:
            ledger_path = None if is_postgres_url(ledger) else Path(ledger)
        app = create_app(checkpoint_or_encoder, keys=store, ledger=ledger, defenses=defenses, config=config, head=head)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        stack.callback(sock.close)
        bound_port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=bound_port, log_level=log_level, access_log=False, lifespan="on")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="encoder-audit-serve")
        thread.daemon = True
        thread.start()

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=30)

        stack.callback(stop)
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the embedding service failed to start (see the log)")
            thread.join(timeout=0.02)
        url = f"http://{host}:{bound_port}"
        first = next(iter(plain.values()), None)
        log.info("serving on %s", url)
        yield ServerHandle(url, first, keys=plain, app=app, ledger_path=ledger_path, server=server)
