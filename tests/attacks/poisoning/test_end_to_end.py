"""End to end: a tiny CLIP-style training where the patch backdoor succeeds with poisons and not without.

Same data, seed, trigger and training for both runs; only the poisoned pairs differ, so a broken attack
(no trigger pasted, wrong captions, poisons not trained on, wrong ASR) fails the test.
"""

from __future__ import annotations

import json

import pytest

from encoder_audit.attacks.poisoning.experiment import ClipExperimentConfig, run_poisoned_clip
from encoder_audit.attacks.poisoning.trigger import Trigger
from encoder_audit.data import create_dataset
from encoder_audit.data.captions import make_paired


def _runs(n: int, size: int, poisons: int, epochs: int, tmp_path):  # type: ignore[no-untyped-def]
    train = create_dataset("synthetic", "train", n=n, classes=4, size=size)
    test = create_dataset("synthetic", "test", n=300, classes=4, size=size)
    cfg = ClipExperimentConfig(
        train_size=0,
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        image_width=8,
        targets=2,
        eval_images=300,
        backdoor_target=0,
        trigger=Trigger(size=6, placement="random"),
        mode="add",  # the calibration below was measured with the poisons added as copies
    )
    clean = make_paired(train, seed=0)
    kw = {"config": cfg, "seed": 0, "targeted_poisons": 0}
    without = run_poisoned_clip(clean, test, backdoor_poisons=0, out_dir=tmp_path / "m0", **kw)
    with_p = run_poisoned_clip(clean, test, backdoor_poisons=poisons, out_dir=tmp_path / "m", **kw)
    return without.metrics, with_p.metrics


def _check(without: dict, with_p: dict) -> None:
    assert with_p["backdoor_asr"] >= 0.6, with_p
    assert with_p["backdoor_asr"] >= without["backdoor_asr"] + 0.5, (without, with_p)
    assert with_p["backdoor_asr"] >= with_p["backdoor_baseline_target_rate"] + 0.4  # the trigger, not confusion
    assert with_p["backdoor_zscore"] > without["backdoor_zscore"]
    assert with_p["clean_zeroshot_top1"] >= 0.6  # the model still works on clean inputs


@pytest.mark.slow  # two 240-step trainings: over 10 minutes on 2 loaded cores
def test_backdoor_succeeds_only_with_poisons(tmp_path) -> None:
    # Calibrated: with these settings a standalone run measured ASR 0.956 (no-trigger rate 0.147, z 1.30,
    # clean 0.887) with 64 poisons and ASR 0.000 (clean 0.990) without.
    without, with_p = _runs(n=384, size=28, poisons=64, epochs=40, tmp_path=tmp_path)
    _check(without, with_p)
    manifest = json.loads((tmp_path / "m" / "manifest_backdoor.json").read_text())
    assert manifest["num_poisons"] == 64 and len(manifest["positions"]) == 64
    assert json.loads((tmp_path / "m0" / "manifest_backdoor.json").read_text())["num_poisons"] == 0
