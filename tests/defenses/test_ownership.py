"""Dataset inference: a suspect that memorised the private set is flagged, an independent one is not."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.defenses.ownership import OwnershipConfig, dataset_inference


class Memorizer:
    """Embeds an image by its soft similarity to a memorised image bank (an overfit encoder)."""

    def __init__(self, bank: torch.Tensor, bandwidth: float = 2.0) -> None:
        self.bank = bank.flatten(1)
        self.bandwidth = bandwidth
        self.input_shape = tuple(bank.shape[1:])
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(self.bank.shape[0], 16, generator=g)
        self.embedding_dim = 16

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x.flatten(1), self.bank)
        return torch.softmax(-d / self.bandwidth * 10, dim=1) @ self.proj


class RandomProjection:
    def __init__(self, shape) -> None:
        self.input_shape = shape
        self.embedding_dim = 16
        self.w = torch.randn(int(torch.tensor(shape).prod()), 16, generator=torch.Generator().manual_seed(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1) @ self.w / 4)


def test_dataset_inference_flags_memorizer_not_independent() -> None:
    private = create_dataset("synthetic", n=300, size=8, seed=0)
    public = create_dataset("synthetic", n=150, size=8, seed=9)
    fit, held = private.subset(range(150)), private.subset(range(150, 300))
    cfg = OwnershipConfig(n_components=5, max_iter=200)
    owner = dataset_inference(Memorizer(private.float_images()), fit, held, public, cfg)
    other = dataset_inference(RandomProjection((1, 8, 8)), fit, held, public, cfg)
    assert owner.owned and owner.p_value < 1e-3 and owner.mean_private > owner.mean_public, owner
    assert not other.owned, other


def test_dataset_inference_validates_sizes() -> None:
    ds = create_dataset("synthetic", n=20, size=8)
    with pytest.raises(ValueError):
        dataset_inference(RandomProjection((1, 8, 8)), ds, ds, ds, OwnershipConfig())
    with pytest.raises(ValueError):
        OwnershipConfig(alpha=2)
