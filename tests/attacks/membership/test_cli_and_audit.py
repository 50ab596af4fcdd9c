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
    assert hit["direction"] == "higher" and "score higher than" in hit["explanation"]
    assert hit["usage"]["query_images"] == (30 + 200) * 4 + 230  # views, plus one clean pass for the shift check
    # a folder that scores lower is said to score lower
    low = audit_images(victim, ref, _ds(_images(30, True, 2)), cfg)
    assert low["direction"] == "lower" and low["verdict"] == "no evidence"
    with pytest.raises(ValueError):
        audit_images(victim, ref, _ds(_images(5, False, 0)), cfg)


def test_owner_audit_false_positive_rate_is_at_most_alpha_over_200_draws() -> None:
    """Folders of non-members, each against fresh references from the same pool: 'used' at most alpha of the time.

    A verdict that ignored the direction or used the smallest per-image p-value would call far more
    folders 'used', so the margin below is not met by a miscalibrated test.
    """
    alpha = 0.05
    cfg = OwnerAuditConfig(alpha=alpha, n_views=2, views="none")
    victim = Noisy()
    pool = _images(600, False, 7)
    rng = np.random.default_rng(0)
    used = 0
    for i in range(200):
        idx = rng.permutation(len(pool))
        out = audit_images(victim, _ds(pool[idx[:15]]), _ds(pool[idx[15:60]]), cfg, seed=i)
        used += out["verdict"] == "used"
    assert used / 200 <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / 200)


def test_domain_mismatch_is_warned_about_and_references_share_the_loader(tmp_path) -> None:
    from encoder_audit.attacks.membership.dataowner import domain_shift, through_loader

    g = torch.Generator().manual_seed(0)
    same = domain_shift(torch.randn(40, 8, generator=g), torch.randn(200, 8, generator=g))
    other = domain_shift(torch.randn(40, 8, generator=g) + 1.0, torch.randn(200, 8, generator=g))
    assert same["p_value"] > 0.01 and other["p_value"] <= 0.01
    ref = _ds(_images(5, False, 0))
    for i in range(5):
        Image.fromarray(ref.images[i, 0].numpy()).save(tmp_path / f"{i}.png")
    assert torch.equal(load_image_folder(tmp_path, (1, 12, 12)).images, through_loader(ref, (1, 12, 12)).images)


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
    args += ["--nonmembers", "40", "--head", "linear"]
    assert main([*args, "--shadow-images", "120", "--epochs", "1", "--out", str(target), *common]) == 0
    manifest = SplitManifest.load(target / "splits.json")
    assert {k: len(v) for k, v in manifest.parts.items()} == {"members": 32, "nonmembers": 40, "shadow": 120}
    assert not set(manifest.parts["members"]) & set(manifest.parts["nonmembers"])
    sidecar = json.loads((target / "encoder.json").read_text())
    assert sidecar["training"]["head"] == "linear" and sidecar["training"]["views"] == "simclr"
    assert json.loads((target / "head.json").read_text())["kind"] == "linear"
    run = tmp_path / "run"
    argv = ["membership", "--victim", str(target / "encoder.safetensors"), "--splits", str(target / "splits.json")]
    argv += ["--method", "encodermi-t,two-view,blind", "--n-views", "3", "--view-draws", "2"]
    argv += ["--shadow-members", "16", "--shadow-epochs", "1", "--nonmember-count", "30", "--no-controls"]
    assert main([*argv, "--out", str(run), *common]) == 0
    out = capsys.readouterr().out
    assert "encodermi-t" in out and "two-view" in out
    z = np.load(run / "scores.npz")
    assert "encodermi-t/scores" in z
    res = json.loads((run / "results.json").read_text())
    result, section = res["result"], res["section"]
    assert result["outputs"] == ["h", "z"]  # the saved linear head is attacked too
    assert result["views"] == "simclr" and "sidecar" in result["views_source"]
    victim_rows = [r for r in result["rows"] if r["target"] == "victim"]
    assert {(r["attack"], r["output"]) for r in victim_rows} >= {("encodermi-t", "h"), ("encodermi-t", "z")}
    # h: (32 members + 30 non-members + 10 null-split) x 3 views x 2 draws; two-view reuses those views;
    # z (the saved head's output): members and non-members, the same views
    assert result["query_images"] == (32 + 30 + 10) * 3 * 2 + (32 + 30) * 3 * 2
    assert section["verdict"]["level"] in ("high", "medium", "low", "inconclusive")
    assert (run / "env.json").is_file() and (run / "membership_roc_victim_h.png").stat().st_size > 1000

    folder = tmp_path / "owner"
    folder.mkdir()
    ds = create_dataset("synthetic", "train")
    for i, idx in enumerate(manifest.parts["members"][:10]):
        Image.fromarray(ds.images[idx, 0].numpy()).save(folder / f"{i}.png")
    argv = ["membership", "--victim", str(target / "encoder.safetensors"), "--audit", str(folder)]
    argv += ["--nonmembers", str(target / "splits.json"), "--n-views", "3", "--out", str(tmp_path / "a"), *common]
    assert main(argv) == 0
    audit = json.loads((tmp_path / "a" / "results.json").read_text())
    assert audit["verdict"] in ("used", "no evidence") and 0 <= audit["p_value"] <= 1 and audit["alpha"] == 0.01
    assert audit["n_images"] == 10 and audit["n_reference"] == 40
    assert audit["min_image_p_value"] == pytest.approx(1 / 41)
    assert any("smallest attainable" in w for w in audit["warnings"])  # 40 references cannot reach 0.01
    assert (tmp_path / "a" / "env.json").is_file() and (tmp_path / "a" / "owner_scores.png").is_file()


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["membership", "--victim", str(tmp_path / "nope.safetensors"), "--splits", "x.json"]) == 2
    assert main(["membership", "--splits", "x.json"]) == 2


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
