"""The app through FastAPI's TestClient (lifespan included): endpoints, errors, limits, defenses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from service_helpers import FailingEncoder, LinearEncoder, npy_bytes, png_bytes

from encoder_audit.service.app import create_app
from encoder_audit.service.auth import KeySpec, KeyStore, hash_key
from encoder_audit.service.config import ServiceConfig
from encoder_audit.service.wire import parse_npy

NPY = "application/x-npy"
KEY, KEY2 = "ea_test_key_one", "ea_test_key_two"


def make_client(tmp_path, encoder=None, *, budget=100, rate=None, burst=None, defenses=(), config=None):
    store = KeyStore([KeySpec("alice", hash_key(KEY), budget, rate, burst), KeySpec("bob", hash_key(KEY2))])
    app = create_app(
        encoder or LinearEncoder(),
        keys=store,
        ledger=tmp_path / "ledger.sqlite",
        defenses=defenses,
        config=config or ServiceConfig(max_batch=16, max_pixels=64 * 64, max_body_bytes=64 * 1024),
    )
    return TestClient(app)


def auth(key=KEY):
    return {"Authorization": f"Bearer {key}"}


def post_npy(client, x, key=KEY, accept=NPY):
    headers = {**auth(key), "Content-Type": NPY, "Accept": accept}
    return client.post("/v1/embeddings", content=npy_bytes(x), headers=headers)


def test_embeddings_npy_and_json_match_local(tmp_path):
    enc = LinearEncoder()
    x = np.random.default_rng(0).integers(0, 256, (5, 1, 8, 8), dtype=np.uint8)
    expected = enc.embed(torch.from_numpy(x).float() / 255)
    with make_client(tmp_path, enc) as c:
        r = post_npy(c, x)
        assert r.status_code == 200 and r.headers["content-type"] == NPY
        assert r.headers["x-query-images-charged"] == "5" and r.headers["x-query-images-remaining"] == "95"
        assert torch.allclose(torch.from_numpy(parse_npy(r.content)), expected, atol=1e-6)
        r = post_npy(c, x, accept="application/json")
        body = r.json()
        assert body["count"] == 5 and body["dim"] == 16 and body["usage"]["used"] == 10
        assert torch.allclose(torch.tensor(body["embeddings"]), expected, atol=1e-6)
        u = c.get("/v1/usage", headers={"X-API-Key": KEY}).json()
        assert (u["used"], u["calls"], u["remaining"], u["budget"]) == (10, 2, 90, 100)


def test_multipart_and_png_of_mixed_sizes(tmp_path):
    enc = LinearEncoder()
    g = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    rgb = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    with make_client(tmp_path, enc) as c:
        files = [("image", ("a.png", png_bytes(g), "image/png")), ("image", ("b.png", png_bytes(rgb), "image/png"))]
        r = c.post("/v1/embeddings", files=files, headers=auth())
        assert r.status_code == 200, r.text
        emb = torch.tensor(r.json()["embeddings"])
        assert emb.shape == (2, 16)
        assert torch.allclose(emb[0], enc.embed(torch.from_numpy(g).float().view(1, 1, 8, 8) / 255)[0], atol=1e-5)
        r = c.post("/v1/embeddings", files=[("other", ("a.txt", b"x", "text/plain"))], headers=auth())
        assert r.status_code == 422
        r = c.post("/v1/embeddings", data={"image": "text"}, files={"x": ("x", b"1")}, headers=auth())
        assert r.status_code == 422
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 2
        many = [("image", (f"{i}.png", png_bytes(g), "image/png")) for i in range(40)]  # max_batch is 16
        r = c.post("/v1/embeddings", files=many, headers=auth())
        assert r.status_code == 413 and r.json()["error"] == "batch_too_large"
        r = c.post(
            "/v1/embeddings", content=b"--x\r\nbroken", headers={**auth(), "Content-Type": "multipart/form-data"}
        )
        assert r.status_code == 400
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 2


def test_auth_401_and_never_an_embedding(tmp_path):
    x = np.zeros((2, 1, 8, 8), dtype=np.uint8)
    with make_client(tmp_path) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"}, {"Authorization": KEY}):
            r = c.post("/v1/embeddings", content=npy_bytes(x), headers={**headers, "Content-Type": NPY})
            assert r.status_code == 401 and "embeddings" not in r.text and r.headers["www-authenticate"] == "Bearer"
            assert c.get("/v1/usage", headers=headers).status_code == 401
            assert c.get("/v1/info", headers=headers).status_code == 401
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 0
        assert 'encoder_audit_rejections_total{reason="unauthorized"} 12' in c.get("/metrics").text


def test_budget_refused_whole_with_remaining(tmp_path):
    with make_client(tmp_path, budget=10) as c:
        assert post_npy(c, np.zeros((7, 1, 8, 8), np.uint8)).status_code == 200
        r = post_npy(c, np.zeros((4, 1, 8, 8), np.uint8))
        assert r.status_code == 429
        body = r.json()
        assert (body["error"], body["remaining"], body["used"], body["requested"], body["budget"]) == (
            "budget_exhausted", 3, 7, 4, 10,
        )  # fmt: skip
        assert post_npy(c, np.zeros((3, 1, 8, 8), np.uint8)).status_code == 200
        assert post_npy(c, np.zeros((1, 1, 8, 8), np.uint8)).status_code == 429
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 10
        # another account is unaffected (unlimited)
        assert post_npy(c, np.zeros((16, 1, 8, 8), np.uint8), key=KEY2).status_code == 200


def test_rate_limit_429_with_retry_after(tmp_path):
    with make_client(tmp_path, budget=None, rate=0.5, burst=2) as c:
        x = np.zeros((1, 1, 8, 8), np.uint8)
        assert [post_npy(c, x).status_code for _ in range(2)] == [200, 200]
        r = post_npy(c, x)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1 and 0 < r.json()["retry_after"] <= 2.0
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 2  # the refused request was not charged


def test_inference_failure_is_refunded(tmp_path):
    with make_client(tmp_path, FailingEncoder(), budget=10) as c:
        r = post_npy(c, np.zeros((4, 1, 8, 8), np.uint8))
        assert r.status_code == 500 and r.json()["error"] == "inference_failed"
        u = c.get("/v1/usage", headers=auth()).json()
        assert (u["used"], u["calls"]) == (0, 0)
        assert "encoder_audit_refunded_images_total 4" in c.get("/metrics").text
        assert "encoder_audit_images_total 0" in c.get("/metrics").text


def test_body_size_limit_declared_and_streamed(tmp_path):
    with make_client(tmp_path) as c:
        big = b"\x00" * (64 * 1024 + 1)
        r = c.post("/v1/embeddings", content=big, headers={**auth(), "Content-Type": NPY})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

        def chunks():  # no Content-Length: chunked transfer, counted as it arrives
            for _ in range(80):
                yield b"\x00" * 1024

        r = c.post("/v1/embeddings", content=chunks(), headers={**auth(), "Content-Type": NPY})
        assert r.status_code == 413
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 0


def test_info_healthz_metrics_and_404(tmp_path):
    with make_client(tmp_path, defenses=["round:decimals=1"]) as c:
        info = c.get("/v1/info", headers=auth()).json()
        assert info["input_shape"] == [1, 8, 8] and info["embedding_dim"] == 16 and info["max_batch"] == 16
        assert info["defenses"] == ["round"]
        assert c.get("/healthz").json() == {"status": "ok", "model_loaded": True}
        post_npy(c, np.zeros((3, 1, 8, 8), np.uint8))
        post_npy(c, np.zeros((0, 1, 8, 8), np.uint8))
        text = c.get("/metrics").text
        assert "encoder_audit_images_total 3" in text
        assert 'encoder_audit_rejections_total{reason="empty_batch"} 1' in text
        assert 'encoder_audit_requests_total{method="POST",path="/v1/embeddings",status="200"} 1' in text
        assert "encoder_audit_embed_latency_seconds_count 2" in text
        r = c.get("/nope")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert c.get("/v1/embeddings").status_code == 405


def test_defenses_apply_and_b4b_is_per_account(tmp_path):
    from encoder_audit.defenses import create_defense

    b4b = create_defense("b4b", projections=4, hyperplanes=3, lam=1e-3, alpha=1.0, beta=50.0)
    with make_client(tmp_path, budget=None, defenses=["round:decimals=1", b4b]) as c:
        x = np.random.default_rng(0).integers(0, 256, (16, 1, 8, 8), dtype=np.uint8)
        r = post_npy(c, x)
        emb = parse_npy(r.content)
        assert emb.shape == (16, 16)
        r2 = post_npy(c, x[:1], key=KEY2)
        assert r2.status_code == 200
        accounts = b4b.accounts()
        assert set(accounts) == {"alice", "bob"}
        assert accounts["alice"]["queries"] == 16 and accounts["bob"]["queries"] == 1
        assert accounts["alice"]["coverage"] > accounts["bob"]["coverage"]


@pytest.mark.parametrize(
    "ctype,body",
    [(NPY, b"garbage"), ("application/json", b"{"), ("image/png", b"\x89PNG\r\n\x1a\n"), ("text/csv", b"1,2")],
)
def test_malformed_inputs_are_4xx_and_not_charged(tmp_path, ctype, body):
    with make_client(tmp_path) as c:
        r = c.post("/v1/embeddings", content=body, headers={**auth(), "Content-Type": ctype})
        assert 400 <= r.status_code < 500 and r.json()["error"] and r.json()["detail"]
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 0
