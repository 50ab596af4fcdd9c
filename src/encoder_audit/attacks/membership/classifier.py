"""Training of the small binary inference classifiers (member = 1) shared by the learned attacks.

Inputs are standardised with the shadow training set's statistics (the similarities of an encoder
cluster in a narrow band such as 0.93-0.97; standardising lets one optimiser setting work for every
encoder and similarity). Full-batch-free mini-batch Adam with BCE-with-logits, seeded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BinaryTrainConfig", "Standardizer", "predict_logits", "train_binary"]


@dataclass(frozen=True)
class BinaryTrainConfig:
    """Optimiser settings of an inference classifier.

    Attributes:
        epochs: passes over the shadow features (replication code of EncoderMI-V: 300).
        batch_size: mini-batch (replication: 100).
        lr: Adam learning rate.
        weight_decay: L2 penalty (replication: 1e-6 for V).
    """

    epochs: int = 300
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-6

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("epochs and batch_size must be >= 1, lr > 0, weight_decay >= 0")


class Standardizer:
    """Per-feature (or global, for sets) mean / std from training data."""

    def __init__(self, x: torch.Tensor, *, per_feature: bool = True) -> None:
        if per_feature:
            self.mean, self.std = x.mean(0, keepdim=True), x.std(0, keepdim=True)
        else:
            self.mean, self.std = x.mean(), x.std()
        self.std = torch.clamp(torch.nan_to_num(self.std, nan=1.0), min=1e-6)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny-network training on one thread (threads only add sync overhead there), then restore."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_binary(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: BinaryTrainConfig, *, seed: int = 0
) -> nn.Module:
    """Fit ``model`` (outputs one logit per row) to labels ``y`` in {0, 1} with BCE."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError("features and labels must be non-empty and of equal length")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    yf = y.float()
    model.train()
    with single_thread():
        _loop(model, opt, x, yf, config, g)
    return model.eval()


def _loop(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    yf: torch.Tensor,
    config: BinaryTrainConfig,
    g: torch.Generator,
) -> None:
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = F.binary_cross_entropy_with_logits(model(x[idx]).view(-1), yf[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Logits of ``model`` as a float64 array (the membership score)."""
    model.eval()
    outs = [model(x[i : i + batch_size]).view(-1) for i in range(0, len(x), batch_size)]
    return torch.cat(outs).double().numpy() if outs else np.zeros(0)
