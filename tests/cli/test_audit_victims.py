"""The smoke audit of a user's own encoder in each form it comes in, through the command line.

A torchvision ResNet-18 (random weights) saved as a plain state dict and as safetensors, a TorchScript
export, a factory module and a timm model (when timm is installed): each gets a whole report with one
command. The victims take 3x32x32
input, so Fashion-MNIST's 1x28x28 images are adapted, which the report states.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from encoder_audit.cli.main import main

torchvision = pytest.importorskip("torchvision")

SMOKE = ["--preset", "smoke", "--no-progress", "-q", "--input-shape", "3,32,32"]


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def _audit(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "run"
    assert main(["audit", *SMOKE, "--out", str(out), *args]) == 0
    results = json.loads((out / "results.json").read_text())
    assert (out / "report.html").is_file()
    return results


def _levels(results: dict) -> dict[str, str]:
    return {k: s["verdict"]["level"] for k, s in results["sections"].items()}


def test_a_torchvision_state_dict_gets_the_whole_smoke_audit(tmp_path: Path) -> None:
    weights = tmp_path / "resnet18_state.pt"
    torch.save(_resnet().state_dict(), weights)
    results = _audit(tmp_path, "--victim", "torchvision:resnet18", "--weights", str(weights))
    levels = _levels(results)
    assert "failed" not in levels.values(), levels
    assert levels["membership"] == "skipped"  # its members are unknown without --splits
    victim = results["sections"]["victim"]
    assert any("adapted" in c for c in victim["caveats"])
    assert results["config"]["victim"] == "torchvision:resnet18"
    assert results["config"]["victim_options"]["input_shape"] == [3, 32, 32]


@pytest.mark.parametrize("form", ["safetensors", "torchscript", "factory", "timm"])
def test_other_forms_are_audited_the_same_way(form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _resnet()
    if form == "timm":
        timm = pytest.importorskip("timm")
        torch.manual_seed(0)
        path = tmp_path / "timm_resnet18.pt"
        torch.save(timm.create_model("resnet18", pretrained=False, num_classes=10).state_dict(), path)
        args = ["--victim", "timm:resnet18", "--weights", str(path)]
    elif form == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "resnet18.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
        args = ["--victim", "torchvision:resnet18", "--weights", str(path)]
    elif form == "torchscript":
        net.fc = torch.nn.Identity()
        path = tmp_path / "resnet18.ts"
        torch.jit.script(net.eval()).save(str(path))
        args = ["--victim", f"torchscript:{path}"]
    else:
        (tmp_path / "my_encoders.py").write_text(
            "import torch, torchvision\n"
            "def build():\n"
            "    torch.manual_seed(0)\n"
            "    net = torchvision.models.resnet18(num_classes=10)\n"
            "    net.fc = torch.nn.Identity()\n"
            "    return net\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("my_encoders", None)
        args = ["--victim", "python:my_encoders:build"]
    results = _audit(tmp_path, *args, "--sections", "stealing")
    assert _levels(results)["stealing"] not in ("failed", "skipped")
    assert results["sections"]["victim"]["tables"][0]["rows"][0][0] == "fashion-mnist"
