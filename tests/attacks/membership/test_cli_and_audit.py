"""CLI (make-target, attack, data-owner audit), the data-owner test's calibration, the audit entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from encoder_audit.attacks.membership.dataowner import OwnerAuditConfig, audit_images, load_image_folder
from encoder_audit.cli.main import main
from encoder_audit.data import SplitManifest, create_dataset


class Noisy:
    """An encoder whose view similarity is high for 'member' images (bright top-left pixel) only."""

    input_shape, embedding_dim = (1, 16, 16), 8

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        flag = (x[:, :, :4, :4].mean(dim=(1, 2, 3)) > 0.9).float().unsqueeze(1)
        noise = torch.randn(len(x), 8)
        return torch.ones(len(x), 8) * 3 * flag + noise


def _images(n: int, member: bool, seed: int) -> torch.Tensor:
    x = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 0.5
    if member:
        x[:, :, :8, :8] = 1.0
    return (x * 255).round().to(torch.uint8)


def _ds(images: torch.Tensor):
    from encoder_audit.data import DatasetInfo, ImageDataset

    return ImageDataset(images, None, DatasetInfo("t", 1, 16, 0))


def test_owner_audit_is_calibrated_and_detects_members() -> None:
    cfg = OwnerAuditConfig(n_views=4, views="none")
    victim = Noisy()
    ref = _ds(_images(200, False, 0))
    hit = audit_images(victim, _ds(_images(30, True, 1)), ref, cfg)
    assert hit["verdict"] == "used" and hit["p_value"] < 1e-6 and hit["flagged"] >= 25
    assert hit["usage"]["query_images"] == (30 + 200) * 4
    # null: folders of non-members get "used" at about the nominal rate
    p_values = [audit_images(victim, _ds(_images(30, False, 10 + i)), ref, cfg, seed=i)["p_value"] for i in range(40)]
    assert np.mean(np.array(p_values) <= 0.05) <= 0.15
    assert 0.2 < np.median(p_values) < 0.8
    with pytest.raises(ValueError):
        audit_images(victim, ref, _ds(_images(5, False, 0)), cfg)


def test_load_image_folder(tmp_path) -> None:
    for i in range(3):
        pixels = (np.random.default_rng(i).random((20, 24, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_image_folder(tmp_path, (1, 16, 16))
    assert ds.images.shape == (3, 1, 16, 16) and ds.images.dtype == torch.uint8
    from encoder_audit.errors import UserError

    with pytest.raises(UserError):
        load_image_folder(tmp_path / "missing", (1, 16, 16))


def test_cli_make_target_attack_and_audit(tmp_path, capsys) -> None:
    target = tmp_path / "target"
    common = ["--no-progress", "-q"]
    args = ["membership", "make-target", "--recipe", "tiny", "--dataset", "synthetic", "--members", "32"]
    assert main([*args, "--shadow-images", "120", "--epochs", "1", "--out", str(target), *common]) == 0
    manifest = SplitManifest.load(target / "splits.json")
    assert {k: len(v) for k, v in manifest.parts.items()} == {"members": 32, "nonmembers": 32, "shadow": 120}
    assert not set(manifest.parts["members"]) & set(manifest.parts["nonmembers"])
    run = tmp_path / "run"
    argv = ["membership", "--victim", str(target / "encoder.safetensors"), "--splits", str(target / "splits.json")]
    argv += ["--method", "encodermi-t,two-view,blind", "--n-views", "3", "--shadow-members", "32"]
    argv += ["--shadow-epochs", "1", "--out", str(run), *common]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "encodermi-t" in out and "two-view" in out
    z = np.load(run / "scores.npz")
    assert z["labels"].shape == (64,) and z["encodermi-t/scores"].shape == (64,)
    res = json.loads((run / "results.json").read_text())
    assert res["usage"]["query_images"] == 64 * 3  # 3 views each; blind and two-view add none
    assert (run / "roc.png").stat().st_size > 1000

    folder = tmp_path / "owner"
    folder.mkdir()
    ds = create_dataset("synthetic", "train")
    for i, idx in enumerate(manifest.parts["members"][:10]):
        Image.fromarray(ds.images[idx, 0].numpy()).save(folder / f"{i}.png")
    argv = ["membership", "--victim", str(target / "encoder.safetensors"), "--audit", str(folder)]
    argv += ["--nonmembers", str(target / "splits.json"), "--n-views", "3", "--out", str(tmp_path / "a"), *common]
    assert main(argv) == 0
    audit = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert audit["verdict"] in ("used", "no evidence") and 0 <= audit["false_positive_rate"] <= 1
    assert audit["n_images"] == 10 and audit["n_reference"] == 32


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["membership", "--victim", str(tmp_path / "nope.safetensors"), "--splits", "x.json"]) == 2
    assert main(["membership", "--splits", "x.json"]) == 2


def test_run_membership_audit_contract(tmp_path) -> None:
    from encoder_audit.attacks.membership.audit import run_membership_audit
    from encoder_audit.attacks.membership.targets import TargetRecipe
    from encoder_audit.models import create_encoder
    from encoder_audit.victim import LocalEncoder

    ds = create_dataset("synthetic", "train", n=200, size=16)
    victim = LocalEncoder(create_encoder("cnn-small", 1, 16))
    out = run_membership_audit(
        victim,
        ds.subset(range(0, 20)),
        ds.subset(range(20, 40)),
        ds.subset(range(40, 200)),
        tmp_path,
        attacks=("encodermi-t", "encodermi-v", "two-view", "blind"),
        shadow_recipe=TargetRecipe(members=16, epochs=1, batch_size=8),
    )
    json.dumps(out)  # JSON-serialisable
    assert {"headline", "verdict", "tables", "figures", "costs", "config", "caveats"} <= set(out)
    assert out["verdict"] in ("high", "medium", "low")
    assert [r[0] for r in out["tables"][0]["rows"]] == ["encodermi-t", "encodermi-v", "two-view", "blind"]
    assert out["costs"]["query_images"] == 40 * 10
    assert all((tmp_path / f).exists() for f in ("scores.npz", "membership_roc.png", "membership_results.json"))
    assert "i.i.d." in out["caveats"][0]


@pytest.mark.slow
def test_early_stopping_sweep_rows(tmp_path) -> None:
    from encoder_audit.attacks.membership.earlystop import early_stopping_sweep, plot_tradeoff
    from encoder_audit.attacks.membership.features import FeatureConfig
    from encoder_audit.attacks.membership.targets import TargetRecipe

    ds = create_dataset("synthetic", "train", n=300, size=16)
    rows = early_stopping_sweep(
        ds.subset(range(0, 16)),
        ds.subset(range(16, 32)),
        ds.subset(range(32, 100)),
        TargetRecipe(members=16, epochs=2, batch_size=8),
        (1, 2),
        ds.subset(range(100, 250)),
        ds.subset(range(250, 300)),
        attacks=("encodermi-t",),
        features=FeatureConfig(n_views=3),
    )
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 <= r["encodermi-t/auc"] <= 1 and 0 <= r["linear"] <= 1 for r in rows)
    assert plot_tradeoff(rows, tmp_path / "t.png").stat().st_size > 1000
