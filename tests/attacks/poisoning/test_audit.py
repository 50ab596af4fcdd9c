"""The audit contract of run_poisoning_audit, on a tiny preset."""

from __future__ import annotations

import json

import pytest

from encoder_audit.attacks.poisoning import audit
from encoder_audit.attacks.poisoning.badencoder import BadEncoderConfig
from encoder_audit.attacks.poisoning.experiment import ClipExperimentConfig
from encoder_audit.attacks.poisoning.trigger import Trigger
from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder


def test_audit_contract(tmp_path, monkeypatch) -> None:
    tiny = {
        "experiment": ClipExperimentConfig(
            train_size=96,
            epochs=1,
            batch_size=32,
            image_width=8,
            text_layers=0,
            targets=2,
            eval_images=40,
            trigger=Trigger(size=3),
        ),
        "levels": [(0, 0), (2, 8)],
        "badencoder": BadEncoderConfig(
            shadow_size=64, epochs=1, batch_size=32, trigger=Trigger(size=3, placement="fixed")
        ),
    }
    monkeypatch.setitem(audit.PRESETS, "tiny", tiny)
    train = create_dataset("synthetic", "train", n=120, classes=4, size=16)
    test = create_dataset("synthetic", "test", n=60, classes=4, size=16)
    victim = LocalEncoder(create_encoder("cnn-small", 1, 16, width=8))
    out = audit.run_poisoning_audit(train, test, tmp_path, preset="tiny", seed=0, victim=victim)
    json.dumps(out)  # JSON-serialisable
    assert out["verdict"] in {"high", "medium", "low"} and isinstance(out["headline"], str)
    assert {"tables", "figures", "costs", "config", "caveats"} <= set(out)
    assert len(out["tables"][0]["rows"]) == 2 and out["badencoder"] is not None
    for fig in out["figures"]:
        assert (tmp_path / fig["path"].split("/")[-1]).is_file()
    assert (tmp_path / "manifests" / "seed0_k2_m8" / "manifest_backdoor.json").is_file()
    assert out["costs"]["trainings"] == 2
    with pytest.raises(ValueError):
        audit.run_poisoning_audit(train, test, tmp_path, preset="nope")
