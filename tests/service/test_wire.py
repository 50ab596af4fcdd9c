from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from service_helpers import CORPUS, npy_bytes, png_bytes

from encoder_audit.service.errors import ApiError
from encoder_audit.service.wire import Limits, decode_body, encode_npy, parse_npy, wants_npy

LIM = Limits(max_batch=8, max_pixels=64 * 64)  # the limits CORPUS assumes
NPY = "application/x-npy"


def test_npy_uint8_and_float32_roundtrip():
    a = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    x = decode_body(NPY, npy_bytes(a), LIM).chunks[0]
    assert torch.equal(x, torch.from_numpy(a).float() / 255)
    f = np.random.default_rng(1).random((2, 3, 5, 7), dtype=np.float32)
    y = decode_body("application/x-npy; charset=binary", npy_bytes(f), LIM).chunks[0]
    assert torch.equal(y, torch.from_numpy(f))


def test_png_gray_rgb_palette_and_json():
    g = np.arange(64, dtype=np.uint8).reshape(8, 8)
    x = decode_body("image/png", png_bytes(g), LIM).chunks[0]
    assert x.shape == (1, 1, 8, 8) and torch.allclose(x[0, 0], torch.from_numpy(g).float() / 255)
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    doc = {"images": [base64.b64encode(png_bytes(rgb)).decode(), base64.b64encode(png_bytes(g)).decode()]}
    batch = decode_body("application/json", json.dumps(doc).encode(), LIM)
    assert batch.count == 2 and batch.chunks[0].shape == (1, 3, 5, 6)
    assert torch.allclose(batch.chunks[0][0], torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def _err(content_type: str, body: bytes) -> ApiError:
    with pytest.raises(ApiError) as info:
        decode_body(content_type, body, LIM)
    return info.value


def test_response_npy_roundtrip_and_accept():
    e = torch.randn(4, 3)
    assert np.array_equal(parse_npy(encode_npy(e)), e.numpy())
    assert wants_npy("application/json, application/x-npy;q=0.9") and not wants_npy("*/*") and not wants_npy(None)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_corpus_gives_the_right_4xx(name):
    ctype, body, status, error = CORPUS[name]
    err = _err(ctype, body)
    assert (err.status, err.error) == (status, error), err.detail
    assert err.detail


def test_lying_npy_header_does_not_allocate():
    # a header announcing 10^12 images of 1x1 is refused from the header alone (batch limit)
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000, 1, 1, 1), }"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    body = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\x00" * 16
    err = _err(NPY, body)
    assert err.status == 413
    # within the batch limit but with huge images: refused by the pixel limit
    header2 = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 100000, 100000), }"
    header2 += " " * (64 - (10 + len(header2) + 1) % 64) + "\n"
    body2 = b"\x93NUMPY\x01\x00" + len(header2).to_bytes(2, "little") + header2.encode()
    assert _err(NPY, body2).status == 413


def test_fortran_order_refused():
    a = np.asfortranarray(np.zeros((2, 1, 4, 4), dtype=np.uint8))
    err = _err(NPY, npy_bytes(a))
    assert err.status == 422 and err.error == "bad_layout"
