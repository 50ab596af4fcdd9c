"""``encoder-audit convert``: any victim spec as a safetensors checkpoint that loads back identically."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from encoder_audit.cli.main import main
from encoder_audit.errors import CheckpointError
from encoder_audit.models.checkpoint import sha256_file
from encoder_audit.victim import load_encoder

SHAPE = "3,48,48"


@pytest.fixture(scope="module")
def state_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    with torch.no_grad():
        model.train()(torch.rand(4, 3, 48, 48))  # batch-norm statistics that must survive the conversion
    path = tmp_path_factory.mktemp("w") / "my_resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


def test_convert_torchvision_state_dict(state_dict: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ckpt"
    argv = ["convert", "torchvision:resnet18", "--weights", str(state_dict), "--input-shape", SHAPE, "--out", str(out)]
    assert main([*argv, "--feature-layer", "layer4"]) == 0
    text = capsys.readouterr().out
    assert "match torchvision:resnet18" in text and f"--victim {out}" in text
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["architecture"] == "torchvision:resnet18@layer4" and meta["feature_layer"] == "layer4"
    assert meta["input_shape"] == [3, 48, 48] and meta["embedding_dim"] == 512 and meta["source"] == "torchvision"
    assert meta["weights_sha256"] == sha256_file(out / "encoder.safetensors")
    assert meta["converted_from"] == {"weights": "my_resnet18.pth", "weights_sha256": sha256_file(state_dict)}
    source = load_encoder("torchvision:resnet18", weights=state_dict, input_shape=SHAPE, feature_layer="layer4")
    back = load_encoder(out)  # a plain checkpoint now: no options needed
    x = torch.rand(3, 3, 48, 48)
    torch.testing.assert_close(back.embed(x), source.embed(x), atol=1e-6, rtol=1e-6)
    assert main(argv) == 2  # an existing checkpoint is not overwritten without --force
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_convert_python_factory_keeps_needing_its_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conv_user_net.py").write_text(
        "import torch\n"
        "def build():\n"
        "    torch.manual_seed(5)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),"
        " torch.nn.Linear(3 * 14 * 14, 7))\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        out = tmp_path / "ckpt"
        argv = ["convert", "python:conv_user_net:build", "--input-shape", "1,16,16", "--mean", "0.5", "--std", "0.2"]
        assert main([*argv, "--out", str(out)]) == 0
        assert "--victim python:conv_user_net:build --weights" in capsys.readouterr().out
        with pytest.raises(CheckpointError, match=r"defined by code.*--victim python:conv_user_net:build --weights"):
            load_encoder(out)
        back = load_encoder("python:conv_user_net:build", weights=out / "encoder.safetensors")
        assert back.input_shape == (1, 16, 16)  # shape and normalization come from the sidecar
        source = load_encoder("python:conv_user_net:build", input_shape=(1, 16, 16), mean=(0.5,), std=(0.2,))
        x = torch.rand(2, 1, 16, 16)
        torch.testing.assert_close(back.embed(x), source.embed(x), atol=1e-6, rtol=1e-6)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("conv_user_net", None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torchscript:model.pt", "cannot be converted: its architecture is TorchScript code"),
        ("http://127.0.0.1:9", "weights are on the server"),
        ("torchvision:resnet18", "needs --weights"),
    ],
)
def test_specs_that_cannot_be_converted(
    spec: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", spec, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_convert_refuses_a_pickled_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    assert main(["convert", "torchvision:resnet18", "--weights", str(path), "--out", str(tmp_path / "x")]) == 2
    assert "pickled Python object (torch.nn.modules.linear.Linear)" in capsys.readouterr().err
