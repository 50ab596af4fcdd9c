"""The one error type the service raises on purpose: an HTTP status plus a JSON body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal the client caused (4xx) or a server fault (5xx), rendered as JSON.

    Args:
        status: HTTP status code.
        error: a short machine-readable reason (``"budget_exhausted"``, ``"payload_too_large"``, ...),
            also the ``reason`` label of the rejection counter in ``/metrics``.
        detail: one human-readable sentence saying what was wrong.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
        extra: more JSON fields (``remaining``, ``used``, ...).
    """

    def __init__(
        self, status: int, error: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}
