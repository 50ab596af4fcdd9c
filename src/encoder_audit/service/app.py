"""The FastAPI application: ``create_app(encoder, keys=..., ledger=...)``.

Endpoints:

* ``POST /v1/embeddings``: images in (see :mod:`~encoder_audit.service.wire`), float32 embeddings out.
  Nothing expensive runs before the request is paid for. Order of work:

  1. API key (401), token bucket (429 + ``Retry-After``), declared ``Content-Length`` (413);
  2. the body, counted while it arrives (413);
  3. headers only: image count, each image's size, the request's pixel total (400/413/415/422);
  4. a ledger **reservation** of the images (429 ``budget_exhausted`` with the remaining queries;
     nothing held or charged);
  5. decoding, once the request is among the ``max_decoded_requests`` allowed to hold decoded
     images, each image resized right after it is decoded, at most ``decode_concurrency`` images at
     once in the whole process (400/413/422: released);
  6. a wait for the model (one forward pass at a time), abandoned when the client disconnects
     (released) or after ``request_timeout`` (503 ``timeout``, released);
  7. inference and defenses (a failure: 500, released);
  8. the response but its last byte, written in 64 KiB pieces with flow control within
     ``write_timeout``; then the reservation is **committed** (charged, durable; on the event loop's
     thread, so nothing runs in between) and the last byte sent. A client that left first, or did
     not read in time, is not charged (released).

* ``GET /v1/info``: input shape, embedding dimension, limits, formats, defense names (key required).
* ``GET /v1/usage``: the caller's used, reserved, remaining and total queries (key required).
* ``GET|HEAD /healthz``: liveness; ``GET|HEAD /metrics``: Prometheus text.

The model is loaded once in the ``lifespan`` (FastAPI's pattern for a shared ML model); decoding,
the ledger, inference and encoding run in the thread pool, so the event loop keeps answering
``/healthz`` while a batch is embedded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..defenses.output import OutputDefense, parse_defense_spec
from ..victim import Encoder
from .auth import KeySpec, KeyStore
from .config import ServiceConfig
from .errors import ApiError
from .ledger import BaseLedger, Reservation, open_ledger
from .limits import BodySizeLimit, BodyTooLarge, declared_length, too_large_body
from .metrics import Metrics
from .ratelimit import RateLimiter, retry_after_header
from .wire import (
    MULTIPART_TYPE,
    Limits,
    Pending,
    encode_json,
    encode_npy,
    media_type,
    prepare_body,
    prepare_pngs,
    wants_npy,
)

log = logging.getLogger(__name__)

NPY_MEDIA = "application/x-npy"
EMBED_PATH = "/v1/embeddings"
KNOWN_PATHS = frozenset({EMBED_PATH, "/v1/info", "/v1/usage", "/healthz", "/metrics"})
WRITE_CHUNK = 64 * 1024
CLIENT_GONE = 499  # nginx's "client closed request": recorded in metrics, never seen by a client


def _gone() -> ApiError:
    return ApiError(CLIENT_GONE, "client_disconnected", "the client closed the connection; nothing was charged")


class ClientWatch:
    """Listens for ``http.disconnect`` while a request is in flight (its body already read).

    ``lost`` is set when the client goes away before the response was completely written; it is a
    :class:`threading.Event` so that decoding threads can poll it, with an asyncio twin to await.
    """

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.lost = threading.Event()
        self._lost_async = asyncio.Event()
        self._finished = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        try:
            while True:
                message = await self._receive()
                if message.get("type") == "http.disconnect":
                    break
        except Exception:  # a broken receive channel means the client is gone as well
            log.debug("receive failed while watching for a disconnect", exc_info=True)
        if not self._finished:
            self.lost.set()
            self._lost_async.set()

    async def wait_lost(self) -> None:
        await self._lost_async.wait()

    def finish(self) -> None:
        """The response is fully handed over: a disconnect from now on is the normal end."""
        self._finished = True

    def stop(self) -> None:
        self._finished = True
        if self._task is not None and not self._task.done():
            self._task.cancel()


class EmbeddingService:
    """What the endpoints share: the encoder, defenses, accounts, ledger, rate limiter and metrics.

    Args:
        target: an :class:`~encoder_audit.victim.Encoder` or a checkpoint path (loaded at start-up).
        keys: the accounts.
        ledger: a ledger, a path to its SQLite file or a ``postgresql://`` URL (opened at start-up).
        defenses: output defenses applied in order; per-user ones (``per_user = True``) receive the
            account name.
        config: limits.
        head: the projection head ``(module, kind)`` to serve ``z = g(h)`` at ``?output=z`` (None: only
            ``h``). Serving it is the owner's choice; an audit that can query it attacks both outputs.
    """

    def __init__(
        self,
        target: Encoder | str | Path,
        keys: KeyStore,
        ledger: BaseLedger | str | Path,
        defenses: Sequence[OutputDefense],
        config: ServiceConfig,
        head: tuple[Any, str] | None = None,
    ) -> None:
        self.target = target
        self.head = head
        self.z_encoder: Encoder | None = None
        self.keys = keys
        self._ledger_arg = ledger
        self.ledger: BaseLedger | None = ledger if isinstance(ledger, BaseLedger) else None
        self.defenses = list(defenses)
        self.config = config
        self.limits = Limits(config.max_batch, config.max_pixels, config.max_request_pixels)
        self.limiter = RateLimiter()
        self.metrics = Metrics()
        self.encoder: Encoder | None = None if isinstance(target, (str, Path)) else target
        self._decode_gate = threading.BoundedSemaphore(config.decode_concurrency)
        self._defense_lock = threading.Lock()  # stateful defenses (noise generators, B4B coverage)
        self._infer_lock: asyncio.Lock | None = None
        self._staging: asyncio.Semaphore | None = None
        self._owns_ledger = not isinstance(ledger, BaseLedger)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and the ledger; release reservations that dead requests left behind."""
        if self.config.inference_threads:
            torch.set_num_threads(self.config.inference_threads)
        if self.encoder is None:
            from ..victim import load_encoder

            self.encoder = load_encoder(self.target)  # type: ignore[arg-type]
            log.info("loaded %s", self.encoder)
        if self.head is not None and self.z_encoder is None:
            from ..attacks.membership.targets import head_encoder
            from ..victim import LocalEncoder, WhiteBox

            if not isinstance(self.encoder, WhiteBox):
                raise ValueError("serving the projection head needs a local encoder with its weights")
            self.z_encoder = LocalEncoder(head_encoder(self.encoder.net, self.head[0]))
        if self.ledger is None:
            self.ledger = open_ledger(self._ledger_arg, synchronous=self.config.sqlite_synchronous)
        for name in self.keys.specs:
            self.ledger.ensure(name)
        freed = self.ledger.release_expired()
        if freed:
            log.warning("released %d images held by expired reservations", freed)
        self._infer_lock = asyncio.Lock() if self.config.serialize_inference else None
        self._staging = asyncio.Semaphore(self.config.max_decoded_requests)
        log.info("serving %d account(s); ledger %s", len(self.keys), self.ledger.location)

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
        u = self.ledger.account(spec.name)
        remaining = None if spec.budget is None else max(spec.budget - u.used - u.reserved, 0)
        return {
            "account": spec.name,
            "used": u.used,
            "calls": u.calls,
            "reserved": u.reserved,
            "budget": spec.budget,
            "remaining": remaining,
        }

    # -- one embedding request -------------------------------------------------------------------

    async def _read(self, request: Request) -> Pending:
        """Read the body and check it from headers alone (count, sizes, pixel total)."""
        content_type = request.headers.get("content-type")
        try:
            if media_type(content_type) == MULTIPART_TYPE:
                blobs = await _multipart_images(request, self.limits, self.config.max_body_bytes)
                return await run_in_threadpool(prepare_pngs, blobs, self.limits)
            body = await request.body()
            return await run_in_threadpool(prepare_body, content_type, body, self.limits)
        except (ApiError, BodyTooLarge):
            raise
        except ClientDisconnect:
            raise _gone() from None
        except Exception as exc:  # malformed input must never become a 500
            raise ApiError(400, "bad_request", f"could not decode the request: {type(exc).__name__}: {exc}") from None

    def _decode(self, pending: Pending, watch: ClientWatch, deadline: float) -> torch.Tensor:
        """Decode (thread pool): each image resized to the model's input as soon as it is decoded."""
        assert self.encoder is not None

        def check() -> None:
            if watch.lost.is_set():
                raise _gone()
            if time.monotonic() > deadline:
                raise self._timeout()

        try:
            chunks = pending.decode(tuple(self.encoder.input_shape), gate=self._decode_gate, check=check)  # type: ignore[arg-type]
        except ApiError:
            raise
        except Exception as exc:  # malformed input must never become a 500
            raise ApiError(400, "bad_request", f"could not decode the request: {type(exc).__name__}: {exc}") from None
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    @property
    def outputs(self) -> list[str]:
        """The outputs a request may ask for: ``h`` (served features) and, with a head, ``z``."""
        return ["h", "z"] if self.head is not None else ["h"]

    def output_of(self, request: Request) -> str:
        """The ``?output=`` of a request (``h`` by default), checked before anything is charged."""
        output = request.query_params.get("output", "h")
        if output not in ("h", "z"):
            raise ApiError(400, "bad_request", f"output must be h or z, got {output!r}")
        if output not in self.outputs:
            raise ApiError(400, "output_unavailable", "this service serves only h (started without --expose-head)")
        return output

    def _forward(self, x: torch.Tensor, user: str, output: str = "h") -> torch.Tensor:
        assert self.encoder is not None
        model = self.z_encoder if output == "z" else self.encoder
        assert model is not None
        try:
            out = model.embed(x).float()
            with self._defense_lock:
                for defense in self.defenses:
                    if getattr(defense, "per_user", False):
                        out = defense(out, x, user=user)  # type: ignore[call-arg]
                    else:
                        out = defense(out, x)
            return out.float().contiguous()
        except Exception:
            log.exception("inference failed for %s (%d images); nothing was charged", user, int(x.shape[0]))
            raise ApiError(
                500, "inference_failed", f"inference failed; the {int(x.shape[0])} images were not charged"
            ) from None

    def _timeout(self) -> ApiError:
        t = self.config.request_timeout
        return ApiError(
            503,
            "timeout",
            f"the request could not be answered within {t:g}s (the model is busy); nothing was charged",
            headers={"Retry-After": retry_after_header(1.0)},
            retry_after=1.0,
        )

    @asynccontextmanager
    async def _slot(
        self, lock: asyncio.Lock | asyncio.Semaphore | None, watch: ClientWatch, deadline: float
    ) -> AsyncIterator[None]:
        """Wait for a lock or semaphore (FIFO), giving up when the client leaves or the deadline passes."""
        if lock is None:
            yield
            return
        acquire = asyncio.ensure_future(lock.acquire())
        lost = asyncio.ensure_future(watch.wait_lost())

        def holds() -> bool:  # cancel() is False only for a finished future
            return not acquire.cancel() and not acquire.cancelled() and acquire.exception() is None

        try:
            await asyncio.wait(
                {acquire, lost}, timeout=max(deadline - time.monotonic(), 0.0), return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            lost.cancel()
            if holds():
                lock.release()
            raise
        lost.cancel()
        if not holds():
            raise _gone() if watch.lost.is_set() else self._timeout()
        try:
            if watch.lost.is_set():
                raise _gone()
            yield
        finally:
            lock.release()

    async def release(self, reservation: Reservation, reason: str, *, blocking: bool = False) -> None:
        """Drop a reservation (not delivered); ``blocking`` runs it on the event loop (cancellation)."""
        assert self.ledger is not None
        try:
            if blocking:
                self.ledger.release(reservation)
            else:
                await run_in_threadpool(self.ledger.release, reservation)
        except Exception:  # the reservation then expires on its own
            log.exception("could not release reservation %s; it expires by itself", reservation.id)
        self.metrics.release(reservation.n, reason)

    async def sync(self, reservation: Reservation) -> None:
        """Make the commits so far durable (the ledger's fsync), off the event loop."""
        assert self.ledger is not None
        try:
            await run_in_threadpool(self.ledger.sync, reservation.account)
        except Exception:
            log.exception("could not make the ledger durable after committing %s", reservation.id)

    def commit(self, reservation: Reservation) -> None:
        """Charge a reservation whose response is about to be complete.

        Runs on the event loop's thread on purpose: nothing else can run between the commit and the
        hand-over of the response's last byte that follows it, so a crash can hardly fall between
        the two. The commit is not fsynced (it survives a crash of this process, not a power cut)
        so that the loop is blocked for well under a millisecond; :meth:`sync` makes it durable
        once the last byte is out.
        """
        assert self.ledger is not None
        try:
            self.ledger.commit(reservation, durable=False)
        except Exception:
            log.exception(
                "could not commit reservation %s (%d images delivered to %s): they stay uncharged",
                reservation.id, reservation.n, reservation.account,
            )  # fmt: skip
        self.metrics.served(reservation.n)

    async def embed_request(self, request: Request) -> Response:
        """The whole of ``POST /v1/embeddings`` up to the response object (which commits on delivery)."""
        spec = self.authenticate(request)
        self.rate_limit(spec)
        declared = declared_length(request.scope.get("headers", []))
        if declared is not None and declared > self.config.max_body_bytes:
            raise ApiError(413, **too_large_body(self.config.max_body_bytes))
        npy = wants_npy(request.headers.get("accept"))
        output = self.output_of(request)
        pending = await self._read(request)
        deadline = time.monotonic() + self.config.request_timeout
        n = pending.count
        assert self.ledger is not None
        result = await run_in_threadpool(self.ledger.reserve, spec.name, n, spec.budget, self.config.reservation_ttl)
        if not result.ok or result.reservation is None:
            remaining = result.remaining(spec.budget) or 0
            held = f", {result.reserved} held by requests in flight" if result.reserved else ""
            raise ApiError(
                429,
                "budget_exhausted",
                f"query budget exhausted: {result.used} of {spec.budget} images used{held}, request for {n} "
                f"refused ({remaining} remaining); nothing was charged",
                used=result.used,
                reserved=result.reserved,
                budget=spec.budget,
                requested=n,
                remaining=remaining,
            )
        reservation = result.reservation
        self.metrics.reserved(n)
        watch = ClientWatch(request.receive)
        watch.start()
        try:
            # At most ``max_decoded_requests`` requests hold decoded images (decoding, waiting for the
            # model, or in it), so queued requests keep only their bodies in memory.
            async with self._slot(self._staging, watch, deadline):
                x = await run_in_threadpool(self._decode, pending, watch, deadline)
                del pending
                async with self._slot(self._infer_lock, watch, deadline):
                    emb = await run_in_threadpool(self._forward, x, spec.name, output)
                del x
            if watch.lost.is_set():
                raise _gone()
            if time.monotonic() > deadline:
                raise self._timeout()
            left = result.remaining(spec.budget)
            used = result.used + n
            usage = {"charged": n, "used": used, "remaining": left, "budget": spec.budget}
            body = await run_in_threadpool(_encode, emb, usage, npy)
        except asyncio.CancelledError:
            watch.stop()
            await self.release(reservation, "shutdown", blocking=True)
            raise
        except ApiError as exc:
            watch.stop()
            reason = {CLIENT_GONE: "disconnect", 503: "timeout"}.get(exc.status, "error")
            await self.release(reservation, reason)
            raise
        except BaseException:
            watch.stop()
            await self.release(reservation, "error", blocking=True)
            raise
        headers = {"X-Query-Images-Charged": str(n), "X-Query-Images-Used": str(used)}
        if left is not None:
            headers["X-Query-Images-Remaining"] = str(left)
        media = NPY_MEDIA if npy else "application/json"
        return ChargedResponse(
            body, media_type=media, headers=headers, service=self, reservation=reservation, watch=watch
        )


def _encode(emb: torch.Tensor, usage: dict[str, Any], npy: bool) -> bytes:
    return encode_npy(emb) if npy else encode_json(emb, usage)


class ChargedResponse(Response):
    """A response whose reservation is committed just before its last byte is handed over.

    The body but its last byte is written in :data:`WRITE_CHUNK` pieces, each send waiting for the
    connection's buffer to drain (uvicorn's flow control), within the service's ``write_timeout``.
    Then the reservation is committed (durable) and the last byte sent: a client can only hold a
    complete response that was charged, and a client that disconnected before the commit (or did
    not read in time) is not charged (the reservation is released and the response left
    incomplete, so the connection closes).
    """

    def __init__(
        self,
        content: bytes,
        *,
        media_type: str,
        headers: Mapping[str, str],
        service: EmbeddingService,
        reservation: Reservation,
        watch: ClientWatch,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.service = service
        self.reservation = reservation
        self.watch = watch

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        svc, res, watch = self.service, self.reservation, self.watch
        body = memoryview(self.body)
        head, last = body[:-1], bytes(body[-1:])
        committed = False
        try:
            for _ in range(3):  # let a pending disconnect notification reach the watcher
                await asyncio.sleep(0)
            if watch.lost.is_set():
                await svc.release(res, "disconnect")
                return
            try:
                with anyio.fail_after(svc.config.write_timeout):
                    await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                    for i in range(0, len(head), WRITE_CHUNK):
                        piece = bytes(head[i : i + WRITE_CHUNK])
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                        if watch.lost.is_set():
                            break
                    # an empty piece waits until the connection's buffer has drained below its low mark
                    await send({"type": "http.response.body", "body": b"", "more_body": True})
            except TimeoutError:
                log.warning(
                    "%s did not read its response within %gs; not charged", res.account, svc.config.write_timeout
                )
                await svc.release(res, "write_timeout")
                return
            if watch.lost.is_set():
                await svc.release(res, "disconnect")
                return
            svc.commit(res)  # no await between the commit and the last byte
            committed = True
            watch.finish()
            await send({"type": "http.response.body", "body": last, "more_body": False})
        except BaseException:
            if not committed:
                await svc.release(res, "error", blocking=True)
            raise
        finally:
            watch.stop()
        await svc.sync(res)


class RequestMetrics:
    """Pure-ASGI middleware: counts every HTTP response by method, path and status.

    A request whose client left before any response started is counted with status 499.
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        path = scope.get("path", "")
        path = path if path in KNOWN_PATHS else "other"

        async def tracking_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        failed = True
        try:
            await self.app(scope, receive, tracking_send)
            failed = False
        finally:
            self.metrics.request(scope.get("method", "?"), path, status or (500 if failed else CLIENT_GONE))


def create_app(
    target: Encoder | str | Path,
    *,
    keys: KeyStore | str | Path,
    ledger: BaseLedger | str | Path,
    defenses: Sequence[OutputDefense | str] = (),
    config: ServiceConfig | None = None,
    head: tuple[Any, str] | None = None,
) -> FastAPI:
    """Build the embedding API around an encoder.

    Args:
        target: an :class:`~encoder_audit.victim.Encoder` (e.g. ``load_encoder(path)``), or a checkpoint
            path loaded when the app starts.
        keys: a :class:`KeyStore` or the path of a keys file.
        ledger: a ledger (:class:`~encoder_audit.service.ledger.BaseLedger`), the path of its SQLite
            file, or a ``postgresql://`` URL.
        defenses: output defenses or specs such as ``"noise:sigma=0.1"``, applied in order.
        config: limits (:class:`ServiceConfig` defaults otherwise).
        head: the encoder's projection head ``(module, kind)`` (e.g. ``load_head(path)``) to serve its
            output ``z = g(h)`` at ``POST /v1/embeddings?output=z``; None serves ``h`` only.

    Returns:
        A FastAPI app; run it with ``uvicorn.run(app, host="127.0.0.1", port=8000)``.
    """
    config = config or ServiceConfig()
    store = keys if isinstance(keys, KeyStore) else KeyStore.load(keys)
    chain = [parse_defense_spec(d) if isinstance(d, str) else d for d in defenses]
    svc = EmbeddingService(target, store, ledger, chain, config, head=head)

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

    @app.post(EMBED_PATH)
    async def embeddings(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            return await svc.embed_request(request)
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
            "max_request_pixels": config.max_request_pixels,
            "max_body_bytes": config.max_body_bytes,
            "request_timeout": config.request_timeout,
            "request_formats": [NPY_MEDIA, "image/png", "multipart/form-data", "application/json"],
            "response_formats": [NPY_MEDIA, "application/json"],
            "npy_dtypes": ["uint8", "float32"],
            "defenses": [getattr(d, "name", type(d).__name__) for d in svc.defenses],
            "outputs": svc.outputs,
            "output_dims": {
                "h": int(enc.embedding_dim),
                **({"z": int(svc.z_encoder.embedding_dim)} if svc.z_encoder is not None else {}),
            },
            "head_kind": svc.head[1] if svc.head is not None else None,
        }

    @app.get("/v1/usage")
    def usage(request: Request) -> dict[str, Any]:
        spec = svc.authenticate(request)
        return {**svc.usage(spec), "rate": spec.rate, "burst": spec.bucket_size if spec.rate else None}

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": svc.encoder is not None}

    @app.api_route("/metrics", methods=["GET", "HEAD"])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    app.add_middleware(
        BodySizeLimit,
        max_bytes=config.max_body_bytes,
        on_reject=lambda: svc.metrics.rejection("payload_too_large"),
        defer_paths=frozenset({EMBED_PATH}),
    )
    app.add_middleware(RequestMetrics, metrics=svc.metrics)
    return app


async def _multipart_images(request: Request, limits: Limits, max_part: int) -> list[bytes]:
    try:
        n = limits.max_batch
        form = await request.form(max_files=n + 1, max_fields=n + 16, max_part_size=max_part)
    except (BodyTooLarge, ClientDisconnect):
        raise
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
    try:
        for item in form.getlist("image"):
            if not isinstance(item, UploadFile):
                raise ApiError(
                    422, "bad_multipart", "form field 'image' must be a file upload (curl -F image=@file.png)"
                )
            blobs.append(await item.read())
    finally:
        await form.close()
    if not blobs and form:
        raise ApiError(422, "bad_multipart", f"no 'image' file fields; got fields {sorted(set(form.keys()))}")
    return blobs
