"""``encoder-audit protect``: same relative paths, sizes kept, budget on written files, input untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoder_audit.cli.main import main
from encoder_audit.models import create_encoder, save_encoder


def _tree_hash(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20 + i, 17, 3), dtype=np.uint8)).save(root / "cats" / f"c{i}.png")
        Image.fromarray(rng.integers(0, 256, (15, 15 + 2 * i), dtype=np.uint8)).save(root / "dogs" / f"d{i}.png")
    Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(root / "dogs" / "big.jpg", quality=95)
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("hello")
    return root


@pytest.fixture
def surrogate(tmp_path: Path) -> Path:
    net = create_encoder("cnn-small", in_channels=1, image_size=16)
    return save_encoder(tmp_path / "sur" / "encoder.safetensors", net)


def _load(p: Path, mode: str) -> np.ndarray:
    with Image.open(p) as img:
        return np.asarray(img.convert(mode)).astype(int)


def test_protect_folder(photo_folder, surrogate, tmp_path, capsys):
    before = _tree_hash(photo_folder)
    out = tmp_path / "out"
    argv = ["protect", str(photo_folder), "--out", str(out), "--surrogate", str(surrogate), "--clusters", "3"]
    argv += ["--eps", "8/255", "--epochs", "1", "--set", "ngf=4", "--set", "n_blocks=1", "--set", "batch_size=8"]
    assert main([*argv, "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "unreadable: broken.png" in stdout and "unreadable: notes.txt" in stdout
    assert _tree_hash(photo_folder) == before  # input never modified

    manifest = json.loads((out / "protect_manifest.json").read_text())
    assert manifest["method"] == "uc" and manifest["seed"] == 0 and manifest["clusters"] == 3
    assert manifest["surrogate"]["sha256"] == hashlib.sha256(Path(surrogate).read_bytes()).hexdigest()
    assert {u["path"] for u in manifest["unreadable"]} == {"broken.png", "notes.txt"}
    assert len(manifest["images"]) == 13
    assert {r["cluster"] for r in manifest["images"]} <= {0, 1, 2}
    for rec in manifest["images"]:
        src, dst = photo_folder / rec["source"], out / rec["output"]
        assert Path(rec["output"]).parent == Path(rec["source"]).parent
        mode = "L" if rec["channels"] == 1 else "RGB"
        a, b = _load(src, mode), _load(dst, mode)
        assert a.shape == b.shape  # native size kept
        assert np.abs(a - b).max() <= 8  # budget holds on the written file
    assert (out / "dogs" / "big.png").is_file()
    assert manifest["max_linf_levels_written"] <= 8 and manifest["max_linf_levels_written"] >= 1


def test_protect_refuses_out_inside_input(photo_folder, surrogate, capsys):
    code = main(["protect", str(photo_folder), "--out", str(photo_folder / "x"), "--surrogate", str(surrogate)])
    assert code == 2 and "must not be inside" in capsys.readouterr().err


def test_protect_needs_surrogate_for_uc(photo_folder, tmp_path, capsys):
    assert main(["protect", str(photo_folder), "--out", str(tmp_path / "o")]) == 2
    assert "--surrogate" in capsys.readouterr().err


def test_protect_random_control_without_surrogate(photo_folder, tmp_path):
    out = tmp_path / "o"
    assert main(["protect", str(photo_folder), "--out", str(out), "--method", "random", "--eps", "4/255", "-q"]) == 0
    m = json.loads((out / "protect_manifest.json").read_text())
    assert m["max_linf_levels_written"] <= 4 and m["images"][0]["cluster"] is None
