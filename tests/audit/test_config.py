"""The audit's one config tree: every preset resolves, overrides reach into it, a run's config.yaml repeats it."""

from __future__ import annotations

import pytest
import yaml

from encoder_audit.audit import PRESETS, resolve_config
from encoder_audit.audit.config import AuditConfig, describe_plan, preset_config


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_of_every_family_resolves_and_validates(preset: str) -> None:
    config = preset_config(preset)
    assert config.preset == preset
    for part in ("data", "default_victim", "stealing", "membership", "poisoning", "protection"):
        assert getattr(config, part) is not None
    assert resolve_config(preset) == config
    plan = describe_plan(config)
    assert [stage for stage, _ in plan] == ["victim", "stealing", "membership", "poisoning", "protection"]


def test_paper_is_cifar10_resnet18_and_smoke_is_small() -> None:
    paper, smoke = preset_config("paper"), preset_config("smoke")
    assert paper.data.dataset == "cifar10" and paper.default_victim.encoder == "resnet18"
    assert paper.stealing.surrogate == "resnet18"
    assert smoke.data.members < preset_config("quick").data.members


def test_dotted_overrides_reach_into_the_tree_with_types() -> None:
    c = resolve_config(
        "quick", overrides=["stealing.budgets=[500,5000]", "data.members=1000", "seeds=[0,1]", "device=cpu"]
    )
    assert c.stealing.budgets == (500, 5000) and c.data.members == 1000 and c.seeds == (0, 1)
    assert c.device == "cpu"
    assert c.membership == preset_config("quick").membership  # untouched parts keep the preset


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stealing.nope=1", "stealing.nope"),
        ("data.members=0", "members"),
        ("stealing.budgets=[0]", "budgets"),
        ("seeds=[1,1]", "unique"),
        ("device=tpu", "device"),
        ("sections=[stealing,mind-reading]", "mind-reading"),
        ("preset=huge", "preset"),
    ],
)
def test_bad_values_are_refused_with_their_path(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_config(overrides=[override])


def test_a_saved_config_resolves_to_the_same_config() -> None:
    c = resolve_config("smoke", values={"victim": "runs/x/encoder.safetensors"}, overrides=["stealing.budgets=[300]"])
    text = yaml.safe_dump(c.to_dict(), sort_keys=False)
    again = resolve_config(file_values=yaml.safe_load(text))
    assert again == c and again.victim == "runs/x/encoder.safetensors" and again.preset == "smoke"


def test_the_preset_flag_wins_over_the_files_preset_and_the_file_over_the_preset() -> None:
    c = resolve_config("quick", file_values={"preset": "smoke", "data": {"members": 77}})
    assert c.preset == "quick" and c.data.members == 77
    assert resolve_config(file_values={"preset": "smoke"}).preset == "smoke"


def test_seed_property_is_the_first_seed() -> None:
    assert AuditConfig(seeds=(3, 1)).seed == 3
    with pytest.raises(ValueError, match="at least one"):
        AuditConfig(seeds=())


def test_the_shipped_example_config_resolves() -> None:
    from pathlib import Path

    from encoder_audit.config import load_yaml

    path = Path(__file__).resolve().parents[2] / "configs" / "audit.yaml"
    config = resolve_config(file_values=load_yaml(path))
    assert config.preset == "quick" and config.data.members == 2000
