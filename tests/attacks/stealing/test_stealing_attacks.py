"""Stealing attacks: exact query accounting, index-keyed prototypes, dimension matching, and a
behavioural check that RDA really steals (beats random init and a broken, shuffled-prototype RDA)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.attacks.stealing import STEALING_ATTACKS, create_attack
from encoder_audit.attacks.stealing.evaluate import fidelity
from encoder_audit.attacks.stealing.rda import RDAAttack
from encoder_audit.data import create_dataset
from encoder_audit.errors import BudgetExhausted
from encoder_audit.victim import QueryCounter


class PixelVictim:
    """A deterministic 'encoder': a fixed random projection of the pixels, then ReLU."""

    def __init__(self, dim: int = 16, size: int = 8) -> None:
        self.input_shape = (1, size, size)
        self.embedding_dim = dim
        self.w = torch.randn(size * size, dim, generator=torch.Generator().manual_seed(7))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return torch.relu(images.flatten(1) @ self.w) + 0.01


def _queries(n: int = 10, size: int = 8, seed: int = 0):
    return create_dataset("synthetic", n=n, size=size, seed=seed)


FAST = {"epochs": 2, "batch_size": 4, "query_batch_size": 3, "surrogate": "cnn-small"}


@pytest.mark.parametrize("name", ["conventional", "stolenencoder", "contsteal", "rda"])
def test_exact_query_counts(name: str) -> None:
    extra = {"prototype_views": 3, "train_views": 2} if name == "rda" else {}
    attack = create_attack(name, **FAST, **extra)
    n = 10
    counter = QueryCounter(PixelVictim())
    result = attack.extract(counter, _queries(n))
    want = {"conventional": n, "stolenencoder": n, "contsteal": n * 2, "rda": n * 3}[name]
    assert attack.query_cost(n) == attack.expected_queries(n) == want
    assert result.usage["query_images"] == counter.images == want
    # 10 images in requests of 3 -> 4 requests per pass; Cont-Steal: 3 batches (4, 3, 3) -> 2+1+1 per epoch
    calls = {"conventional": 4, "stolenencoder": 4, "contsteal": 2 * 4, "rda": 3 * 4}[name]
    assert result.usage["api_calls"] == counter.calls == attack.api_calls(n) == calls
    assert result.unique_images == n
    assert set(result.summary()) >= {"query_images", "api_calls", "budget", "unique_images"}


def test_budget_refused_up_front_and_enforced() -> None:
    attack = create_attack("rda", **FAST, prototype_views=3, train_views=1)
    with pytest.raises(ValueError, match="budget"):
        attack.extract(PixelVictim(), _queries(10), budget=29)
    r = attack.extract(PixelVictim(), _queries(10), budget=30)
    assert r.usage == {"query_images": 30, "api_calls": 12, "budget": 30}
    # a budget enforced further away (e.g. by the service) stops Cont-Steal mid-training, whole calls only
    server_side = QueryCounter(PixelVictim(), budget=15)
    client = QueryCounter(server_side)
    with pytest.raises(BudgetExhausted):
        create_attack("contsteal", **FAST).extract(client, _queries(10))
    assert server_side.images <= 15


def test_prototypes_keyed_by_index_not_label() -> None:
    ds = _queries(12)
    same_label = ds.subset(range(12))
    same_label.labels = torch.zeros(12, dtype=torch.long)  # all one class: must not collapse
    victim = QueryCounter(PixelVictim())
    attack = create_attack("rda", **FAST, prototype_views=1, prototype_recipe="none")
    attack._counter, attack._dim = victim, victim.embedding_dim
    images = same_label.float_images()
    protos = attack.prepare(images, torch.Generator().manual_seed(0))
    want = F.normalize(PixelVictim().embed(images), dim=1)
    assert torch.allclose(protos, want, atol=1e-6)  # row i is image i
    assert torch.unique(protos, dim=0).shape[0] == 12
    # permuting the query set permutes the prototypes the same way
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    protos_perm = attack.prepare(images[perm], torch.Generator().manual_seed(0))
    assert torch.allclose(protos_perm, protos[perm], atol=1e-6)


def test_prototype_norms_at_most_one_with_rda_views() -> None:
    attack = create_attack("rda", **FAST)  # P = 10, rda-prototype views
    victim = QueryCounter(PixelVictim())
    attack._counter, attack._dim = victim, victim.embedding_dim
    protos = attack.prepare(_queries(16).float_images(), torch.Generator().manual_seed(0))
    norms = protos.norm(dim=1)
    assert protos.shape == (16, 16)
    assert bool((norms <= 1 + 1e-6).all()) and bool((norms < 0.9999).any())
    assert victim.images == 160 and victim.calls == 10 * math.ceil(16 / 3)


def test_dimension_mismatch_pooled_or_refused() -> None:
    victim = PixelVictim(dim=256)
    r = create_attack("conventional", **FAST).extract(victim, _queries(6))
    assert r.victim_dim == 256 and r.surrogate.feature_dim == 128
    with pytest.raises(ValueError, match="dim_match"):
        create_attack("conventional", **FAST, dim_match="none").extract(victim, _queries(6))


def test_registry_and_config_validation() -> None:
    assert STEALING_ATTACKS.names() == ["contsteal", "conventional", "rda", "stolenencoder"]
    with pytest.raises(ValueError):
        create_attack("rda", temperature=0)
    with pytest.raises(ValueError):
        create_attack("rda", nonsense=1)
    with pytest.raises(ValueError):
        create_attack("contsteal", batch_size=1)
    assert create_attack("rda").config.prototype_views == 10
    assert create_attack("rda").config.train_views == 5


class ShuffledRDA(RDAAttack):
    """A broken RDA: prototypes assigned to the wrong images (what a label-keyed bank degrades towards)."""

    def prepare(self, images, generator):
        protos = super().prepare(images, generator)
        return protos[torch.randperm(len(protos), generator=torch.Generator().manual_seed(3))]


def test_rda_steals_tiny_target_beyond_random_and_broken() -> None:
    # 8x8 target = fixed random ReLU projection (128-d); mild (flip/jitter) views keep the toy learnable.
    size = 8
    target = PixelVictim(dim=128, size=size)
    queries = _queries(128, size=size, seed=1)
    held_out = _queries(200, size=size, seed=2).float_images()
    cfg = {
        "epochs": 15,
        "batch_size": 32,
        "lr": 3e-3,
        "surrogate": "cnn-small",
        "prototype_views": 4,
        "train_views": 1,
        "prototype_recipe": "stolenencoder",
        "train_recipe": "stolenencoder",
        "seed": 0,
    }
    good = create_attack("rda", **cfg).extract(target, queries)
    broken = ShuffledRDA(create_attack("rda", **cfg).config).extract(target, queries)
    rand = create_attack("rda", **cfg).build_surrogate(target.input_shape, queries).eval()
    t = target.embed(held_out)
    with torch.no_grad():
        f_good = fidelity(good.surrogate(held_out), t)["cosine_centered"]
        f_broken = fidelity(broken.surrogate(held_out), t)["cosine_centered"]
        f_rand = fidelity(rand(held_out), t)["cosine_centered"]
    # measured (2 cores, seed 0): good ~0.23, broken ~0.04, random ~0.04
    assert f_good > f_rand + 0.12, (f_good, f_rand)
    assert f_good > f_broken + 0.12, (f_good, f_broken)
