"""UC must make a trainer's clean test accuracy clearly lower than training on clean data (same seed/schedule).

A tiny 3-class task whose class signal is a faint low-frequency pattern under noise; the protector's
surrogate responds to those patterns (as a pre-trained encoder responds to semantics), so its K-means
clusters follow the classes. A no-op or random-noise "protection" leaves the trainer's accuracy high and
fails the margin; UC's cluster-wise shift toward another cluster's centre must drive it down.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from encoder_audit.attacks.unlearnable import UCConfig, create_protection
from encoder_audit.attacks.unlearnable.evaluation import TrainerConfig, train_classifier
from encoder_audit.data.base import DatasetInfo, ImageDataset

SIZE = 16


def _templates() -> torch.Tensor:
    c = torch.linspace(-math.pi, math.pi, SIZE)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([torch.cos(2 * yy), torch.cos(2 * xx), torch.cos(xx) * torch.cos(yy)])  # flip-symmetric


def _task(n: int, seed: int) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = 0.5 + (14 / 255) * _templates()[labels] + 0.08 * torch.randn(n, SIZE, SIZE, generator=g)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)[:, None]
    info = DatasetInfo("toy", 1, SIZE, 3, mean=(0.5,), std=(0.1,))
    return ImageDataset(images, labels, info, split="train" if seed == 0 else "test")


class TemplateSurrogate(nn.Module):
    """A fixed encoder that responds to the three patterns (stands in for a pre-trained surrogate)."""

    input_shape = (1, SIZE, SIZE)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", _templates().flatten(1) / SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - 0.5) @ self.w.T * 10

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self(x)

    embedding_dim = 3


@pytest.fixture(scope="module")
def task():
    return _task(240, 0), _task(240, 1)


def _trainer_accuracy(train: ImageDataset, test: ImageDataset) -> float:
    cfg = TrainerConfig(epochs=4, batch_size=40, lr=3e-3, seed=0)
    return train_classifier(train, train.labels, test, test.labels, 3, cfg).final


def test_uc_lowers_trainer_accuracy_below_clean_and_random(task):
    train, test = task
    clean = _trainer_accuracy(train, test)
    cfg = UCConfig(clusters=3, epochs=12, batch_size=40, lr=1e-2, ngf=8, n_blocks=1, train_on="members", seed=0)
    uc = create_protection("uc", cfg, surrogate=TemplateSurrogate()).protect(train)
    rnd = create_protection("random", {"eps": 16 / 255}).protect(train)
    acc_uc = _trainer_accuracy(uc.dataset, test)
    acc_rnd = _trainer_accuracy(rnd.dataset, test)
    assert clean > 0.8, clean
    assert acc_rnd > clean - 0.15, (acc_rnd, clean)  # a bounded perturbation alone does not protect
    assert acc_uc < clean - 0.3, (acc_uc, clean)  # ... UC does
    assert (uc.dataset.images.int() - train.images.int()).abs().max() <= 16
