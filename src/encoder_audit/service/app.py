"""The FastAPI application: ``create_app(encoder, keys=..., ledger=...)``.

Endpoints:

* ``POST /v1/embeddings``: images in (see :mod:`~encoder_audit.service.wire`), float32 embeddings out.
  Order of checks: API key (401) -> token bucket (429 + ``Retry-After``) -> body size (413, while the
  bytes arrive) -> decoding and limits (400/413/415/422) -> atomic budget charge (429 with the
  remaining queries; nothing charged) -> inference and defenses (a failure refunds the charge, 500).
* ``GET /v1/info``: input shape, embedding dimension, limits, formats, defense names (key required).
* ``GET /v1/usage``: the caller's used, remaining and total queries (key required).
* ``GET /healthz``: liveness; ``GET /metrics``: Prometheus text.

The model is loaded once in the ``lifespan`` (FastAPI's pattern for a shared ML model) and the
inference endpoint hands the work (decode, charge, forward pass, encode) to the thread pool, so the
event loop keeps answering ``/healthz`` while a batch is embedded.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..defenses.output import OutputDefense, parse_defense_spec
from ..victim import Encoder, adapt_images
from .auth import KeySpec, KeyStore
from .config import ServiceConfig
from .errors import ApiError
from .ledger import Ledger
from .limits import BodySizeLimit
from .metrics import Metrics
from .ratelimit import RateLimiter, retry_after_header
from .wire import (
    MULTIPART_TYPE,
    Batch,
    Limits,
    decode_body,
    decode_pngs,
    encode_json,
    encode_npy,
    media_type,
    wants_npy,
)

log = logging.getLogger(__name__)

NPY_MEDIA = "application/x-npy"
KNOWN_PATHS = frozenset({"/v1/embeddings", "/v1/info", "/v1/usage", "/healthz", "/metrics"})


class EmbeddingService:
    """What the endpoints share: the encoder, defenses, accounts, ledger, rate limiter and metrics.

    Args:
        target: an :class:`~encoder_audit.victim.Encoder` or a checkpoint path (loaded at start-up).
        keys: the accounts.
        ledger: the usage ledger, or a path to its SQLite file (opened at start-up).
        defenses: output defenses applied in order; per-user ones (``per_user = True``) receive the
            account name.
        config: limits.
    """

    def __init__(
        self,
        target: Encoder | str | Path,
        keys: KeyStore,
        ledger: Ledger | str | Path,
        defenses: Sequence[OutputDefense],
        config: ServiceConfig,
    ) -> None:
        self.target = target
        self.keys = keys
        self._ledger_arg = ledger
        self.ledger: Ledger | None = ledger if isinstance(ledger, Ledger) else None
        self.defenses = list(defenses)
        self.config = config
        self.limits = Limits(config.max_batch, config.max_pixels)
        self.limiter = RateLimiter()
        self.metrics = Metrics()
        self.encoder: Encoder | None = None if isinstance(target, (str, Path)) else target
        self._infer_lock: threading.Lock | None = threading.Lock() if config.serialize_inference else None
        self._owns_ledger = not isinstance(ledger, Ledger)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.config.inference_threads:
            torch.set_num_threads(self.config.inference_threads)
        if self.encoder is None:
            from ..victim import load_encoder

            self.encoder = load_encoder(self.target)  # type: ignore[arg-type]
            log.info("loaded %s", self.encoder)
        if self.ledger is None:
            self.ledger = Ledger(self._ledger_arg, synchronous=self.config.sqlite_synchronous)  # type: ignore[arg-type]
        for name in self.keys.specs:
            self.ledger.ensure(name)
        log.info("serving %d account(s); ledger %s", len(self.keys), self.ledger.path)

    def stop(self) -> None:
        if self.ledger is not None and self._owns_ledger:
            self.ledger.close()
            self.ledger = None

    # -- checks ----------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> KeySpec:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else None
        presented = presented or request.headers.get("x-api-key")
        spec = self.keys.authenticate(presented)
        if spec is None:
            detail = "missing API key" if not presented else "unknown API key"
            raise ApiError(
                401,
                "unauthorized",
                f"{detail}: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return spec

    def rate_limit(self, spec: KeySpec) -> None:
        ok, wait = self.limiter.check(spec.name, spec.rate, spec.bucket_size)
        if not ok:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {spec.rate:g} requests/s exceeded; retry in {wait:.3f}s",
                headers={"Retry-After": retry_after_header(wait)},
                retry_after=round(wait, 4),
            )

    def usage(self, spec: KeySpec) -> dict[str, Any]:
        assert self.ledger is not None
        used, calls = self.ledger.usage(spec.name)
        remaining = None if spec.budget is None else max(spec.budget - used, 0)
        return {"account": spec.name, "used": used, "calls": calls, "budget": spec.budget, "remaining": remaining}

    # -- the work of one embedding request (runs in the thread pool) ----------------------------

    def _embed(self, batch: Batch, user: str) -> torch.Tensor:
        assert self.encoder is not None
        shape = self.encoder.input_shape
        if len(batch.chunks) == 1:
            x = batch.chunks[0]
        else:
            x = torch.cat([adapt_images(c, shape) for c in batch.chunks])
        with self._infer_lock or contextlib.nullcontext():
            return self._forward(x, user)

    def _forward(self, x: torch.Tensor, user: str) -> torch.Tensor:
        assert self.encoder is not None
        out = self.encoder.embed(x).float()
        for defense in self.defenses:  # stateful defenses (noise generators, B4B coverage) stay serialized
            out = defense(out, x, user=user) if getattr(defense, "per_user", False) else defense(out, x)  # type: ignore[call-arg]
        return out.float().contiguous()

    def serve(self, spec: KeySpec, decode: Callable[[], Batch], npy: bool) -> Response:
        try:
            batch = decode()
        except ApiError:
            raise
        except Exception as exc:  # malformed input must never become a 500
            raise ApiError(400, "bad_request", f"could not decode the request: {type(exc).__name__}: {exc}") from None
        n = batch.count
        assert self.ledger is not None
        charge = self.ledger.charge(spec.name, n, spec.budget)
        if not charge.ok:
            remaining = max((spec.budget or 0) - charge.used, 0)
            raise ApiError(
                429,
                "budget_exhausted",
                f"query budget exhausted: {charge.used} of {spec.budget} images used, request for {n} refused "
                f"({remaining} remaining); nothing was charged",
                used=charge.used,
                budget=spec.budget,
                requested=n,
                remaining=remaining,
            )
        try:
            emb = self._embed(batch, spec.name)
            left = None if spec.budget is None else spec.budget - charge.used
            usage = {"charged": n, "used": charge.used, "remaining": left, "budget": spec.budget}
            body = encode_npy(emb.numpy()) if npy else encode_json(emb, usage)
        except Exception:
            self.ledger.refund(spec.name, n)
            self.metrics.refund(n)
            log.exception("inference failed for %s (%d images); the charge was refunded", spec.name, n)
            raise ApiError(500, "inference_failed", f"inference failed; the {n} images were not charged") from None
        self.metrics.served(n)
        headers = {"X-Query-Images-Charged": str(n), "X-Query-Images-Used": str(charge.used)}
        if left is not None:
            headers["X-Query-Images-Remaining"] = str(left)
        return Response(body, media_type=NPY_MEDIA if npy else "application/json", headers=headers)


class RequestMetrics:
    """Pure-ASGI middleware: counts every HTTP response by method, path and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        path = scope.get("path", "")
        path = path if path in KNOWN_PATHS else "other"

        async def tracking_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.metrics.request(scope.get("method", "?"), path, status)


def create_app(
    target: Encoder | str | Path,
    *,
    keys: KeyStore | str | Path,
    ledger: Ledger | str | Path,
    defenses: Sequence[OutputDefense | str] = (),
    config: ServiceConfig | None = None,
) -> FastAPI:
    """Build the embedding API around an encoder.

    Args:
        target: an :class:`~encoder_audit.victim.Encoder` (e.g. ``load_encoder(path)``), or a checkpoint
            path loaded when the app starts.
        keys: a :class:`KeyStore` or the path of a keys file.
        ledger: a :class:`Ledger` or the path of its SQLite file.
        defenses: output defenses or specs such as ``"noise:sigma=0.1"``, applied in order.
        config: limits (:class:`ServiceConfig` defaults otherwise).

    Returns:
        A FastAPI app; run it with ``uvicorn.run(app, host="127.0.0.1", port=8000)``.
    """
    config = config or ServiceConfig()
    store = keys if isinstance(keys, KeyStore) else KeyStore.load(keys)
    chain = [parse_defense_spec(d) if isinstance(d, str) else d for d in defenses]
    svc = EmbeddingService(target, store, ledger, chain, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(
        title="encoder-audit embedding service",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = svc

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status < 500:
            svc.metrics.rejection(exc.error)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reasons = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        reason = reasons.get(exc.status_code, "http_error")
        svc.metrics.rejection(reason)
        return JSONResponse(
            {"error": reason, "detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal_error", "detail": "internal server error"}, status_code=500)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            spec = svc.authenticate(request)
            svc.rate_limit(spec)
            content_type = request.headers.get("content-type")
            npy = wants_npy(request.headers.get("accept"))
            if media_type(content_type) == MULTIPART_TYPE:
                blobs = await _multipart_images(request, svc.limits, config.max_body_bytes)
                return await run_in_threadpool(svc.serve, spec, lambda: decode_pngs(blobs, svc.limits), npy)
            body = await request.body()
            return await run_in_threadpool(svc.serve, spec, lambda: decode_body(content_type, body, svc.limits), npy)
        finally:
            svc.metrics.observe_latency(time.perf_counter() - t0)

    @app.get("/v1/info")
    def info(request: Request) -> dict[str, Any]:
        svc.authenticate(request)
        enc = svc.encoder
        assert enc is not None
        return {
            "input_shape": list(enc.input_shape),
            "embedding_dim": int(enc.embedding_dim),
            "max_batch": config.max_batch,
            "max_pixels": config.max_pixels,
            "max_body_bytes": config.max_body_bytes,
            "request_formats": [NPY_MEDIA, "image/png", "multipart/form-data", "application/json"],
            "response_formats": [NPY_MEDIA, "application/json"],
            "npy_dtypes": ["uint8", "float32"],
            "defenses": [getattr(d, "name", type(d).__name__) for d in svc.defenses],
        }

    @app.get("/v1/usage")
    def usage(request: Request) -> dict[str, Any]:
        spec = svc.authenticate(request)
        return {**svc.usage(spec), "rate": spec.rate, "burst": spec.bucket_size if spec.rate else None}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": svc.encoder is not None}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    app.add_middleware(
        BodySizeLimit, max_bytes=config.max_body_bytes, on_reject=lambda: svc.metrics.rejection("payload_too_large")
    )
    app.add_middleware(RequestMetrics, metrics=svc.metrics)
    return app


async def _multipart_images(request: Request, limits: Limits, max_part: int) -> list[bytes]:
    try:
        n = limits.max_batch
        form = await request.form(max_files=n + 1, max_fields=n + 16, max_part_size=max_part)
    except StarletteHTTPException as exc:  # raised by Starlette's multipart parser
        detail = str(exc.detail)
        if "Too many" in detail:
            raise ApiError(
                413, "batch_too_large", f"multipart body: {detail}; the limit is {n} images", limit=n
            ) from None
        if "maximum size" in detail:
            raise ApiError(413, "payload_too_large", f"multipart body: {detail}", limit=max_part) from None
        raise ApiError(400, "bad_multipart", f"could not parse the multipart body: {detail}") from None
    except Exception as exc:
        raise ApiError(400, "bad_multipart", f"could not parse the multipart body: {exc}") from None
    blobs: list[bytes] = []
    for item in form.getlist("image"):
        if not isinstance(item, UploadFile):
            raise ApiError(422, "bad_multipart", "form field 'image' must be a file upload (curl -F image=@file.png)")
        blobs.append(await item.read())
    await form.close()
    if not blobs and form:
        raise ApiError(422, "bad_multipart", f"no 'image' file fields; got fields {sorted(set(form.keys()))}")
    return blobs
