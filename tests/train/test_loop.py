"""The training loop: determinism, resume after an interruption, run files."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder, load_encoder_net
from encoder_audit.runs import RunDir
from encoder_audit.train import SimCLR, TrainConfig, TrainingInterrupted, fit

CFG = TrainConfig(epochs=2, batch_size=32, lr=1e-3, seed=3)


class InterruptAt(SimCLR):
    """SimCLR that delivers SIGINT to its own process during the given call of forward."""

    def __init__(self, *args, at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.at, self.calls = at, 0

    def forward(self, images, labels, generator):  # type: ignore[override]
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return super().forward(images, labels, generator)


def _objective(cls=SimCLR, **kw):
    torch.manual_seed(0)
    return cls(create_encoder("cnn-small", in_channels=1, image_size=28), **kw)


def _weights(obj) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in obj.encoder.state_dict().values() if p.is_floating_point()])


@pytest.fixture(scope="module")
def data():
    return create_dataset("synthetic", "train", n=160)


@pytest.fixture(scope="module")
def reference(data):
    return fit(_objective(), data, CFG, progress=False)


def test_same_seed_same_weights(data, reference) -> None:
    again = fit(_objective(), data, CFG, progress=False)
    assert torch.equal(_weights(again.objective), _weights(reference.objective))
    assert len(again.history) == 2 and all(h["loss"] > 0 for h in again.history)


def test_interrupt_mid_epoch_then_resume_matches_uninterrupted(data, reference, tmp_path: Path) -> None:
    run = RunDir.create("t", out=tmp_path / "run")
    # 160 images / batch 32 = 5 steps per epoch: interrupt during step 2 of epoch 2 (call 7).
    with pytest.raises(TrainingInterrupted, match="state saved"):
        fit(_objective(InterruptAt, at=7), data, CFG, run=run, progress=False)
    assert (tmp_path / "run" / "state.pt").is_file()
    assert not (tmp_path / "run" / "encoder.safetensors").exists()
    resumed = fit(_objective(), data, CFG, run=run, resume=True, progress=False)
    assert torch.allclose(_weights(resumed.objective), _weights(reference.objective), atol=1e-6)
    assert [round(h["loss"], 5) for h in resumed.history[:1]] == [round(reference.history[0]["loss"], 5)]
    net, meta = load_encoder_net(tmp_path / "run" / "encoder.safetensors")
    assert meta["training"]["epochs"] == 2 and meta["data_manifest_sha256"] == data.fingerprint()
    assert torch.allclose(
        torch.cat([p.flatten() for p in net.state_dict().values() if p.is_floating_point()]),
        _weights(reference.objective),
        atol=1e-6,
    )


def test_resume_without_state_is_a_user_error(data, tmp_path: Path) -> None:
    run = RunDir.create("t", out=tmp_path / "empty")
    with pytest.raises(Exception, match="nothing to resume"):
        fit(_objective(), data, CFG, run=run, resume=True, progress=False)


def test_dataset_smaller_than_a_batch(data) -> None:
    with pytest.raises(Exception, match="fewer than one batch"):
        fit(_objective(), data.subset(range(10)), CFG, progress=False)


@pytest.mark.slow
def test_cli_sigint_saves_state_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "encoder_audit",
        "pretrain",
        "--dataset",
        "synthetic",
        "--max-images",
        "256",
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--no-eval",
        "--no-progress",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout
    assert "resume with" in stdout and (out / "state.pt").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "encoder_audit", "pretrain", "--resume", str(out), "--no-eval", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "encoder.safetensors").is_file()
    epochs = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    assert len(epochs) == 6


def test_every_epoch_trains_in_train_mode_even_after_an_eval_callback(data) -> None:
    modes: list[bool] = []

    class Recorder(SimCLR):
        def forward(self, images, labels, generator):  # type: ignore[override]
            modes.append(self.training)
            return super().forward(images, labels, generator)

    fit(
        _objective(Recorder),
        data.subset(range(64)),
        TrainConfig(epochs=2, batch_size=32),
        progress=False,
        on_epoch_end=lambda epoch, objective: objective.eval(),
    )
    assert modes == [True] * 4
