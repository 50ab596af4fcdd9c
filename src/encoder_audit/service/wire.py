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
shape right after it is decoded. One image is one query, whatever its format.

Decoding happens in two steps so that nothing expensive runs before the request is paid for:
:func:`prepare_body` / :func:`prepare_pngs` read only headers (the ``.npy`` header, each PNG's
``IHDR`` chunk, the JSON list) and return a :class:`Pending` request whose image count and pixel
total are known and checked; :meth:`Pending.decode` then decodes the pixels, one image (or one slice
of a ``.npy`` batch) at a time, each resized as soon as it is decoded.

Responses (``Accept``): ``application/x-npy`` gives a float32 (N, D) ``.npy``; anything else JSON
``{"embeddings": [[...], ...], "count": N, "dim": D, "usage": {...}}`` (float32 values written in their
shortest round-trip form, so parsing them back as float32 is exact). Both carry the headers
``X-Query-Images-Used``, ``X-Query-Images-Remaining`` (absent for unlimited accounts) and
``X-Query-Images-Charged``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ApiError

try:  # the fast JSON encoder of the ``serve`` extra; the standard library otherwise
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

NPY_TYPES = frozenset({"application/x-npy", "application/npy", "application/octet-stream"})
PNG_TYPE = "image/png"
JSON_TYPE = "application/json"
MULTIPART_TYPE = "multipart/form-data"
_NPY_DTYPES = {np.dtype("|u1"): "uint8", np.dtype("<f4"): "float32"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NPY_SLICE = 64  # images of a .npy batch converted (and resized) at a time

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Limits:
    """What one request may hold (from :class:`~encoder_audit.service.config.ServiceConfig`).

    Attributes:
        max_batch: images per request.
        max_pixels: height x width of one image.
        max_request_pixels: sum of height x width over a request's images (None: no cap).
    """

    max_batch: int
    max_pixels: int
    max_request_pixels: int | None = None


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


def _check_pixels(h: int, w: int, limits: Limits, where: str = "an image") -> None:
    if h < 1 or w < 1:
        raise ApiError(422, "bad_shape", f"images must be at least 1x1 pixels, got {h}x{w}")
    if h * w > limits.max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"{where} of {h}x{w} = {h * w} pixels exceeds the limit of {limits.max_pixels} pixels",
            limit=limits.max_pixels,
        )


def _check_total(pixels: int, n: int, limits: Limits) -> None:
    cap = limits.max_request_pixels
    if cap is not None and pixels > cap:
        raise ApiError(
            413,
            "request_too_large",
            f"the {n} images hold {pixels} pixels in all; the limit per request is {cap} pixels "
            "(send fewer or smaller images per request)",
            limit=cap,
        )


def _check_channels(c: int) -> None:
    if c not in (1, 3):
        raise ApiError(422, "bad_channels", f"images must have 1 or 3 channels, got {c}")


class Pending(ABC):
    """A request whose headers were read and checked but whose pixels are not decoded yet.

    Attributes:
        count: images in the request (what it will be charged).
        pixels: sum of height x width over the images.
    """

    count: int
    pixels: int

    @abstractmethod
    def decode(
        self,
        shape: Shape | None = None,
        *,
        gate: threading.Semaphore | None = None,
        check: Callable[[], None] | None = None,
    ) -> list[torch.Tensor]:
        """Decode the pixels into float (n_i, C, H, W) chunks in [0, 1].

        Args:
            shape: resize and convert each image to this (C, H, W) right after decoding it (None:
                keep each image as sent).
            gate: a semaphore held while each image (or ``.npy`` slice) is decoded, shared by all
                requests of a server to bound concurrent decodes.
            check: called before each image; raises to abandon the work (client gone, time-out).

        Raises:
            ApiError: 400/413/422 for pixels that cannot be decoded.
        """


def _adapt(x: torch.Tensor, shape: Shape | None) -> torch.Tensor:
    if shape is None:
        return x
    from ..victim import adapt_images

    return adapt_images(x, shape)


# --- .npy ---------------------------------------------------------------------------------------


class PendingNpy(Pending):
    """A checked ``.npy`` batch: a view of the body's bytes, converted to float slice by slice."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.count = int(array.shape[0])
        self.pixels = self.count * int(array.shape[2]) * int(array.shape[3])

    def decode(
        self,
        shape: Shape | None = None,
        *,
        gate: threading.Semaphore | None = None,
        check: Callable[[], None] | None = None,
    ) -> list[torch.Tensor]:
        chunks = []
        for i in range(0, self.count, _NPY_SLICE):
            if check is not None:
                check()
            with gate or contextlib.nullcontext():
                part = torch.from_numpy(self.array[i : i + _NPY_SLICE].copy())
                x = part.float().div_(255.0) if part.dtype == torch.uint8 else part
                chunks.append(_adapt(x, shape))
        return chunks


def prepare_npy(body: bytes, limits: Limits) -> PendingNpy:
    """Check a ``.npy`` batch from its header and byte count (never unpickling, never copying the data).

    Float32 batches are also checked for NaN, infinity and range here (cheap, no allocation beyond a
    boolean pass), so every ``.npy`` refusal happens before the request is charged.
    """
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
    _check_total(n * h * w, n, limits)
    expected = n * c * h * w * dtype.itemsize
    offset = f.tell()
    if len(body) - offset != expected:
        raise ApiError(
            400,
            "truncated",
            f"the header announces {expected} bytes of data for shape {tuple(shape)}, got {len(body) - offset}",
        )
    arr = np.frombuffer(body, dtype=dtype, offset=offset).reshape(n, c, h, w)
    if dtype != np.uint8:
        lo, hi = float(np.min(arr)), float(np.max(arr))  # NaN propagates through min/max
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ApiError(422, "not_finite", "float32 images contain NaN or infinity")
        if lo < 0.0 or hi > 1.0:
            raise ApiError(422, "out_of_range", f"float32 images must lie in [0, 1], got [{lo}, {hi}]")
    return PendingNpy(arr)


def decode_npy(body: bytes, limits: Limits) -> Batch:
    """Parse a ``.npy`` batch (:func:`prepare_npy`, then decode at full size)."""
    return Batch(prepare_npy(body, limits).decode())


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


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's ``IHDR`` chunk says: size, channels the image will have once decoded."""

    width: int
    height: int
    channels: int


def png_header(data: bytes, limits: Limits, *, index: int = 0) -> PngHeader:
    """Read and check a PNG's ``IHDR`` (the first 33 bytes) without decoding anything.

    Raises:
        ApiError: 400 ``not_png`` / ``bad_png``, 413 ``image_too_large``, 422 ``bad_channels`` (alpha).
    """
    where = f"image {index}"
    if not data.startswith(_PNG_SIGNATURE):
        raise ApiError(400, "not_png", f"{where} is not a PNG file")
    if len(data) < 33 or data[12:16] != b"IHDR" or int.from_bytes(data[8:12], "big") != 13:
        raise ApiError(400, "bad_png", f"{where} could not be decoded (truncated or corrupt PNG): no IHDR chunk")
    w = int.from_bytes(data[16:20], "big")
    h = int.from_bytes(data[20:24], "big")
    color = data[25]
    if color in (4, 6):
        mode = "LA" if color == 4 else "RGBA"
        raise ApiError(422, "bad_channels", f"{where} has an alpha channel ({mode}); send L (gray) or RGB")
    if color not in (0, 2, 3):
        raise ApiError(400, "bad_png", f"{where} could not be decoded (truncated or corrupt PNG): color type {color}")
    _check_pixels(h, w, limits, where)
    return PngHeader(w, h, 1 if color == 0 else 3)


def _png_pixels(data: bytes, limits: Limits, index: int) -> np.ndarray:
    """Decode one PNG to its pixels: uint8 (H, W) or (H, W, 3), or float32 (H, W) in [0, 1] for 16-bit.

    The pixel limit is checked from the header before decoding, and so is Pillow's own
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``): both are answered 413 ``image_too_large``.
    """
    from PIL import Image, UnidentifiedImageError

    header = png_header(data, limits, index=index)
    where = f"image {index}"
    bomb = Image.MAX_IMAGE_PIXELS
    if bomb is not None and header.width * header.height > bomb:
        raise ApiError(
            413,
            "image_too_large",
            f"{where} of {header.height}x{header.width} pixels exceeds the image decoder's limit of {bomb} pixels",
            limit=min(limits.max_pixels, int(bomb)),
        )
    try:
        opened = Image.open(io.BytesIO(data), formats=["PNG"])
        opened.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(413, "image_too_large", f"{where} exceeds the image decoder's size limit: {exc}") from None
    except UnidentifiedImageError:
        raise ApiError(400, "not_png", f"{where} is not a PNG file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
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
        return np.clip(arr / scale, 0.0, 1.0)
    if img.mode in ("L", "RGB"):
        return np.array(img, dtype=np.uint8)
    raise ApiError(422, "bad_mode", f"{where} has the unsupported PNG mode {mode}; send L or RGB")


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W[, 3]) pixels -> (1, C, H, W) float in [0, 1]."""
    x = torch.from_numpy(pixels)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
    x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
    return x.unsqueeze(0)


def decode_png(data: bytes, limits: Limits, *, index: int = 0, shape: Shape | None = None) -> torch.Tensor:
    """One PNG -> (1, C, H, W) float in [0, 1], resized to ``shape`` (C, H, W) if given.

    Limits are checked from the header before decoding (see :func:`png_header`); Pillow's own
    decompression-bomb limit is answered 413 ``image_too_large`` as well.
    """
    return _adapt(_to_tensor(_png_pixels(data, limits, index)), shape)


class PendingPngs(Pending):
    """PNG images whose headers were checked; decoded one at a time.

    Images already of the requested shape stay 8-bit until the end (one conversion for all of them);
    any other image becomes float and is resized as soon as it is decoded.
    """

    def __init__(self, blobs: list[bytes], headers: list[PngHeader], limits: Limits) -> None:
        self.blobs = blobs
        self.headers = headers
        self.limits = limits
        self.count = len(blobs)
        self.pixels = sum(h.width * h.height for h in headers)

    def decode(
        self,
        shape: Shape | None = None,
        *,
        gate: threading.Semaphore | None = None,
        check: Callable[[], None] | None = None,
    ) -> list[torch.Tensor]:
        chunks: list[torch.Tensor] = []
        run: list[np.ndarray] = []  # consecutive 8-bit images already of the requested shape

        def flush() -> None:
            if run:
                stacked = torch.from_numpy(np.stack(run))
                stacked = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
                chunks.append(stacked.float().div_(255.0))
                run.clear()

        for i, blob in enumerate(self.blobs):
            if check is not None:
                check()
            with gate or contextlib.nullcontext():
                pixels = _png_pixels(blob, self.limits, i)
                channels = 1 if pixels.ndim == 2 else 3
                if shape is not None and pixels.dtype == np.uint8 and (channels, *pixels.shape[:2]) == tuple(shape):
                    run.append(pixels)
                    continue
                flush()
                chunks.append(_adapt(_to_tensor(pixels), shape))
                del pixels
        flush()
        return chunks


def prepare_pngs(blobs: list[bytes], limits: Limits) -> PendingPngs:
    """Check several PNGs from their count and headers alone."""
    _check_count(len(blobs), limits)
    headers = [png_header(b, limits, index=i) for i, b in enumerate(blobs)]
    pending = PendingPngs(blobs, headers, limits)
    _check_total(pending.pixels, pending.count, limits)
    return pending


def decode_pngs(blobs: list[bytes], limits: Limits) -> Batch:
    """Several PNGs -> one chunk per image, at the size sent."""
    return Batch(prepare_pngs(blobs, limits).decode())


# --- JSON ---------------------------------------------------------------------------------------


def _loads(body: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None


def prepare_json(body: bytes, limits: Limits) -> PendingPngs:
    """``{"images": [base64 PNG, ...]}``: the list length is checked before any base64 is decoded."""
    doc = _loads(body)
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
    return prepare_pngs(blobs, limits)


def decode_json(body: bytes, limits: Limits) -> Batch:
    """``{"images": [base64 PNG, ...]}``, decoded at the sizes sent."""
    return Batch(prepare_json(body, limits).decode())


def prepare_body(content_type: str | None, body: bytes, limits: Limits) -> Pending:
    """Check a non-multipart request body by its ``Content-Type``, reading headers only.

    Raises:
        ApiError: 400 (undecodable), 413 (limits), 415 (unknown type), 422 (wrong dtype, shape, NaN, ...).
    """
    kind = media_type(content_type)
    if kind in NPY_TYPES:
        return prepare_npy(body, limits)
    if kind == PNG_TYPE:
        return prepare_pngs([body], limits)
    if kind == JSON_TYPE:
        return prepare_json(body, limits)
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {kind or '(none)'!r} is not accepted; use application/x-npy, image/png, "
        "multipart/form-data (fields 'image') or application/json",
    )


def decode_body(content_type: str | None, body: bytes, limits: Limits) -> Batch:
    """Decode a non-multipart request body at the sizes sent (:func:`prepare_body`, then decode)."""
    return Batch(prepare_body(content_type, body, limits).decode())


def encode_json(embeddings: torch.Tensor | np.ndarray, usage: dict[str, Any]) -> bytes:
    """The JSON response body (orjson when installed: float32 arrays serialized natively)."""
    arr = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    doc: dict[str, Any] = {
        "embeddings": arr,
        "count": int(arr.shape[0]),
        "dim": int(arr.shape[1]) if arr.ndim == 2 else 0,
        "usage": usage,
    }
    if orjson is not None:
        return bytes(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
    doc["embeddings"] = arr.tolist()
    return json.dumps(doc, separators=(",", ":")).encode()
