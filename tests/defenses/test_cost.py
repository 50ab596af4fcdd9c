"""defense_cost: the honest user's downstream accuracy under each defense, against a no-op baseline."""

from __future__ import annotations

import torch

from encoder_audit.defenses.cost import defense_cost
from encoder_audit.evaluate import EvalConfig
from encoder_audit.victim import LocalEncoder


def test_defense_cost_orders_defenses_by_damage(synthetic_train, synthetic_test, tiny_encoder):
    torch.manual_seed(0)
    enc = LocalEncoder(tiny_encoder)
    cfg = EvalConfig(knn_k=20, max_train=160, max_test=80)
    out = defense_cost(enc, ["round:decimals=6", "noise:sigma=50", ["round:decimals=6", "topk:k=4"]], synthetic_train,
                       synthetic_test, cfg)  # fmt: skip
    rows = {r["defense"]: r for r in out["rows"]}
    assert set(rows) == {"none", "round:decimals=6", "noise:sigma=50", "round:decimals=6 + topk:k=4"}
    clean = rows["none"]
    assert clean["knn"] > 0.3  # random-init cnn-small separates the synthetic classes
    assert abs(rows["round:decimals=6"]["knn"] - clean["knn"]) < 0.02 and rows["round:decimals=6"]["cosine"] > 0.999
    # huge noise destroys the features: near chance, far below clean
    assert rows["noise:sigma=50"]["knn_drop"] > 0.15 and rows["noise:sigma=50"]["cosine"] < 0.2
    assert rows["round:decimals=6 + topk:k=4"]["cosine"] < 0.99
    assert out["n_train"] == 160 and out["n_test"] == 80
