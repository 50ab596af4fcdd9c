"""A pure-ASGI middleware that caps request bodies by counting the bytes as they arrive.

Starlette (pinned here at 1.x) has no body cap of its own for ordinary requests. This middleware
refuses early on a ``Content-Length`` above the cap, and, because that header may lie or be absent
(chunked transfer), also counts the bytes it hands to the application: one byte too many and the
request is answered 413 before the body is buffered any further.

Paths in ``defer_paths`` skip the early ``Content-Length`` refusal: their endpoint authenticates the
caller first and then calls :func:`check_declared_length` itself, so a request without a valid key is
answered 401 whatever its declared size (the streamed count still applies to them).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised inside ``receive`` when the body passes the cap."""


def declared_length(headers: Any) -> int | None:
    """The request's ``Content-Length`` as an int (None if absent; -1 if malformed)."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


def too_large_body(max_bytes: int) -> dict[str, Any]:
    """The JSON body of a 413 for a body above ``max_bytes``."""
    return {"error": "payload_too_large", "detail": f"request body exceeds {max_bytes} bytes", "limit": max_bytes}


class BodySizeLimit:
    """Answer 413 to any HTTP request whose body exceeds ``max_bytes``.

    Args:
        app: the wrapped ASGI application.
        max_bytes: the cap.
        on_reject: called once per refused request (for metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_reject: Callable[[], None] | None = None,
        defer_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject
        self.defer_paths = defer_paths

    async def _reject(self, send: Send) -> None:
        if self.on_reject is not None:
            self.on_reject()
        body = json.dumps(too_large_body(self.max_bytes)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope.get("headers", []))
        if declared is not None and declared > self.max_bytes and scope.get("path") not in self.defer_paths:
            await self._reject(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)
