"""The app through FastAPI's TestClient (lifespan included): endpoints, errors, limits, defenses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from service_helpers import FailingEncoder, LinearEncoder, crafted_png, npy_bytes, png_bytes

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


def test_inference_failure_is_released_not_charged(tmp_path):
    with make_client(tmp_path, FailingEncoder(), budget=10) as c:
        r = post_npy(c, np.zeros((4, 1, 8, 8), np.uint8))
        assert r.status_code == 500 and r.json()["error"] == "inference_failed"
        u = c.get("/v1/usage", headers=auth()).json()
        assert (u["used"], u["calls"], u["reserved"], u["remaining"]) == (0, 0, 0, 10)
        text = c.get("/metrics").text
        assert 'encoder_audit_released_images_total{reason="error"} 4' in text
        assert "encoder_audit_images_total 0" in text and "encoder_audit_reserved_images 0" in text


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


# --- refusing before work -----------------------------------------------------------------------------


def _multipart(blobs):
    return [("image", (f"{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


def test_budget_is_checked_before_any_pixel_is_decoded(tmp_path):
    """PNGs whose pixel data is corrupt: decoding them would answer 400 bad_png. An account whose budget
    cannot cover the request gets 429 instead, so the refusal happened from the headers alone."""
    corrupt = crafted_png(1024, 1024, idat=b"not zlib data")
    config = ServiceConfig(max_batch=16, max_pixels=1024 * 1024, max_body_bytes=64 * 1024)
    with make_client(tmp_path, budget=0, config=config) as c:
        r = c.post("/v1/embeddings", files=_multipart([corrupt] * 8), headers=auth())
        assert r.status_code == 429 and r.json()["error"] == "budget_exhausted", r.text
        assert (r.json()["requested"], r.json()["remaining"]) == (8, 0)
        # an account that can pay is decoded, refused 400 and not charged
        r = c.post("/v1/embeddings", files=_multipart([corrupt] * 8), headers=auth(KEY2))
        assert r.status_code == 400 and r.json()["error"] == "bad_png"
        u = c.get("/v1/usage", headers=auth(KEY2)).json()
        assert (u["used"], u["reserved"], u["calls"]) == (0, 0, 0)
        assert 'encoder_audit_released_images_total{reason="error"} 8' in c.get("/metrics").text


def test_request_pixel_total_is_capped_from_headers(tmp_path):
    config = ServiceConfig(max_batch=16, max_pixels=64 * 64, max_request_pixels=3 * 64 * 64, max_body_bytes=64 * 1024)
    big = png_bytes(np.zeros((64, 64), np.uint8))
    with make_client(tmp_path, config=config) as c:
        r = c.post("/v1/embeddings", files=_multipart([big] * 4), headers=auth())
        assert r.status_code == 413 and r.json()["error"] == "request_too_large" and r.json()["limit"] == 3 * 64 * 64
        assert c.post("/v1/embeddings", files=_multipart([big] * 3), headers=auth()).status_code == 200
        r = post_npy(c, np.zeros((4, 1, 64, 64), np.uint8))
        assert r.status_code == 413 and r.json()["error"] == "request_too_large"
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 3


def test_png_above_the_decoders_bomb_limit_is_413(tmp_path):
    from PIL import Image

    side = int((Image.MAX_IMAGE_PIXELS or 89_478_485) ** 0.5) + 100  # above Pillow's warning threshold
    config = ServiceConfig(max_batch=4, max_pixels=side * side, max_request_pixels=side * side, max_body_bytes=4096)
    with make_client(tmp_path, config=config) as c:
        r = c.post("/v1/embeddings", content=crafted_png(side, side), headers={**auth(), "Content-Type": "image/png"})
        assert r.status_code == 413 and r.json()["error"] == "image_too_large", r.text
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 0


def test_missing_key_is_401_before_the_declared_size(tmp_path):
    with make_client(tmp_path) as c:
        big = b"\x00" * (64 * 1024 + 1)
        r = c.post("/v1/embeddings", content=big, headers={"Content-Type": NPY})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = c.post("/v1/embeddings", content=big, headers={**auth(), "Content-Type": NPY})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_chunked_multipart_over_the_cap_is_413(tmp_path):
    png = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    boundary = "XyZ"

    def body():  # streamed without Content-Length
        for i in range(40):
            part = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            yield part + png + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    config = ServiceConfig(max_batch=64, max_pixels=64 * 64, max_body_bytes=64 * 1024)
    with make_client(tmp_path, config=config) as c:
        headers = {**auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
        r = c.post("/v1/embeddings", content=body(), headers=headers)
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large", r.text
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 0


def test_head_healthz_and_metrics(tmp_path):
    with make_client(tmp_path) as c:
        assert c.head("/healthz").status_code == 200
        assert c.head("/metrics").status_code == 200


def test_json_response_is_float32_exact_and_usage_has_reservations(tmp_path):
    enc = LinearEncoder()
    x = np.random.default_rng(3).integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    with make_client(tmp_path, enc, budget=14) as c:
        r = post_npy(c, x, accept="application/json")
        assert r.status_code == 200
        got = np.array(r.json()["embeddings"], dtype=np.float32)
        npy = parse_npy(post_npy(c, x).content)
        assert np.array_equal(got, npy)  # the JSON numbers parse back to the exact float32 values
        assert r.json()["usage"] == {"charged": 6, "used": 6, "remaining": 8, "budget": 14}
        u = c.get("/v1/usage", headers=auth()).json()
        assert (u["used"], u["reserved"], u["remaining"]) == (12, 0, 2)
        r = post_npy(c, x[:3])
        assert r.status_code == 429 and r.json()["reserved"] == 0 and r.json()["remaining"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_decoded_requests": 0},
        {"decode_concurrency": 0},
        {"request_timeout": 0},
        {"write_timeout": float("inf")},
        {"max_pixels": 100, "max_request_pixels": 99},
    ],
)
def test_config_refuses_bad_limits(kwargs):
    with pytest.raises(ValueError):
        ServiceConfig(**kwargs)
    assert ServiceConfig().reservation_ttl == 60 + 30 + 5


def test_head_output_is_served_only_when_exposed_and_bad_outputs_cost_nothing(tmp_path):
    from encoder_audit.attacks.membership.targets import head_encoder
    from encoder_audit.models import create_encoder
    from encoder_audit.models.heads import create_head
    from encoder_audit.victim import LocalEncoder

    torch.manual_seed(0)
    net = create_encoder("cnn-small", 1, 8)
    head = create_head("mlp", net.feature_dim, 12).eval()
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    store = KeyStore([KeySpec("alice", hash_key(KEY), 100, None, None)])
    config = ServiceConfig(max_batch=16, max_pixels=64 * 64, max_body_bytes=64 * 1024)
    app = create_app(LocalEncoder(net), keys=store, ledger=tmp_path / "l.sqlite", config=config, head=(head, "mlp"))
    headers = {**auth(), "Content-Type": NPY, "Accept": NPY}
    with TestClient(app) as c:
        info = c.get("/v1/info", headers=auth()).json()
        assert info["outputs"] == ["h", "z"] and info["head_kind"] == "mlp" and info["output_dims"]["z"] == 12
        r = c.post("/v1/embeddings?output=z", content=npy_bytes(x), headers=headers)
        expected = LocalEncoder(head_encoder(net, head)).embed(torch.from_numpy(x))
        assert r.status_code == 200
        assert torch.allclose(torch.from_numpy(parse_npy(r.content)), expected, atol=1e-5)
        h = c.post("/v1/embeddings", content=npy_bytes(x), headers=headers)
        assert parse_npy(h.content).shape == (3, net.feature_dim)
        bad = c.post("/v1/embeddings?output=q", content=npy_bytes(x), headers=headers)
        assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 6
    with make_client(tmp_path / "plain") as c:  # started without a head: z is refused, not charged
        assert c.get("/v1/info", headers=auth()).json()["outputs"] == ["h"]
        x8 = np.zeros((2, 1, 8, 8), dtype=np.uint8)
        r = c.post("/v1/embeddings?output=z", content=npy_bytes(x8), headers={**auth(), "Content-Type": NPY})
        assert r.status_code == 400 and r.json()["error"] == "output_unavailable"
        assert c.get("/v1/usage", headers=auth()).json()["used"] == 0
