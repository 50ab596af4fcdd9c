"""The membership stage on the audit core: runs on a real small victim, round-trips, builds its section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from encoder_audit.audit.config import PRESETS, resolve_config
from encoder_audit.audit.family import get_family, result_from_json, result_to_json
from encoder_audit.audit.membership import AttackScore, MembershipResult, victim_views
from encoder_audit.audit.membership_config import MembershipAuditConfig
from encoder_audit.audit.plan import prepare_data
from encoder_audit.audit.runner import stage_context
from encoder_audit.audit.sections.membership import build_membership_section, strongest_attack
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves_and_validates(preset: str) -> None:
    config = resolve_config(preset).membership
    assert isinstance(config, MembershipAuditConfig)
    assert config.nonmembers >= 100  # TPR at 1% FPR is resolvable
    assert config.positive_control is not None


def test_config_is_validated() -> None:
    for bad in ({"n_views": 1}, {"view_draws": 0}, {"fire_auc": 0.4}, {"outputs": "q"}, {"attacks": ("nope",)}):
        with pytest.raises(ValueError):
            MembershipAuditConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        resolve_config("smoke", overrides=["membership.views=not-a-recipe"])


def test_smoke_stage_on_a_real_victim_round_trips_and_builds(tmp_path: Path) -> None:
    config = resolve_config("smoke", overrides=["device=cpu"])
    data = prepare_data(config.data, seed=0, manifest_path=tmp_path / "splits.json")
    torch.manual_seed(0)
    victim = LocalEncoder(create_encoder("cnn-small", 1, 28))  # random init: it memorised nothing
    ctx = stage_context(config, tmp_path, "membership", run_seed=0, data=data, victim=lambda: victim)
    family = get_family("membership")
    assert family.skip is not None and family.skip(ctx) is not None  # members of a given victim are unknown
    result = family.run(ctx, config.membership)
    back = result_from_json(MembershipResult, result_to_json(result))
    assert back == result
    section = family.build(back)
    assert section.key == "membership"
    assert "AUC" in section.headline.render() and "{" not in section.headline.render()
    assert "high if AUC >=" in section.verdict.rule
    assert {c.kind for c in section.verdict.controls} == {"positive", "negative"}
    for table in section.tables:
        assert any(c.is_key for c in table.columns)
    victim_rows = [r for r in result.rows if r.target == "victim"]
    assert {r.attack for r in victim_rows} == set(result.attacks)
    m = config.membership
    assert all(r.nonmembers == m.nonmembers and r.members == m.members for r in victim_rows)
    assert all(0 <= r.auc_lo <= r.auc <= r.auc_hi <= 1 for r in result.rows)
    # the random-init victim leaks nothing: the null split and the victim sit near chance
    t = result.find("encodermi-t")
    assert t is not None and abs(t.auc - 0.5) < 0.15
    assert all(isinstance(v, (int, float)) for v in section.costs.values())
    for fig in section.figures:
        assert (tmp_path / fig.path).is_file()
    assert result.views == "simclr" and "default" in result.views_source  # a bare net records no views


def _row(
    attack: str, target: str, auc: float, lo: float, hi: float, output: str = "h", tpr: float | None = None
) -> AttackScore:
    return AttackScore(attack, target, output, auc, lo, hi, None, 0.6, 0.6, 0.5, 0.5, tpr, None, 32, 500, 30)


def _result(rows: list[AttackScore], outputs: tuple[str, ...] = ("h",)) -> MembershipResult:
    return MembershipResult(
        victim_label="v",
        rows=rows,
        attacks=["encodermi-t", "encodermi-v", "blind"],
        diagnostics=["blind"],
        outputs=list(outputs),
        head_kind="mlp" if "z" in outputs else None,
        head_source="saved beside the victim's checkpoint" if "z" in outputs else "",
        views="simclr",
        views_source="test",
        n_views=10,
        view_draws=3,
        shadow={},
        control={"members": 32},
        fire_auc=0.6,
        bootstrap=100,
        query_images=0,
        api_calls=0,
        wall_seconds=1.0,
        shadow_seconds=0.5,
        control_seconds=0.5,
    )


CONTROLS = [
    _row("encodermi-t", "positive control", 0.85, 0.78, 0.9),
    _row("encodermi-v", "positive control", 0.80, 0.72, 0.88),
    _row("encodermi-t", "negative control", 0.52, 0.42, 0.61),
    _row("blind", "victim", 0.5, 0.41, 0.6),
]


def test_verdict_high_when_the_victim_leaks_and_the_strongest_is_chosen_on_the_control() -> None:
    rows = [_row("encodermi-t", "victim", 0.8, 0.72, 0.87), _row("encodermi-v", "victim", 0.95, 0.9, 0.99), *CONTROLS]
    result = _result(rows)
    assert strongest_attack(result)[0] == "encodermi-t"  # not encodermi-v, best on the victim's labels
    section = build_membership_section(result)
    assert section.verdict.checked().level == "high"
    assert section.verdict.controls_passed


def test_verdict_low_only_with_a_firing_positive_control() -> None:
    rows = [_row("encodermi-t", "victim", 0.52, 0.44, 0.6), _row("encodermi-v", "victim", 0.5, 0.42, 0.58), *CONTROLS]
    assert build_membership_section(_result(rows)).verdict.checked().level == "low"
    weak = [dataclasses.replace(r, auc=0.55, auc_lo=0.45) if r.target == "positive control" else r for r in rows]
    section = build_membership_section(_result(weak))
    assert section.verdict.checked().level == "inconclusive"


def test_the_head_output_counts_and_is_reported() -> None:
    rows = [
        _row("encodermi-t", "victim", 0.55, 0.46, 0.63),
        _row("encodermi-t", "victim", 0.82, 0.75, 0.9, "z"),
        *CONTROLS,
    ]
    result = _result(rows, ("h", "z"))
    section = build_membership_section(result)
    assert section.verdict.checked().level == "high"
    text = section.headline.render()
    assert "projection head's output at AUC 0.820" in text and "served features at AUC 0.550" in text
    assert any(t.title.startswith("Where the leak is") for t in section.tables)
    assert section.todo.defenses is not None


def test_a_firing_null_split_or_blind_baseline_makes_it_inconclusive() -> None:
    base = [_row("encodermi-t", "victim", 0.8, 0.72, 0.87), *CONTROLS]
    bad_null = [dataclasses.replace(r, auc=0.7, auc_lo=0.6) if r.target == "negative control" else r for r in base]
    assert build_membership_section(_result(bad_null)).verdict.level == "inconclusive"
    bad_blind = [dataclasses.replace(r, auc=0.7, auc_lo=0.6) if r.attack == "blind" else r for r in base]
    assert build_membership_section(_result(bad_blind)).verdict.level == "inconclusive"


def test_views_default_to_the_victims_training_augmentation() -> None:
    net = create_encoder("cnn-small", 1, 28)
    assert victim_views(LocalEncoder(net, meta={"training": {"views": "moco-v1"}}))[0] == "moco-v1"
    assert victim_views(LocalEncoder(net, meta={"training": {"method": "simclr"}}))[0] == "simclr"
    assert victim_views(LocalEncoder(net), "encodermi") == ("encodermi", "chosen in the configuration")


def test_a_service_that_serves_its_head_is_attacked_on_h_and_z(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    from encoder_audit.attacks.membership.targets import head_encoder
    from encoder_audit.audit.membership import audit_membership
    from encoder_audit.models.heads import create_head
    from encoder_audit.service.client import RemoteEncoder
    from encoder_audit.service.testing import serve_in_background

    config = resolve_config("smoke").membership
    data = prepare_data(resolve_config("smoke").data, seed=0)
    members, nonmembers, shadow = data.members, data.nonmembers, data.shadow
    torch.manual_seed(0)
    net = create_encoder("cnn-small", 1, 28)
    head = create_head("mlp", net.feature_dim, 32).eval()
    with serve_in_background(LocalEncoder(net), head=(head, "mlp")) as (url, key):
        remote = RemoteEncoder(url, key)
        z_remote = remote.with_output("z")
        assert remote.outputs == ["h", "z"] and z_remote.embedding_dim == 32
        x = members.float_images()
        expected = LocalEncoder(head_encoder(net, head)).embed(x)
        torch.testing.assert_close(z_remote.embed(x), expected, atol=1e-5, rtol=1e-5)
        assert z_remote.images == len(x) and remote.images == 0  # each output counts its own images
        got = audit_membership(remote, members, nonmembers, shadow, config, tmp_path / "remote", seed=0)
        charged = remote.server_usage()["used"]
        # the same audit with the head given locally (run while the server is up: the same kernels)
        local = audit_membership(
            LocalEncoder(net), members, nonmembers, shadow, config, tmp_path / "local", seed=0, head=(head, "mlp")
        )
    assert got.outputs == ["h", "z"] and "service" in got.head_source and got.head_kind == "mlp"
    z_local = {r.attack: r.auc for r in local.rows if r.target == "victim" and r.output == "z"}
    z_got = {r.attack: r.auc for r in got.rows if r.target == "victim" and r.output == "z"}
    # a random-init victim's view similarities are near ties, so float noise may swap a few ranks
    assert z_got and z_got == pytest.approx(z_local, abs=0.03)
    assert charged == len(x) + got.query_images  # the service charged every h and z query the audit counts
    assert got.query_images == local.query_images
