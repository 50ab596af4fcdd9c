"""The protector's shadow classifier for label-based baselines (EM, TAP): a fresh registry encoder + linear head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...data.base import DatasetInfo
from ...models.base import create_encoder
from ...train.supervised import Supervised, SupervisedConfig

__all__ = ["make_classifier", "train_steps"]


def make_classifier(info: DatasetInfo, num_classes: int, *, arch: str = "cnn-small", seed: int = 0) -> Supervised:
    """A randomly initialised classifier (encoder from the registry + linear layer), seeded."""
    torch.manual_seed(seed)
    net = create_encoder(arch, in_channels=info.channels, image_size=info.image_size, mean=info.mean, std=info.std)
    return Supervised(net, SupervisedConfig(num_classes=max(num_classes, 2), augment=False))


def train_steps(
    model: Supervised,
    optimizer: torch.optim.Optimizer,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """One SGD step per ``(images in [0,1], labels)`` batch; returns the mean loss."""
    model.train()
    total = 0.0
    for x, y in batches:
        loss = F.cross_entropy(model.logits(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
    model.eval()
    return total / max(len(batches), 1)
