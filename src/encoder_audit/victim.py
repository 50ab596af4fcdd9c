"""The victim interface: anything with ``embed(images) -> embeddings`` is an encoder to audit.

Attacks see a victim only through the :class:`Encoder` protocol, so the same attack runs against a
network in memory (:class:`LocalEncoder`), a metered one (:class:`QueryCounter`) or an HTTP API
(``encoder_audit.service.client.RemoteEncoder``), and reports its query cost the same way.

Images are float tensors in [0, 1] of shape (N, C, H, W). Encoders accept any size and channel count
and adapt them to their own input shape (bilinear resize; gray <-> RGB), so the attacker never needs
to know the victim's preprocessing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from .errors import BudgetExhausted
from .models.base import EncoderNet

__all__ = ["Encoder", "HasMetadata", "LocalEncoder", "QueryCounter", "WhiteBox", "adapt_images", "load_encoder"]


@runtime_checkable
class Encoder(Protocol):
    """A black-box image encoder.

    Attributes:
        input_shape: (C, H, W) the encoder works at.
        embedding_dim: D.

    Shape:
        embed: (N, C', H', W') float in [0, 1] -> (N, D) float32 on the CPU.
    """

    input_shape: tuple[int, int, int]
    embedding_dim: int

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class WhiteBox(Protocol):
    """An encoder whose weights are at hand (``net``: the ``EncoderNet``), for attacks and defenses that
    need gradients or fine-tuning (BadEncoder, Unlearnable Clusters with the victim as surrogate)."""

    net: EncoderNet


@runtime_checkable
class HasMetadata(Protocol):
    """An encoder that carries its checkpoint sidecar (``meta``: architecture, training config, ...)."""

    meta: dict[str, Any]


def _check_batch(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got {images.dtype}")


def adapt_images(images: torch.Tensor, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Resize and convert channels of a [0, 1] batch to ``input_shape``.

    Values outside [0, 1] are clipped to it.

    Raises:
        ValueError: not a 4-d float batch, or values that are not finite.
    """
    _check_batch(images)
    c, h, w = input_shape
    x = images
    if not torch.isfinite(x).all():
        raise ValueError("images must be finite (got NaN or infinity)")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        x = x.clamp(0, 1)
    if x.shape[1] != c:
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        else:
            raise ValueError(f"cannot adapt {x.shape[1]}-channel images to {c} channels")
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return x


class LocalEncoder:
    """An :class:`EncoderNet` in this process, used in eval mode without gradients.

    Wrapping does not change the network's train/eval mode (``embed`` switches to eval mode for the
    forward pass and back), so a training callback can evaluate the encoder mid-training.

    Args:
        net: the network.
        batch_size: images per forward pass.
        device: where to run (default: the network's device).
        meta: the checkpoint sidecar, if loaded from disk.
    """

    def __init__(
        self,
        net: EncoderNet,
        *,
        batch_size: int = 512,
        device: str | torch.device | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.net = net
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net.to(self.device)
        self.batch_size = batch_size
        self.meta = meta or {}
        self.input_shape: tuple[int, int, int] = net.input_shape
        self.embedding_dim: int = net.feature_dim

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a [0, 1] batch in eval mode (batch norm uses its running statistics, which stay
        untouched), restoring the network's previous train/eval mode afterwards."""
        _check_batch(images)
        was_training = self.net.training
        if was_training:
            self.net.eval()
        try:
            outs = []
            for start in range(0, images.shape[0], self.batch_size):
                x = adapt_images(images[start : start + self.batch_size], self.input_shape)
                outs.append(self.net(x.to(self.device)).float().cpu())
        finally:
            if was_training:
                self.net.train()
        if not outs:
            return torch.empty(0, self.embedding_dim)
        return torch.cat(outs)

    def __repr__(self) -> str:
        return f"LocalEncoder({self.net.arch}, input_shape={self.input_shape}, dim={self.embedding_dim})"


class QueryCounter:
    """Wraps any :class:`Encoder`, counting images and calls exactly, with an optional budget.

    A call whose images would exceed the budget is refused whole (nothing is charged) with
    :class:`~encoder_audit.errors.BudgetExhausted`. Thread-safe.

    >>> import torch
    >>> class Ones:
    ...     input_shape, embedding_dim = (1, 4, 4), 2
    ...     def embed(self, x): return torch.ones(len(x), 2)
    >>> q = QueryCounter(Ones(), budget=5)
    >>> _ = q.embed(torch.zeros(3, 1, 4, 4)); q.images, q.calls, q.remaining
    (3, 1, 2)
    """

    def __init__(self, encoder: Encoder, budget: int | None = None) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        self.encoder = encoder
        self.budget = budget
        self.images = 0
        self.calls = 0
        self._lock = threading.Lock()
        self.input_shape = encoder.input_shape
        self.embedding_dim = encoder.embedding_dim

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.images

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        n = int(images.shape[0])
        with self._lock:
            if self.budget is not None and self.images + n > self.budget:
                raise BudgetExhausted(self.images, self.budget, n)
            self.images += n
            self.calls += 1
        try:
            return self.encoder.embed(images)
        except BaseException:  # nothing was served: nothing is charged
            with self._lock:
                self.images -= n
                self.calls -= 1
            raise

    def usage(self) -> dict[str, int | None]:
        """``{"query_images", "api_calls", "budget"}``: the same keys every result reports."""
        return {"query_images": self.images, "api_calls": self.calls, "budget": self.budget}

    def __repr__(self) -> str:
        return f"QueryCounter({self.encoder!r}, images={self.images}, calls={self.calls}, budget={self.budget})"


def load_encoder(path: str | Path, *, device: str | torch.device = "cpu", batch_size: int = 512) -> LocalEncoder:
    """Load a checkpoint (``.safetensors`` + ``.json``) as a :class:`LocalEncoder`.

    Raises:
        CheckpointError: missing, tampered-with or pickled files.
    """
    from .models.checkpoint import load_encoder_net

    net, meta = load_encoder_net(path, device=device)
    return LocalEncoder(net, batch_size=batch_size, device=device, meta=meta)
