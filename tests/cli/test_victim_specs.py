"""The victim-spec options every command shares: parsing, and exactly the options the user gave."""

from __future__ import annotations

import argparse
import json

import pytest

from encoder_audit.cli.common import VICTIM_OPTION_KEYS, add_victim_arguments, victim_options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    p.add_argument("--victim")
    add_victim_arguments(p)
    return p


def test_no_options_given_is_an_empty_dict() -> None:
    assert victim_options(_parser().parse_args([])) == {}
    assert victim_options(argparse.Namespace()) == {}  # a command without the options


def test_every_option_parses_and_round_trips_through_json() -> None:
    args = _parser().parse_args(
        [
            "--weights",
            "my_resnet50.pth",
            "--input-shape",
            "3,224,224",
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229, 0.224, 0.225",
            "--feature-layer",
            "layer4",
            "--autocast",
            "bf16",
        ]
    )
    opts = victim_options(args)
    assert set(opts) == set(VICTIM_OPTION_KEYS)
    assert opts == {
        "weights": "my_resnet50.pth",
        "input_shape": [3, 224, 224],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "feature_layer": "layer4",
        "autocast": "bf16",
    }
    assert json.loads(json.dumps(opts)) == opts  # the audit stores them in its config


def test_only_given_options_are_returned() -> None:
    assert victim_options(_parser().parse_args(["--input-shape", "1x28x28"])) == {"input_shape": [1, 28, 28]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input-shape", "224,224"], "C,H,W"),
        (["--mean", "a,b"], "comma-separated numbers"),
        (["--autocast", "int8"], "invalid choice"),
    ],
)
def test_malformed_values_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_options_reach_load_encoder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What victim_options returns is accepted by load_encoder as keyword arguments."""
    import torch

    from encoder_audit.victim import load_encoder

    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(6))
    module(torch.rand(1, 1, 10, 10))
    (tmp_path / "tiny_user_model.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(256, 6))\n"
    )
    torch.save(module.state_dict(), tmp_path / "w.pt")
    args = _parser().parse_args(
        ["--weights", str(tmp_path / "w.pt"), "--input-shape", "1,10,10", "--mean", "0.5", "--std", "0.5"]
    )
    enc = load_encoder(f"python:{tmp_path / 'tiny_user_model.py'}:build", **victim_options(args))
    x = torch.rand(2, 1, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), module((x - 0.5) / 0.5), atol=1e-5, rtol=1e-5)
