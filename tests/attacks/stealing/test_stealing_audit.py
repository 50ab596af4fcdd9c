"""The audit section contract: the keys the main audit renders, on a tiny synthetic victim."""

from __future__ import annotations

import json

import pytest
import torch

from encoder_audit.attacks.stealing.audit import run_stealing_audit
from encoder_audit.attacks.stealing.presets import StealingPreset
from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder


@pytest.mark.slow  # ~17 s on a loaded 2-core machine; run with --runslow
def test_run_stealing_audit_contract(tmp_path) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        victim = LocalEncoder(create_encoder("cnn-small", 1, 8))
    pool = create_dataset("synthetic", n=64, size=8, seed=1)
    ev = {
        "synthetic": (
            create_dataset("synthetic", n=60, size=8, seed=2),
            create_dataset("synthetic", n=30, size=8, seed=3),
        )
    }
    tiny = StealingPreset("cnn-small", train_images=60, epochs=1, max_epochs=2, options={"rda": {"train_views": 1}},
                          eval_max_train=60, eval_max_test=30)  # fmt: skip
    out = run_stealing_audit(victim, pool, ev, tmp_path, preset=tiny, budgets=(20, 40), defenses=("round:decimals=1",))
    assert set(out) >= {"headline", "verdict", "tables", "figures", "costs", "config", "caveats"}
    assert out["verdict"] in {"high", "medium", "low"}
    assert out["costs"]["query_images"] == 20 + 20 + 40 + 40 + 40  # rda + conventional at 2 budgets, 1 defended rda
    for t in out["tables"]:
        assert set(t) == {"title", "columns", "rows", "note"} and all(len(r) == len(t["columns"]) for r in t["rows"])
    assert all((tmp_path / "stealing_budget.png").is_file() for _ in out["figures"])
    json.dumps(out)  # serialisable
    rows = json.loads((tmp_path / "stealing_rows.json").read_text())
    assert rows["defense_rows"][0]["defense"] == "round:decimals=1"
