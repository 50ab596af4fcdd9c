"""``encoder-audit steal`` / ``watermark`` / ``verify`` end to end on tiny files, locally and over HTTP."""

from __future__ import annotations

import json

import pytest
import torch

from encoder_audit.cli.main import main
from encoder_audit.models import create_encoder
from encoder_audit.models.checkpoint import save_encoder


@pytest.fixture
def victim_ckpt(tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = create_encoder("cnn-small", 1, 28)
    return save_encoder(tmp_path / "victim.safetensors", net)


ARGS = [
    "--method", "rda", "--queries", "12", "--query-data", "synthetic", "--epochs", "1",
    "--set", "attack.prototype_views=3", "--set", "attack.train_views=1", "--set", "attack.batch_size=6",
    "--no-eval", "--no-progress", "-q",
]  # fmt: skip


def _results(out):
    return json.loads((out / "results.json").read_text())


def test_steal_local_checkpoint(tmp_path, victim_ckpt) -> None:
    out = tmp_path / "run"
    assert main(["steal", "--victim", str(victim_ckpt), *ARGS, "--out", str(out)]) == 0
    res = _results(out)
    assert res["usage"]["query_images"] == 36 and res["usage"]["api_calls"] == 3
    assert (out / "surrogate.safetensors").is_file() and (out / "surrogate.json").is_file()
    assert (out / "loss.png").is_file()


def test_steal_rejects_bad_input(tmp_path, victim_ckpt, capsys) -> None:
    assert main(["steal", "--victim", str(victim_ckpt), *ARGS, "--budget", "10", "--out", str(tmp_path / "b")]) == 2
    assert "budget" in capsys.readouterr().err
    assert main(["steal", "--victim", str(tmp_path / "missing.safetensors"), *ARGS, "--out", str(tmp_path / "c")]) == 2
    assert main(["steal", "--victim", "http://127.0.0.1:9", *ARGS, "--out", str(tmp_path / "d")]) == 2  # no key


def test_steal_over_http_charges_the_same(tmp_path, victim_ckpt, monkeypatch) -> None:
    pytest.importorskip("uvicorn")
    from encoder_audit.service.testing import serve_in_background

    monkeypatch.delenv("ENCODER_AUDIT_API_KEY", raising=False)
    with serve_in_background(victim_ckpt, budget=1000) as (url, key):
        out = tmp_path / "remote"
        assert main(["steal", "--victim", url, "--api-key", key, *ARGS, "--out", str(out)]) == 0
    res = _results(out)
    assert res["usage"]["query_images"] == 36 and res["usage"]["api_calls"] == 3
    assert res["server_usage"]["query_images"] == 36  # the server's own count agrees


def test_watermark_then_verify(tmp_path, victim_ckpt) -> None:
    wm_dir = tmp_path / "wm"
    base = ["--data", "synthetic", "--no-progress", "-q"]
    assert (
        main(
            [
                "watermark",
                "--encoder",
                str(victim_ckpt),
                "--max-images",
                "128",
                "--epochs",
                "2",
                *base,
                "--out",
                str(wm_dir),
            ]
        )
        == 0
    )
    key = wm_dir / "watermark.key.json"
    assert key.is_file()
    v = tmp_path / "v"
    assert main(["verify", "--suspect", str(wm_dir / "encoder.safetensors"), "--watermark", str(key), "--images", "100",
                 "--split", "train", *base, "--out", str(v)]) == 0  # fmt: skip
    verdict = _results(v)["watermark"]
    assert verdict["detected"] and verdict["p_value"] < 0.01
    assert main(["verify", "--suspect", str(victim_ckpt), "--watermark", str(tmp_path / "nokey.json"), *base]) == 2


def test_steal_several_methods_is_one_equal_compute_comparison(tmp_path, victim_ckpt) -> None:
    out = tmp_path / "cmp"
    args = ["--method", "rda", "--method", "conventional", "--method", "contsteal", "--arm", "images",
            "--budget", "60", "--rule", "steps", "--compute", "3", "--query-data", "synthetic",
            "--set", "attack.prototype_views=3", "--set", "attack.train_views=1", "--set", "attack.batch_size=10",
            "--set", "attack.contsteal.variant=official", "--no-eval", "--no-progress", "-q"]  # fmt: skip
    assert main(["steal", "--victim", str(victim_ckpt), *args, "--out", str(out)]) == 0
    res = _results(out)
    assert res["comparison"] == {"arm": "images", "level": 60, "rule": "steps", "amount": 3}
    rows = {r["method"]: r for r in res["runs"]}
    assert set(rows) == {"rda", "conventional", "contsteal"}
    for r in rows.values():
        assert r["optimizer_steps"] == 3 and r["images_charged"] <= 60
        assert set(r) >= {"images_charged", "api_calls", "unique_images", "optimizer_steps", "forward_passes"}
    assert rows["rda"]["unique_images"] == 20 and rows["rda"]["images_charged"] == 60
    assert rows["conventional"]["unique_images"] == 60 and rows["conventional"]["forward_passes"] == 30
    assert rows["contsteal"]["images_charged"] == 30 and rows["contsteal"]["attack"]["config"]["variant"] == "official"
    assert (out / "surrogate-rda.safetensors").is_file() and (out / "surrogate-contsteal.safetensors").is_file()
