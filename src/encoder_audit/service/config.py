"""Limits and knobs of the embedding service, as one frozen config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceConfig:
    """Attributes:
    max_batch: images per request; more is refused whole with 413.
    max_pixels: height x width of any one image; more is refused with 413 (checked from the PNG/npy
        header before anything is decoded, so a decompression bomb costs nothing).
    max_body_bytes: request body cap, enforced while the bytes arrive (413).
    sqlite_synchronous: ``FULL`` makes every charged request durable before the embeddings leave the
        server (a power cut loses nothing that was served); ``NORMAL`` is faster and still survives a
        process crash (SQLite WAL docs, "synchronous").
    inference_threads: torch intra-op threads for the model (0 = leave torch's setting).
    serialize_inference: run one forward pass at a time, so concurrent requests do not oversubscribe the
        CPU cores (each pass already uses all ``inference_threads``).
    """

    max_batch: int = 1024
    max_pixels: int = 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    sqlite_synchronous: str = "FULL"
    inference_threads: int = 0
    serialize_inference: bool = True

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.sqlite_synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"sqlite_synchronous must be FULL, NORMAL or EXTRA, got {self.sqlite_synchronous!r}")
        if self.inference_threads < 0:
            raise ValueError(f"inference_threads must be >= 0, got {self.inference_threads}")
