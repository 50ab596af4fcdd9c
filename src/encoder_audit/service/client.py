"""``RemoteEncoder``: the HTTP embedding API seen through the :class:`~encoder_audit.victim.Encoder` protocol.

Attacks take any ``Encoder``; handing them a ``RemoteEncoder`` instead of a ``QueryCounter`` around a
local model makes them query a real server, with the same counters (``.images``, ``.calls``,
``.usage()``) and the same :class:`~encoder_audit.errors.BudgetExhausted` when the budget runs out.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

import numpy as np
import torch

from ..errors import BudgetExhausted, UserError
from .wire import encode_npy, parse_npy

log = logging.getLogger(__name__)

NPY_MEDIA = "application/x-npy"


class RemoteError(UserError):
    """The server refused a request for a reason the client cannot fix by waiting (4xx/5xx)."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        self.status = status
        self.body = body
        detail = body.get("detail", body) if isinstance(body, dict) else body
        super().__init__(f"embedding service answered {status}: {detail}")


class RemoteEncoder:
    """A remote encoder behind ``encoder-audit serve``.

    ``embed`` splits a batch into requests of ``batch_size`` images, sends them as ``.npy`` and reads
    ``.npy`` back. A 429 for the rate limit is retried after the server's ``Retry-After``; a 429 for
    the budget raises :class:`BudgetExhausted`. Before sending anything, a call that cannot fit the
    remaining budget last reported by the server is refused whole, like
    :class:`~encoder_audit.victim.QueryCounter` does (another client of the same key may still spend
    the budget in between; then the images already delivered stay charged and counted).

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: the account's key.
        batch_size: images per request (capped at the server's ``max_batch``).
        wire_dtype: ``"float32"`` sends the exact [0, 1] floats (remote embeddings equal local ones);
            ``"uint8"`` quantizes to 8 bits, 4x fewer bytes.
        timeout: seconds per HTTP request.
        max_retries: rate-limit retries per request before giving up.
        max_wait: longest single ``Retry-After`` sleep honoured (seconds).
        output: ``"h"`` (served features) or ``"z"`` (the projection head's output, where the service
            exposes it: ``outputs`` lists what it serves).

    Attributes:
        images: images the server charged to this client (exact).
        calls: ``embed`` calls that were answered (as ``QueryCounter.calls``).
        requests: HTTP embedding requests answered.
        budget: the account's total budget (None = unlimited).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 256,
        wire_dtype: str = "float32",
        timeout: float = 120.0,
        max_retries: int = 20,
        max_wait: float = 60.0,
        output: str = "h",
    ) -> None:
        import httpx

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if wire_dtype not in {"float32", "uint8"}:
            raise ValueError(f"wire_dtype must be float32 or uint8, got {wire_dtype!r}")
        if output not in ("h", "z"):
            raise ValueError(f"output must be h or z, got {output!r}")
        self.url = url.rstrip("/")
        self.output = output
        self.wire_dtype = wire_dtype
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._lock = threading.Lock()
        self.images = 0
        self.calls = 0
        self.requests = 0
        self.rate_limited = 0
        info = self._get("/v1/info")
        self.info = info
        self.input_shape: tuple[int, int, int] = tuple(int(v) for v in info["input_shape"])  # type: ignore[assignment]
        self.outputs: list[str] = list(info.get("outputs", ["h"]))
        self.head_kind: str | None = info.get("head_kind")
        self.embedding_dim: int = self._output_dim(output)
        self.batch_size = min(batch_size, int(info.get("max_batch", batch_size)))
        usage = self._get("/v1/usage")
        self.budget: int | None = usage.get("budget")
        self._remaining: int | None = usage.get("remaining")
        self._used: int = int(usage.get("used", 0))

    # -- HTTP helpers ----------------------------------------------------------------------------

    def _get(self, path: str) -> dict[str, Any]:
        import httpx

        try:
            r = self._client.get(path)
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach the embedding service at {self.url}: {exc}") from None
        if r.status_code != 200:
            raise RemoteError(r.status_code, _json_or_text(r))
        return r.json()

    def _post_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.wire_dtype == "uint8":
            arr = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
        else:
            arr = x.to(torch.float32).clamp(0, 1).contiguous().numpy()
        payload = encode_npy(arr)
        n = int(x.shape[0])
        for attempt in range(self.max_retries + 1):
            r = self._client.post(
                "/v1/embeddings",
                content=payload,
                headers={"Content-Type": NPY_MEDIA, "Accept": NPY_MEDIA},
                params={"output": "z"} if self.output == "z" else None,
            )
            if r.status_code == 200:
                out = torch.from_numpy(parse_npy(r.content).astype(np.float32, copy=False))
                with self._lock:
                    self.images += n
                    self.requests += 1
                    self._note_usage(r.headers)
                return out
            body = _json_or_text(r)
            if r.status_code == 429 and isinstance(body, dict) and body.get("error") == "budget_exhausted":
                with self._lock:
                    self._remaining = int(body.get("remaining", 0))
                    self._used = int(body.get("used", self._used))
                raise BudgetExhausted(int(body["used"]), int(body["budget"]), int(body["requested"]))
            if r.status_code in (429, 503) and attempt < self.max_retries:
                wait = _retry_after(r, body)
                with self._lock:
                    self.rate_limited += 1
                log.debug("rate limited; retrying in %.3fs", wait)
                time.sleep(min(wait, self.max_wait))
                continue
            raise RemoteError(r.status_code, body)
        raise RemoteError(429, "rate limited: retries exhausted")  # pragma: no cover - loop always returns/raises

    def _note_usage(self, headers: Any) -> None:
        if "x-query-images-used" in headers:
            self._used = int(headers["x-query-images-used"])
        if "x-query-images-remaining" in headers:
            self._remaining = int(headers["x-query-images-remaining"])

    # -- Encoder protocol ------------------------------------------------------------------------

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a float batch in [0, 1] of shape (N, C, H, W) through the API.

        Raises:
            BudgetExhausted: the call does not fit the remaining budget (nothing sent), or the server
                refused a request for the budget.
            RemoteError: any other refusal (bad input, server error).
        """
        if images.ndim != 4 or not images.is_floating_point():
            shape = tuple(images.shape)
            raise ValueError(f"images must be a float (N, C, H, W) batch in [0, 1], got {images.dtype} {shape}")
        n = int(images.shape[0])
        with self._lock:
            if self._remaining is not None and n > self._remaining and self.budget is not None:
                raise BudgetExhausted(self._used, self.budget, n)
        x = images.detach().cpu()
        outs = [self._post_batch(x[i : i + self.batch_size]) for i in range(0, n, self.batch_size)]
        with self._lock:
            self.calls += 1
        if not outs:
            return torch.empty(0, self.embedding_dim)
        return torch.cat(outs)

    def with_output(self, output: str) -> RemoteEncoder:
        """This client asking for another output (``"z"``: the head's), sharing the connection and account.

        Its counters start at zero, so the caller sees the images each output cost; closing either
        closes the shared connection.

        Raises:
            UserError: the service does not serve that output.
        """
        dim = self._output_dim(output)
        other = copy.copy(self)
        other.output, other.embedding_dim = output, dim
        other._lock = threading.Lock()
        other.images = other.calls = other.requests = other.rate_limited = 0
        return other

    def _output_dim(self, output: str) -> int:
        """The dimension of ``output`` as ``/v1/info`` states it (``UserError`` if it is not served)."""
        if output not in self.outputs:
            raise UserError(f"the service at {self.url} does not serve output {output!r} (it serves {self.outputs})")
        return int(self.info.get("output_dims", {}).get(output, self.info["embedding_dim"]))

    @property
    def remaining(self) -> int | None:
        """Remaining images of the account as last reported by the server."""
        return self._remaining

    def usage(self) -> dict[str, int | None]:
        """``{"query_images", "api_calls", "budget"}``: the same keys as ``QueryCounter.usage()``."""
        return {"query_images": self.images, "api_calls": self.calls, "budget": self.budget}

    def server_usage(self) -> dict[str, Any]:
        """The account's usage as the server's ledger sees it (``GET /v1/usage``)."""
        return self._get("/v1/usage")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RemoteEncoder({self.url!r}, input_shape={self.input_shape}, dim={self.embedding_dim}, "
            f"images={self.images}, calls={self.calls}, budget={self.budget})"
        )


def _json_or_text(r: Any) -> dict[str, Any] | str:
    try:
        body = r.json()
        return body if isinstance(body, dict) else str(body)
    except ValueError:
        return r.text[:500]


def _retry_after(r: Any, body: dict[str, Any] | str) -> float:
    if isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
        return max(float(body["retry_after"]), 0.001)
    try:
        return max(float(r.headers.get("retry-after", "1")), 0.001)
    except ValueError:
        return 1.0
