"""``encoder-audit protect``: same relative paths, sizes kept, budget on written files, input untouched,
every file accounted for, unique names, 16-bit images scaled, a folder with no setup."""

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
    (root / ".hidden.png").write_bytes((root / "dogs" / "d0.png").read_bytes())
    return root


FAST = ["--epochs", "1", "--set", "ngf=4", "--set", "n_blocks=1", "--set", "batch_size=8", "--no-progress"]


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
    argv += ["--eps", "8/255", "--allow-mismatch", *FAST]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "unreadable: broken.png" in stdout and "unreadable: notes.txt" in stdout
    assert _tree_hash(photo_folder) == before  # input never modified

    manifest = json.loads((out / "protect_manifest.json").read_text())
    assert manifest["method"] == "uc" and manifest["seed"] == 0 and manifest["clusters"] == 3
    assert manifest["surrogate"]["sha256"] == hashlib.sha256(Path(surrogate).read_bytes()).hexdigest()
    assert {u["path"] for u in manifest["unreadable"]} == {"broken.png", "notes.txt"}
    assert {s["path"] for s in manifest["skipped"]} == {"broken.png", "notes.txt", ".hidden.png"}
    assert len(manifest["images"]) == 13
    assert manifest["counts"] == {"files": 16, "protected": 13, "skipped": 3}
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


def test_protect_folder_with_no_setup_trains_and_reuses_a_surrogate(tmp_path, capsys):
    rng = np.random.default_rng(1)
    root = tmp_path / "five"
    root.mkdir()
    for i in range(5):  # mixed sizes, colour and grayscale
        shape = (40 + 8 * i, 56, 3) if i % 2 == 0 else (48, 36 + 4 * i)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / f"p{i}.png")
    cache = tmp_path / "cache"
    argv = ["protect", str(root), "--out", str(tmp_path / "o1"), "--cache-dir", str(cache), "--surrogate-epochs", "1"]
    assert main([*argv, *FAST]) == 0
    out = capsys.readouterr().out
    assert "trained a SimCLR cnn-small surrogate on the 5 images" in out and "RGB" in out
    m = json.loads((tmp_path / "o1" / "protect_manifest.json").read_text())
    assert m["clusters"] == 2 and "K lowered from 10 to 2" in m["notes"][0]
    assert m["surrogate"]["trained_here"] and m["craft_size"] % 4 == 0 and 16 <= m["craft_size"] <= 64
    assert len(m["images"]) == 5 and m["max_linf_levels_written"] <= 16
    argv[3] = str(tmp_path / "o2")
    assert main([*argv, *FAST]) == 0
    assert "reused the SimCLR" in capsys.readouterr().out


def test_protect_refuses_a_grayscale_surrogate_on_colour_photos(photo_folder, surrogate, tmp_path, capsys):
    argv = ["protect", str(photo_folder / "cats"), "--out", str(tmp_path / "o"), "--surrogate", str(surrogate)]
    assert main(argv) == 2
    assert "grayscale" in capsys.readouterr().err


def test_protect_output_names_never_collide(tmp_path):
    from encoder_audit.attacks.unlearnable.folder import output_names

    rels = [Path(p) for p in ["dup.jpg", "dup.jpg.png", "dup.png", "a/B.JPG", "a/b.jpeg", "c.gif"]]
    names = output_names(rels)
    assert len({n.as_posix().lower() for n in names}) == len(rels)
    assert names[2] == Path("dup.png") and names[5] == Path("c.png")
    assert all(n.suffix == ".png" and n.parent == r.parent for n, r in zip(names, rels))

    root = tmp_path / "dups"
    root.mkdir()
    rng = np.random.default_rng(2)
    for name in ("dup.jpg", "dup.jpg.png", "dup.png"):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / name, format="PNG")
    out = tmp_path / "o"
    assert main(["protect", str(root), "--out", str(out), "--method", "random", "-q"]) == 0
    m = json.loads((out / "protect_manifest.json").read_text())
    outputs = [r["output"] for r in m["images"]]
    assert len(set(outputs)) == 3 and all((out / o).is_file() for o in outputs)
    for r in m["images"]:  # each output is the protected copy of its own source
        assert np.abs(_load(root / r["source"], "L") - _load(out / r["output"], "L")).max() <= 16


def test_protect_scales_16_bit_images(tmp_path):
    root = tmp_path / "deep"
    root.mkdir()
    dark = (np.arange(32 * 32).reshape(32, 32) % 200 * 40).astype(np.uint16)  # values up to 7960 of 65535
    Image.fromarray(dark).save(root / "dark16.png")
    out = tmp_path / "o"
    assert main(["protect", str(root), "--out", str(out), "--method", "random", "--eps", "4/255", "-q"]) == 0
    m = json.loads((out / "protect_manifest.json").read_text())
    assert m["images"][0]["source_bits"] == 16
    written = _load(out / m["images"][0]["output"], "L")
    expected = np.rint(dark.astype(float) * 255 / 65535)
    assert np.abs(written - expected).max() <= 4  # scaled, not clipped to white
    assert written.max() < 40


@pytest.mark.parametrize("eps", ["300/255", "0", "-1/255", "1.5"])
def test_protect_refuses_bad_budgets(photo_folder, tmp_path, capsys, eps):
    argv = ["protect", str(photo_folder), "--out", str(tmp_path / "o"), "--method", "random", f"--eps={eps}"]
    assert main(argv) == 2
    assert "budget" in capsys.readouterr().err


def test_protect_random_control_without_surrogate(photo_folder, tmp_path):
    out = tmp_path / "o"
    assert main(["protect", str(photo_folder), "--out", str(out), "--method", "random", "--eps", "4/255", "-q"]) == 0
    m = json.loads((out / "protect_manifest.json").read_text())
    assert m["max_linf_levels_written"] <= 4 and m["images"][0]["cluster"] is None
