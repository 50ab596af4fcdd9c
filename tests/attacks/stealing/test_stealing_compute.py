"""Equal compute: exact steps with a partial last epoch, the two arms, Cont-Steal's step-dependent cost,
variant-labelled baselines, the covering blur kernel, the bank-scaled kNN and the registry capabilities."""

from __future__ import annotations

import math

import pytest
import torch

from encoder_audit.attacks.registry import attack_class
from encoder_audit.attacks.stealing import create_attack
from encoder_audit.attacks.stealing.compute import ComputeRule, plan_run, steps_within
from encoder_audit.attacks.stealing.evaluate import FeatureCache, StealEvalConfig, evaluate_stealing, scaled_k
from encoder_audit.attacks.stealing.views import stealing_views
from encoder_audit.augment import ops
from encoder_audit.augment.ops import covering_kernel_side
from encoder_audit.data import create_dataset
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


def test_steps_give_a_partial_last_epoch_and_exact_counts() -> None:
    attack = create_attack("conventional", **{**FAST, "steps": 5})  # 10 images, batches 4, 3, 3
    result = attack.extract(PixelVictim(), _queries(10))
    assert result.steps == 5 == attack.steps(10)
    assert result.forward_passes == 4 + 3 + 3 + 4 + 3 == attack.forward_passes(10)
    assert [round(h["fraction"], 2) for h in result.history] == [1.0, 0.7]


def test_contsteal_cost_is_the_images_of_its_steps() -> None:
    attack = create_attack("contsteal", **{**FAST, "steps": 4})  # batches 4, 3, 3, then 4
    counter = QueryCounter(PixelVictim())
    result = attack.extract(counter, _queries(10))
    assert attack.query_cost(10) == 14 == counter.images == result.usage["query_images"]
    assert result.usage["api_calls"] == attack.api_calls(10) == 2 + 1 + 1 + 2
    assert result.unique_images == 10  # 4 steps cover the whole set once
    short = create_attack("contsteal", **{**FAST, "steps": 2}).extract(PixelVictim(), _queries(10))
    assert short.unique_images == 7  # only the first two batches were ever sent


def test_forward_pass_rule_takes_the_most_steps_that_fit() -> None:
    assert steps_within(1_000, 250, 100, 2) == 6  # 168 + 166 + 166 per epoch
    rule = ComputeRule("forward_passes", 12_000)
    opts = {"surrogate": "cnn-small", "train_views": 2}
    rda = plan_run("rda", arm="images", level=2_500, rule=rule, options=opts)
    conv = plan_run("conventional", arm="images", level=2_500, rule=rule, options={"surrogate": "cnn-small"})
    assert rda.n == 250 and conv.n == 2_500
    assert rda.forward_passes <= 12_000 and conv.forward_passes <= 12_000
    assert conv.steps == 120 and rda.steps == steps_within(12_000, 250, 100, 2)
    with pytest.raises(ValueError):
        ComputeRule("forward_passes", 10).steps_for(100, 100, 1)


def test_equal_steps_at_equal_images_and_equal_n() -> None:
    rule = ComputeRule("steps", 50)
    common = {"surrogate": "cnn-small"}
    plans = {m: plan_run(m, arm="images", level=2_500, rule=rule, options=common) for m in ("rda", "conventional")}
    assert {p.steps for p in plans.values()} == {50}
    assert plans["rda"].n == 250 and plans["rda"].query_images == 2_500 and plans["conventional"].n == 2_500
    cs = plan_run("contsteal", arm="images", level=2_500, rule=rule, options=common)
    assert cs.query_images <= 2_500 and cs.steps == 50 and cs.n == 50  # 50 steps of 50 images
    big = plan_run("contsteal", arm="images", level=25_000, rule=rule, options=common, pool_size=10_000)
    assert big.query_images == 5_000 and big.n == 10_000  # 50 steps of 100: half an epoch of the pool
    n = {m: plan_run(m, arm="equal_n", level=2_500, rule=rule, options=common) for m in ("rda", "contsteal")}
    assert n["rda"].query_images == 25_000 and n["contsteal"].query_images == 5_000
    with pytest.raises(ValueError, match="buys"):
        plan_run("rda", arm="images", level=15, rule=rule, options=common)
    with pytest.raises(ValueError, match="arm"):
        plan_run("rda", arm="epochs", level=15, rule=rule)


def test_variant_dependent_defaults_are_labelled() -> None:
    assert create_attack("contsteal").config.tau == 0.07
    assert create_attack("contsteal", variant="official").config.tau == 0.5
    assert create_attack("contsteal", variant="official", temperature=0.2).config.tau == 0.2
    rda_se = create_attack("stolenencoder").config
    official = create_attack("stolenencoder", variant="official").config
    assert (rda_se.resolved_distance, rda_se.resolved_views) == ("mse", "rda-train")
    assert (official.resolved_distance, official.resolved_views) == ("l2", "stolenencoder")
    with pytest.raises(ValueError):
        create_attack("stolenencoder", variant="mine")


def test_capabilities_are_class_attributes() -> None:
    assert attack_class("stealing", "contsteal").queries_during_training
    assert not attack_class("stealing", "rda").queries_during_training and attack_class("stealing", "rda").uses_views
    for name in ("rda", "conventional", "stolenencoder", "contsteal"):
        cls = attack_class("stealing", name)
        assert not cls.needs_labels and not cls.white_box and cls.family == "stealing"


def test_blur_kernel_covers_three_sigma_and_matches_a_naive_blur() -> None:
    assert covering_kernel_side(2.0, 28) == 13 and covering_kernel_side(2.0, 8) == 7
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 14] = 1.0
    gen = stealing_views("none", blur_p=1.0, blur_sigma=(2.0, 2.0))
    y = gen(x, torch.Generator().manual_seed(0))[0, 0]
    offs = torch.arange(13, dtype=torch.float32) - 6  # naive reference: separable Gaussian, side 13
    k = torch.exp(-(offs**2) / 8.0)
    k = k / k.sum()
    assert torch.allclose(y[8:21, 8:21], k[:, None] * k[None, :], atol=1e-6)
    narrow = ops.gaussian_blur(x, p=1.0, sigma=(2.0, 2.0), generator=torch.Generator().manual_seed(0))[0, 0]
    assert float(narrow[14, 14]) > 2 * float(y[14, 14])  # the 3-px kernel truncates sigma = 2


def test_gray_prototypes_carry_more_than_one_query_on_a_one_channel_victim() -> None:
    from encoder_audit.attacks.stealing.rda import prototype_statistics
    from encoder_audit.models import create_encoder
    from encoder_audit.victim import LocalEncoder

    with torch.random.fork_rng():
        torch.manual_seed(0)
        victim = LocalEncoder(create_encoder("cnn-small", 1, 28))
    x = create_dataset("synthetic", n=64, size=28, seed=0).float_images()
    rda = prototype_statistics(victim, x, 10, "rda-prototype")
    gray = prototype_statistics(victim, x, 10, "rda-gray-prototype")
    one = prototype_statistics(victim, x, 1, "rda-gray-prototype")
    assert one["norm_median"] == pytest.approx(1.0)  # one view: a unit vector
    assert gray["norm_median"] < rda["norm_median"] and gray["cos_clean_median"] < rda["cos_clean_median"]


def test_scaled_k_and_both_fixed_ks_are_reported() -> None:
    assert scaled_k(2_000) == 20 and scaled_k(50_000) == 200 and scaled_k(100) == 5
    target = PixelVictim(dim=16, size=8)
    ds = create_dataset("synthetic", n=120, size=8, seed=3)
    ev = evaluate_stealing(target, target, {"s": (ds, ds)}, StealEvalConfig(max_train=100, max_test=50))
    row = ev["s"]
    assert row["surrogate"]["knn_k"] == 5 and {"knn@20", "knn@200"} <= set(row["surrogate"])
    assert row["prediction_agreement"] == 1.0 and row["target_head_agreement"] == 1.0  # a perfect copy
    assert math.isclose(row["cosine_centered"], 1.0, abs_tol=1e-5) and row["n_train"] == 100


def test_random_init_is_built_once_per_cache() -> None:
    cache = FeatureCache()
    a = cache.random_init("cnn-small", (1, 8, 8), mean=[0.5], std=[0.25])
    b = cache.random_init("cnn-small", (1, 8, 8), mean=(0.5000001,), std=(0.25,))
    assert a is b
