"""Encoder-as-a-service: an HTTP embedding API with keys, exact query budgets and server-side defenses.

The server (:func:`create_app`, ``encoder-audit serve``) needs the ``serve`` extra (FastAPI, uvicorn);
the client (:class:`RemoteEncoder`) needs only httpx. Names are imported lazily, so importing this
package never pulls in a web framework.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ServiceConfig": ".config",
    "ApiError": ".errors",
    "KeyStore": ".auth",
    "KeySpec": ".auth",
    "generate_key": ".auth",
    "hash_key": ".auth",
    "Ledger": ".ledger",
    "BaseLedger": ".ledger",
    "SQLiteLedger": ".ledger",
    "PostgresLedger": ".ledger_postgres",
    "open_ledger": ".ledger",
    "TokenBucket": ".ratelimit",
    "RateLimiter": ".ratelimit",
    "create_app": ".app",
    "RemoteEncoder": ".client",
    "serve_in_background": ".testing",
    "ServerHandle": ".testing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
