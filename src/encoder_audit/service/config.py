"""Limits and knobs of the embedding service, as one frozen config."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Slack added to a reservation's lifetime beyond the request and write time-outs: the time a
#: ledger commit may take after the last byte of a response was handed to the connection.
COMMIT_SLACK_S = 5.0


@dataclass(frozen=True)
class ServiceConfig:
    """Attributes:
    max_batch: images per request; more is refused whole with 413.
    max_pixels: height x width of any one image; more is refused with 413. Read from the ``.npy``
        header or the PNG ``IHDR`` chunk before anything is decoded or charged.
    max_request_pixels: the sum of height x width over the images of one request (413 above it),
        also checked from the headers alone: it bounds the decoding work one request can cause.
    max_body_bytes: request body cap, enforced while the bytes arrive (413).
    decode_concurrency: images decoded at the same time in the whole process; each image is resized
        to the encoder's input right after it is decoded, so full-size decoded memory is bounded by
        this many images, however many requests arrive.
    max_decoded_requests: requests that may hold decoded (input-size) images at once: decoding,
        waiting for the model or in it. Others wait with only their body in memory. 2 keeps the
        next batch decoded while one runs.
    request_timeout: seconds from the arrival of a request's body to the start of its answer
        (waiting for the model included); later, the request is answered 503 ``timeout`` and its
        reservation released.
    write_timeout: seconds the answer may take to be written to the client; a slower client gets
        its connection closed and is not charged.
    sqlite_synchronous: ``FULL`` fsyncs the ledger right after each response's last byte (a power
        cut can only lose the charges of the responses of the last few milliseconds); ``NORMAL``
        never fsyncs and still survives a process crash (SQLite WAL docs, "synchronous").
        Reservations are never fsynced: losing one loses nothing (it would have been released).
    inference_threads: torch intra-op threads for the model (0 = leave torch's setting).
    serialize_inference: run one forward pass at a time, so concurrent requests do not oversubscribe the
        CPU cores (each pass already uses all ``inference_threads``).
    """

    max_batch: int = 1024
    max_pixels: int = 1024 * 1024
    max_request_pixels: int = 64 * 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    decode_concurrency: int = 2
    max_decoded_requests: int = 2
    request_timeout: float = 60.0
    write_timeout: float = 30.0
    sqlite_synchronous: str = "FULL"
    inference_threads: int = 0
    serialize_inference: bool = True

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.max_request_pixels < self.max_pixels:
            raise ValueError(
                f"max_request_pixels ({self.max_request_pixels}) must be >= max_pixels ({self.max_pixels})"
            )
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.decode_concurrency < 1:
            raise ValueError(f"decode_concurrency must be >= 1, got {self.decode_concurrency}")
        if self.max_decoded_requests < 1:
            raise ValueError(f"max_decoded_requests must be >= 1, got {self.max_decoded_requests}")
        for name in ("request_timeout", "write_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value}")
        if self.sqlite_synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"sqlite_synchronous must be FULL, NORMAL or EXTRA, got {self.sqlite_synchronous!r}")
        if self.inference_threads < 0:
            raise ValueError(f"inference_threads must be >= 0, got {self.inference_threads}")

    @property
    def reservation_ttl(self) -> float:
        """Seconds after which a reservation no request committed or released is released by anyone.

        A live request either starts its answer within ``request_timeout`` and finishes writing it
        within ``write_timeout``, or releases its reservation itself, so only reservations of a dead
        process (``kill -9``, power cut) ever reach this age.
        """
        return self.request_timeout + self.write_timeout + COMMIT_SLACK_S
