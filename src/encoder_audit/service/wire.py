"""The wire format of ``POST /v1/embeddings``: request bodies in, embeddings out.

Requests (``Content-Type``):

* ``application/x-npy``: one NumPy ``.npy`` file (format 1.0/2.0/3.0, C order, never pickled) holding a
  batch of shape (N, C, H, W), C in {1, 3}, dtype ``uint8`` (0..255) or little-endian ``float32`` in
  [0, 1]. The header is read and checked (dtype, shape, batch and pixel limits, exact byte count)
  before any array is allocated.
* ``image/png``: one PNG image (a batch of 1).
* ``multipart/form-data``: any number of PNG files in fields named ``image`` (``curl -F image=@a.png``).
* ``application/json``: ``{"images": ["<base64 PNG>", ...]}``.

PNG modes L, 1 and I;16 become one channel, RGB and P three; images with an alpha channel are refused
(send L or RGB). PNG images of one request may differ in size: each is resized to the encoder's input
shape. One image is one query, whatever its format.

Responses (``Accept``): ``application/x-npy`` gives a float32 (N, D) ``.npy``; anything else JSON
``{"embeddings": [[...], ...], "count": N, "dim": D, "usage": {...}}``. Both carry the headers
``X-Query-Images-Used``, ``X-Query-Images-Remaining`` (absent for unlimited accounts) and
``X-Query-Images-Charged``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ApiError

NPY_TYPES = frozenset({"application/x-npy", "application/npy", "application/octet-stream"})
PNG_TYPE = "image/png"
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
_NPY_DTYPES = {np.dtype("|u1"): "uint8", np.dtype("<f4"): "float32"}


@dataclass(frozen=True)
class Limits:
    """What one request may hold (from :class:`~encoder_audit.service.config.ServiceConfig`)."""

    max_batch: int
    max_pixels: int


@dataclass
class Batch:
    """A decoded request: one or more chunks of float images in [0, 1], (n_i, C, H, W) each."""

    chunks: list[torch.Tensor]

    @property
    def count(self) -> int:
        return sum(int(c.shape[0]) for c in self.chunks)


def media_type(header: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (header or "").split(";", 1)[0].strip().lower()


def wants_npy(accept: str | None) -> bool:
    """True if the ``Accept`` header asks for ``.npy`` (before or instead of JSON)."""
    kinds = [media_type(part) for part in (accept or "").split(",")]
    return any(k in NPY_TYPES for k in kinds)


def _check_count(n: int, limits: Limits) -> None:
    if n == 0:
        raise ApiError(422, "empty_batch", "the batch holds no images")
    if n > limits.max_batch:
        raise ApiError(
            413,
            "batch_too_large",
            f"{n} images in one request; the limit is {limits.max_batch}",
            limit=limits.max_batch,
        )


def _check_pixels(h: int, w: int, limits: Limits) -> None:
    if h < 1 or w < 1:
        raise ApiError(422, "bad_shape", f"images must be at least 1x1 pixels, got {h}x{w}")
    if h * w > limits.max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"an image of {h}x{w} = {h * w} pixels exceeds the limit of {limits.max_pixels} pixels",
            limit=limits.max_pixels,
        )


def _check_channels(c: int) -> None:
    if c not in (1, 3):
        raise ApiError(422, "bad_channels", f"images must have 1 or 3 channels, got {c}")


# --- .npy ---------------------------------------------------------------------------------------


def decode_npy(body: bytes, limits: Limits) -> Batch:
    """Parse a ``.npy`` batch without ever unpickling or allocating more than the body's size."""
    f = io.BytesIO(body)
    try:
        major, minor = np.lib.format.read_magic(f)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif major in (2, 3):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {major}.{minor}")
    except (ValueError, SyntaxError, TypeError, KeyError, OverflowError, UnicodeDecodeError, EOFError) as exc:
        raise ApiError(400, "bad_npy", f"the body is not a valid .npy file: {exc}") from None
    if dtype not in _NPY_DTYPES:
        raise ApiError(422, "bad_dtype", f"array dtype must be uint8 or little-endian float32, got {dtype.str}")
    if fortran:
        raise ApiError(422, "bad_layout", "the array must be in C order (fortran_order False)")
    if len(shape) != 4:
        raise ApiError(422, "bad_shape", f"the array must be (N, C, H, W), got shape {tuple(shape)}")
    n, c, h, w = (int(s) for s in shape)
    _check_count(n, limits)
    _check_channels(c)
    _check_pixels(h, w, limits)
    expected = n * c * h * w * dtype.itemsize
    data = body[f.tell() :]
    if len(data) != expected:
        raise ApiError(
            400, "truncated", f"the header announces {expected} bytes of data for shape {tuple(shape)}, got {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(n, c, h, w)
    if dtype == np.uint8:
        x = torch.from_numpy(arr.copy()).float().div_(255.0)
    else:
        if not np.isfinite(arr).all():
            raise ApiError(422, "not_finite", "float32 images contain NaN or infinity")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise ApiError(422, "out_of_range", f"float32 images must lie in [0, 1], got [{arr.min()}, {arr.max()}]")
        x = torch.from_numpy(arr.copy())
    return Batch([x])


def encode_npy(array: np.ndarray | torch.Tensor) -> bytes:
    """Serialize an array as ``.npy`` bytes (no pickle)."""
    a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def parse_npy(data: bytes) -> np.ndarray:
    """Client side: read a ``.npy`` response (pickles refused)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


# --- PNG ----------------------------------------------------------------------------------------


def decode_png(data: bytes, limits: Limits, *, index: int = 0) -> torch.Tensor:
    """One PNG -> (1, C, H, W) float in [0, 1]; the pixel limit is checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    where = f"image {index}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=["PNG"])
            w, h = opened.size
            _check_pixels(h, w, limits)
            opened.load()
    except ApiError:
        raise
    except UnidentifiedImageError:
        raise ApiError(400, "not_png", f"{where} is not a PNG file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(400, "bad_png", f"{where} could not be decoded (truncated or corrupt PNG): {exc}") from None
    img: Image.Image = opened
    mode = img.mode
    if mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        raise ApiError(422, "bad_channels", f"{where} has an alpha channel ({mode}); send L (gray) or RGB")
    if mode == "1":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        scale = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        x = torch.from_numpy(np.clip(arr / scale, 0.0, 1.0)).unsqueeze(0)
    elif img.mode in ("L", "RGB"):
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr.copy()).float().div_(255.0)
        x = x.unsqueeze(0) if arr.ndim == 2 else x.permute(2, 0, 1)
    else:
        raise ApiError(422, "bad_mode", f"{where} has the unsupported PNG mode {mode}; send L or RGB")
    return x.unsqueeze(0)


def decode_pngs(blobs: list[bytes], limits: Limits) -> Batch:
    """Several PNGs -> one chunk per image."""
    _check_count(len(blobs), limits)
    return Batch([decode_png(b, limits, index=i) for i, b in enumerate(blobs)])


def decode_json(body: bytes, limits: Limits) -> Batch:
    """``{"images": [base64 PNG, ...]}``."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or "images" not in doc:
        raise ApiError(422, "bad_json", 'the JSON body must be an object {"images": [base64 PNG, ...]}')
    images = doc["images"]
    if not isinstance(images, list) or not all(isinstance(s, str) for s in images):
        raise ApiError(422, "bad_json", '"images" must be a list of base64-encoded PNG strings')
    _check_count(len(images), limits)
    blobs = []
    for i, s in enumerate(images):
        try:
            blobs.append(base64.b64decode(s, validate=True))
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_base64", f"images[{i}] is not valid base64") from None
    return decode_pngs(blobs, limits)


def decode_body(content_type: str | None, body: bytes, limits: Limits) -> Batch:
    """Decode a non-multipart request body by its ``Content-Type``.

    Raises:
        ApiError: 400 (undecodable), 413 (limits), 415 (unknown type), 422 (wrong dtype, shape, NaN, ...).
    """
    kind = media_type(content_type)
    if kind in NPY_TYPES:
        return decode_npy(body, limits)
    if kind == PNG_TYPE:
        return decode_pngs([body], limits)
    if kind == JSON_TYPE:
        return decode_json(body, limits)
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {kind or '(none)'!r} is not accepted; use application/x-npy, image/png, "
        "multipart/form-data (fields 'image') or application/json",
    )


def encode_json(embeddings: torch.Tensor, usage: dict) -> bytes:
    """The JSON response body."""
    return json.dumps(
        {
            "embeddings": embeddings.tolist(),
            "count": int(embeddings.shape[0]),
            "dim": int(embeddings.shape[1]) if embeddings.ndim == 2 else 0,
            "usage": usage,
        },
        separators=(",", ":"),
    ).encode()
