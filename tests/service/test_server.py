"""Against a REAL uvicorn server on 127.0.0.1 and a free port (``serve_in_background``), plus one
``encoder-audit serve`` subprocess killed with SIGKILL and restarted."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import torch
from service_helpers import CORPUS, NPY, GatedEncoder, LinearEncoder, npy_bytes

from encoder_audit.errors import BudgetExhausted
from encoder_audit.service.client import RemoteEncoder, RemoteError
from encoder_audit.service.config import ServiceConfig
from encoder_audit.service.ledger import SQLiteLedger
from encoder_audit.service.testing import serve_in_background
from encoder_audit.victim import QueryCounter

CORPUS_LIMITS = ServiceConfig(max_batch=8, max_pixels=64 * 64, max_body_bytes=256 * 1024)


def test_16_concurrent_clients_get_exactly_the_budget():
    budget = 300
    received: list[int] = []
    clients: list[RemoteEncoder] = []
    lock = threading.Lock()
    with serve_in_background(LinearEncoder(), budget=budget) as (url, key):

        def client(seed: int) -> None:
            rng = random.Random(seed)
            remote = RemoteEncoder(url, key, batch_size=64, wire_dtype="uint8")
            with lock:
                clients.append(remote)
            while True:
                n = rng.randint(1, 12)
                if remote.remaining is not None:
                    n = min(n, remote.remaining)
                if n == 0:
                    return
                try:
                    out = remote.embed(torch.rand(n, 1, 8, 8))
                except BudgetExhausted as exc:
                    assert exc.used <= budget and exc.budget == budget
                    continue
                assert out.shape == (n, 16)
                with lock:
                    received.append(n)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(clients) == 16
        assert sum(received) == budget
        assert sum(c.images for c in clients) == budget
        usage = clients[0].server_usage()
        assert (usage["used"], usage["remaining"], usage["calls"]) == (budget, 0, len(received))
        assert f"encoder_audit_images_total {budget}" in httpx.get(url + "/metrics").text


def test_restart_keeps_counts(tmp_path):
    key = "ea_restart_test_key"
    keys = {"alice": {"key": key, "budget": 50}}
    ledger = tmp_path / "ledger.sqlite"
    x = torch.rand(30, 1, 8, 8)
    with serve_in_background(LinearEncoder(), keys=keys, ledger=ledger) as (url, k):
        assert k == key
        remote = RemoteEncoder(url, key, batch_size=8)
        remote.embed(x)
        assert remote.usage() == {"query_images": 30, "api_calls": 1, "budget": 50}
    with serve_in_background(LinearEncoder(), keys=keys, ledger=ledger) as (url2, _):
        remote = RemoteEncoder(url2, key, batch_size=8)
        assert remote.remaining == 20 and remote.server_usage()["used"] == 30
        with pytest.raises(BudgetExhausted) as info:
            remote.embed(torch.rand(21, 1, 8, 8))
        assert (info.value.used, info.value.budget, info.value.requested) == (30, 50, 21)
        assert remote.embed(torch.rand(20, 1, 8, 8)).shape == (20, 16)
        with pytest.raises(BudgetExhausted):
            remote.embed(torch.rand(1, 1, 8, 8))
        assert remote.server_usage()["used"] == 50


def test_malformed_corpus_gets_4xx_and_server_keeps_serving():
    with serve_in_background(LinearEncoder(), budget=1000, config=CORPUS_LIMITS) as (url, key):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for name, (ctype, body, status, error) in CORPUS.items():
                r = http.post("/v1/embeddings", content=body, headers={"Content-Type": ctype})
                assert r.status_code == status, (name, r.text)
                assert r.json()["error"] == error, name
                assert "embeddings" not in r.json()
            big = http.post("/v1/embeddings", content=b"0" * (256 * 1024 + 1), headers={"Content-Type": NPY})
            assert big.status_code == 413
            # broken HTTP at the socket level: garbage, and a body shorter than its Content-Length
            port = int(url.rsplit(":", 1)[1])
            for raw in (
                b"\x16\x03\x01garbage\r\n\r\n",
                b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 999\r\n\r\nabc",
            ):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(raw)
                    s.shutdown(socket.SHUT_WR)
                    s.recv(1024)
            assert http.get("/healthz").json()["status"] == "ok"
            ok = http.post(
                "/v1/embeddings",
                content=npy_bytes(np.zeros((2, 1, 8, 8), np.uint8)),
                headers={"Content-Type": NPY, "Accept": NPY},
            )
            assert ok.status_code == 200
            assert http.get("/v1/usage").json()["used"] == 2  # no malformed request was charged
            assert 'status="500"' not in http.get("/metrics").text


def test_wrong_key_gets_401_and_never_an_embedding():
    with serve_in_background(LinearEncoder(), budget=100) as (url, key):
        body = npy_bytes(np.zeros((3, 1, 8, 8), np.uint8))
        for headers in ({}, {"Authorization": "Bearer ea_wrong"}, {"X-API-Key": key[:-1]}):
            r = httpx.post(
                url + "/v1/embeddings", content=body, headers={**headers, "Content-Type": NPY, "Accept": NPY}
            )
            assert r.status_code == 401
            assert r.headers["content-type"] == "application/json" and "embeddings" not in r.text
        with pytest.raises(RemoteError) as info:
            RemoteEncoder(url, "ea_wrong")
        assert info.value.status == 401
        assert RemoteEncoder(url, key).server_usage()["used"] == 0


def test_remote_encoder_matches_local_and_counts_like_query_counter():
    enc = LinearEncoder()
    x = torch.rand(20, 1, 8, 8)
    with serve_in_background(enc, budget=100) as (url, key), RemoteEncoder(url, key, batch_size=7) as remote:
        assert remote.input_shape == (1, 8, 8) and remote.embedding_dim == 16
        out = remote.embed(x)
        local = QueryCounter(LinearEncoder(), budget=100)
        assert torch.allclose(out, local.embed(x), atol=1e-5)
        assert remote.usage() == local.usage() == {"query_images": 20, "api_calls": 1, "budget": 100}
        assert remote.requests == 3 and remote.images == 20
        q = RemoteEncoder(url, key, wire_dtype="uint8").embed(x)
        assert torch.allclose(q, out, atol=0.05) and not torch.equal(q, out)  # 8-bit inputs, close answers
        with pytest.raises(ValueError):
            remote.embed(torch.zeros(2, 8, 8))


def test_client_honours_retry_after():
    with serve_in_background(LinearEncoder(), rate=8.0, burst=1) as (url, key):
        remote = RemoteEncoder(url, key, batch_size=1)
        t0 = time.perf_counter()
        out = remote.embed(torch.rand(5, 1, 8, 8))
        elapsed = time.perf_counter() - t0
        assert out.shape == (5, 16) and remote.images == 5 and remote.requests == 5
        assert remote.rate_limited >= 1
        assert elapsed >= 4 / 8 - 0.05  # 5 requests at 8/s with a bucket of 1 take at least 0.5 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


@pytest.mark.slow  # two interpreter start-ups (torch import) per run
def test_cli_server_killed_with_sigkill_keeps_counts(tmp_path, tiny_encoder):
    from encoder_audit.models import save_encoder
    from encoder_audit.service.auth import add_key

    ckpt = save_encoder(tmp_path / "enc.safetensors", tiny_encoder)
    key = add_key(tmp_path / "keys.yaml", "alice", budget=40)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    x = npy_bytes(np.zeros((6, 1, 28, 28), np.uint8))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY}
    used = []
    for _round in range(2):
        port = _free_port()
        cmd = [sys.executable, "-m", "encoder_audit", "serve", str(ckpt), "--keys", str(tmp_path / "keys.yaml")]
        proc = subprocess.Popen(
            [*cmd, "--port", str(port), "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, proc)
            used.append(httpx.get(url + "/v1/usage", headers=headers).json()["used"])
            codes = [httpx.post(url + "/v1/embeddings", content=x, headers=headers).status_code for _ in range(4)]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert used == [0, 24]  # 4 x 6 images charged before the kill survive it
    assert codes == [200, 200, 429, 429]  # 24 + 6 + 6 = 36 <= 40, then 42 > 40


def test_serve_in_background_from_checkpoint_with_defense(tmp_path, tiny_encoder):
    from encoder_audit.models import save_encoder
    from encoder_audit.victim import load_encoder

    ckpt = save_encoder(tmp_path / "enc.safetensors", tiny_encoder)
    x = torch.rand(4, 1, 28, 28)
    with serve_in_background(ckpt, defenses=["round:decimals=1"]) as (url, key):
        remote = RemoteEncoder(url, key)
        assert remote.info["defenses"] == ["round"] and remote.budget is None
        out = remote.embed(x)
    expected = torch.round(load_encoder(ckpt).embed(x), decimals=1)
    assert torch.allclose(out, expected, atol=0.1 + 1e-6)
    assert (out * 10 - (out * 10).round()).abs().max() < 1e-4  # answers are rounded


def _metric(url: str, line: str) -> bool:
    return line in httpx.get(url + "/metrics", timeout=10).text


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_queued_request_whose_client_gives_up_is_not_charged():
    """A request waiting for the model when its client times out is released, not charged; the
    request in the model meanwhile is charged once its response is written."""
    enc = GatedEncoder()
    x = npy_bytes(np.zeros((5, 1, 8, 8), np.uint8))
    with serve_in_background(enc, budget=100) as (url, key):
        headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY, "Accept": NPY}
        first: list[int] = []
        t = threading.Thread(
            target=lambda: first.append(
                httpx.post(url + "/v1/embeddings", content=x, headers=headers, timeout=60).status_code
            )
        )
        t.start()
        assert enc.entered.wait(30)
        with pytest.raises(httpx.TimeoutException):
            httpx.post(
                url + "/v1/embeddings",
                content=npy_bytes(np.zeros((7, 1, 8, 8), np.uint8)),
                headers=headers,
                timeout=0.5,
            )
        _wait_for(lambda: _metric(url, 'encoder_audit_released_images_total{reason="disconnect"} 7'), "the release")
        usage = httpx.get(url + "/v1/usage", headers=headers).json()
        assert (usage["used"], usage["reserved"], usage["remaining"]) == (0, 5, 95)
        enc.gate.set()
        t.join(timeout=60)
        assert first == [200]
        usage = httpx.get(url + "/v1/usage", headers=headers).json()
        assert (usage["used"], usage["reserved"], usage["calls"]) == (5, 0, 1)
        assert _metric(url, "encoder_audit_images_total 5") and _metric(url, "encoder_audit_reserved_images 0")


def test_request_timeout_answers_503_and_charges_nothing():
    enc = GatedEncoder()
    config = ServiceConfig(request_timeout=0.3)
    with serve_in_background(enc, budget=100, config=config) as (url, key):
        headers = {"Authorization": f"Bearer {key}", "Content-Type": NPY}
        codes: list[int] = []

        def post(n: int) -> None:
            body = npy_bytes(np.zeros((n, 1, 8, 8), np.uint8))
            codes.append(httpx.post(url + "/v1/embeddings", content=body, headers=headers, timeout=60).status_code)

        a = threading.Thread(target=post, args=(3,))
        a.start()
        assert enc.entered.wait(30)
        b = httpx.post(
            url + "/v1/embeddings", content=npy_bytes(np.zeros((4, 1, 8, 8), np.uint8)), headers=headers, timeout=60
        )
        assert b.status_code == 503 and b.json()["error"] == "timeout" and "retry-after" in b.headers
        enc.gate.set()
        a.join(timeout=60)
        assert codes == [503]  # its answer could not start within the time-out either
        usage = httpx.get(url + "/v1/usage", headers=headers).json()
        assert (usage["used"], usage["reserved"], usage["calls"]) == (0, 0, 0)
        assert _metric(url, 'encoder_audit_released_images_total{reason="timeout"} 7')


def test_malformed_chunked_requests_log_no_error_traceback():
    """Broken chunked encodings, and clients leaving mid-body, are answered without ERROR logs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.ERROR)
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn", "encoder_audit", "")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with serve_in_background(LinearEncoder(), budget=100) as (url, key):
            port = int(url.rsplit(":", 1)[1])
            head = (
                "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/x-npy\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            for tail in (b"zz\r\nnot a chunk size\r\n", b"", b"5\r\nabc"):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(head + b"10\r\n" + b"\x93NUMPY" + b"\x00" * 10 + b"\r\n")
                    time.sleep(0.2)  # the app is reading the body now
                    if tail:
                        s.sendall(tail)
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(5)
                    with contextlib.suppress(OSError):
                        s.recv(1024)
            assert httpx.get(url + "/healthz").json()["status"] == "ok"
            assert httpx.get(url + "/v1/usage", headers={"X-API-Key": key}).json()["used"] == 0
            assert 'status="500"' not in httpx.get(url + "/metrics").text
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]


def test_restart_releases_reservations_of_a_dead_server(tmp_path):
    """Reservations left by a killed server are released once expired, at the next start-up."""
    path = tmp_path / "ledger.sqlite"
    keys = {"alice": {"key": "ea_dead_server_key", "budget": 20}}
    dead = SQLiteLedger(path)
    dead.ensure("alice")
    assert dead.reserve("alice", 15, 20, ttl=0.05).ok  # in flight when the server died
    dead.close()
    time.sleep(0.1)
    with serve_in_background(LinearEncoder(), keys=keys, ledger=path) as (url, key):
        usage = RemoteEncoder(url, key).server_usage()
        assert (usage["used"], usage["reserved"], usage["remaining"]) == (0, 0, 20)
    assert SQLiteLedger(path).account("alice").released == 15
