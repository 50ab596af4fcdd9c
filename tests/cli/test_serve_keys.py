"""``encoder-audit keys`` and ``encoder-audit serve`` argument handling (no server is started here;
tests/service/test_server.py runs the real command in a subprocess)."""

from __future__ import annotations

import pytest

from encoder_audit.cli.main import main
from encoder_audit.service.auth import KeyStore, hash_key


def test_keys_create_prints_once_and_stores_digest(tmp_path, capsys):
    path = tmp_path / "keys.yaml"
    assert main(["keys", "create", "alice", "--file", str(path), "--budget", "50", "--rate", "2"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("ea_") and key not in path.read_text() and hash_key(key) in path.read_text()
    assert "shown once" in out.err
    spec = KeyStore.load(path).authenticate(key)
    assert spec is not None and (spec.budget, spec.rate) == (50, 2.0)
    assert main(["keys", "create", "alice", "--file", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "list", "--file", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and key not in listing


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--host", "0.0.0.0"], "loopback"),
        (["--defense", "nosuch"], "unknown defense"),
        (["--defense", "noise:sigma=-1"], "sigma"),
        (["--keys", "MISSING"], "keys file not found"),
    ],
)
def test_serve_refuses_bad_options_with_exit_2(tmp_path, capsys, extra, message):
    keys = tmp_path / "keys.yaml"
    main(["keys", "create", "a", "--file", str(keys)])
    capsys.readouterr()
    argv = ["serve", str(tmp_path / "none.safetensors"), "--keys", str(keys), *extra]
    argv = [str(tmp_path / v) if v == "MISSING" else v for v in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_serve_missing_checkpoint_is_exit_2(tmp_path, capsys):
    keys = tmp_path / "keys.yaml"
    main(["keys", "create", "a", "--file", str(keys)])
    assert main(["serve", str(tmp_path / "none.safetensors"), "--keys", str(keys)]) == 2


def test_serve_expose_head_without_a_saved_head_is_exit_2(tmp_path, capsys):
    from encoder_audit.models import create_encoder
    from encoder_audit.models.checkpoint import save_encoder

    keys = tmp_path / "keys.yaml"
    main(["keys", "create", "a", "--file", str(keys)])
    ckpt = tmp_path / "encoder.safetensors"
    save_encoder(ckpt, create_encoder("cnn-small", 1, 8))
    capsys.readouterr()
    assert main(["serve", str(ckpt), "--keys", str(keys), "--expose-head"]) == 2
    assert "no projection head saved beside" in capsys.readouterr().err
