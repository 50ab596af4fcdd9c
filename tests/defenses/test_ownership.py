"""Dataset inference: a suspect that memorised the private set is flagged, an independent one is not."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.defenses.ownership import OwnershipConfig, dataset_inference


class RandomProjection:
    def __init__(self, shape) -> None:
        self.input_shape = shape
        self.embedding_dim = 16
        self.w = torch.randn(int(torch.tensor(shape).prod()), 16, generator=torch.Generator().manual_seed(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1) @ self.w / 4)


class Memorizer(RandomProjection):
    """An overfit encoder: images it trained on (the bank) collapse onto a few tight clusters."""

    def __init__(self, bank: torch.Tensor) -> None:
        super().__init__(tuple(bank.shape[1:]))
        self.bank = bank.flatten(1)
        self.centres = 3 * torch.randn(5, 16, generator=torch.Generator().manual_seed(2))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x.flatten(1), self.bank)
        dmin, idx = d.min(dim=1)
        strength = torch.exp(-dmin / 0.5)[:, None]  # 1 for memorised images, ~0 for unseen ones
        return super().embed(x) + strength * self.centres[idx % 5]


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
