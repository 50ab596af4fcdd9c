"""Helpers for the service tests: a fast deterministic encoder and PNG/npy encoders."""

from __future__ import annotations

import io

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


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
