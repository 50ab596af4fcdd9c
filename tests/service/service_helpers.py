"""Helpers for the service tests: a fast deterministic encoder and PNG/npy encoders."""

from __future__ import annotations

import io
import struct
import threading
import zlib

import numpy as np
import torch


class LinearEncoder:
    """A fixed random projection of the flattened (adapted) image: deterministic and fast."""

    def __init__(self, input_shape: tuple[int, int, int] = (1, 8, 8), dim: int = 16, seed: int = 0) -> None:
        self.input_shape = input_shape
        self.embedding_dim = dim
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(int(np.prod(input_shape)), dim, generator=g)
        self.calls = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        from encoder_audit.victim import adapt_images

        self.calls += 1
        x = adapt_images(images, self.input_shape)
        return x.flatten(1) @ self.weight


class FailingEncoder(LinearEncoder):
    """Raises on every forward pass (to test refunds)."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("simulated inference failure")


class GatedEncoder(LinearEncoder):
    """Blocks every forward pass until ``gate`` is set (to hold requests in the model queue)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.gate.wait(timeout=60), "test gate never opened"
        return super().embed(images)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def crafted_png(width: int, height: int, *, color_type: int = 0, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR announces ``width`` x ``height`` (8-bit) followed by ``idat`` as its only data
    chunk: a header that may lie about pixels it never carries (decompression bombs, corrupt data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


NPY = "application/x-npy"

# Malformed requests for limits max_batch=8, max_pixels=64*64: name -> (content type, body, status, error).
_noise_png = png_bytes(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8))

CORPUS = {
    "empty body npy": (NPY, b"", 400, "bad_npy"),
    "not npy": (NPY, b"hello world" * 10, 400, "bad_npy"),
    "pickled object array": (NPY, npy_bytes(np.array([1, 2], dtype=np.int64)), 422, "bad_dtype"),
    "float64": (NPY, npy_bytes(np.zeros((1, 1, 4, 4))), 422, "bad_dtype"),
    "big-endian float": (NPY, npy_bytes(np.zeros((1, 1, 4, 4), dtype=">f4")), 422, "bad_dtype"),
    "int16": (NPY, npy_bytes(np.zeros((1, 1, 4, 4), dtype=np.int16)), 422, "bad_dtype"),
    "3-d array": (NPY, npy_bytes(np.zeros((1, 4, 4), dtype=np.uint8)), 422, "bad_shape"),
    "4 channels": (NPY, npy_bytes(np.zeros((1, 4, 4, 4), dtype=np.uint8)), 422, "bad_channels"),
    "2 channels": (NPY, npy_bytes(np.zeros((1, 2, 4, 4), dtype=np.uint8)), 422, "bad_channels"),
    "zero width": (NPY, npy_bytes(np.zeros((1, 1, 4, 0), dtype=np.uint8)), 422, "bad_shape"),
    "NaN": (NPY, npy_bytes(np.full((1, 1, 4, 4), np.nan, dtype=np.float32)), 422, "not_finite"),
    "inf": (NPY, npy_bytes(np.full((1, 1, 4, 4), np.inf, dtype=np.float32)), 422, "not_finite"),
    "out of range": (NPY, npy_bytes(np.full((1, 1, 4, 4), 2.0, dtype=np.float32)), 422, "out_of_range"),
    "empty batch": (NPY, npy_bytes(np.zeros((0, 1, 4, 4), dtype=np.uint8)), 422, "empty_batch"),
    "batch too large": (NPY, npy_bytes(np.zeros((9, 1, 4, 4), dtype=np.uint8)), 413, "batch_too_large"),
    "too many pixels": (NPY, npy_bytes(np.zeros((1, 1, 65, 64), dtype=np.uint8)), 413, "image_too_large"),
    "truncated npy": (NPY, npy_bytes(np.zeros((2, 1, 8, 8), dtype=np.uint8))[:-10], 400, "truncated"),
    "extra bytes": (NPY, npy_bytes(np.zeros((2, 1, 8, 8), dtype=np.uint8)) + b"xx", 400, "truncated"),
    "truncated png": ("image/png", _noise_png[: len(_noise_png) // 2], 400, "bad_png"),
    "png cut in header": ("image/png", _noise_png[:20], 400, "bad_png"),
    "jpeg-ish bytes": ("image/png", b"\xff\xd8\xff\xe0" + b"0" * 100, 400, "not_png"),
    "rgba png": ("image/png", png_bytes(np.zeros((8, 8, 4), np.uint8)), 422, "bad_channels"),
    "huge png": ("image/png", png_bytes(np.zeros((100, 100), np.uint8)), 413, "image_too_large"),
    "bad json": ("application/json", b'{"images": [', 400, "bad_json"),
    "json not object": ("application/json", b"[1, 2]", 422, "bad_json"),
    "json wrong type": ("application/json", b'{"images": [1]}', 422, "bad_json"),
    "json bad base64": ("application/json", b'{"images": ["!!!"]}', 400, "bad_base64"),
    "json empty": ("application/json", b'{"images": []}', 422, "empty_batch"),
    "unknown type": ("text/plain", b"hi", 415, "unsupported_media_type"),
    "no type": ("", b"hi", 415, "unsupported_media_type"),
}


POSTGRES_ENV = "ENCODER_AUDIT_POSTGRES_DSN"


def postgres_dsn_or_skip() -> str:
    """The DSN of a PostgreSQL server for the tests, or skip with the reason."""
    import os

    import pytest

    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (scripts/ci_postgres.sh starts a throwaway one)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the psycopg (v3) driver is not installed: pip install 'psycopg[binary]'")
    return dsn
