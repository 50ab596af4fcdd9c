from __future__ import annotations

import subprocess
import sys

import pytest

from encoder_audit.cli.main import build_parser, command_modules, main


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices)  # type: ignore[union-attr]
    assert {"pretrain", "evaluate", "info"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "usage: encoder-audit" in out and name in out


def test_command_modules_are_discovered() -> None:
    assert {m.__name__.rsplit(".", 1)[1] for m in command_modules()} >= {"pretrain", "evaluate", "info"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pretrain", "--dataset", "no-such-set"], "unknown dataset 'no-such-set'"),
        (["pretrain", "--dataset", "synthetic", "--epochs", "0"], "epochs must be >= 1"),
        (["pretrain", "--dataset", "synthetic", "--set", "train.lr=abc"], "lr must be a number"),
        (
            ["pretrain", "--dataset", "synthetic", "--set", "method_options.temperature=-1"],
            "temperature must be positive",
        ),
        (["evaluate", "missing.safetensors"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, tmp_path, capsys) -> None:
    code = main([*argv, "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "encoder_audit", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "encoder-audit" in out.stdout
