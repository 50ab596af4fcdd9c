"""DDP under gloo on CPU: two processes must reproduce the single-process loss and gradients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from encoder_audit.train.simclr import nt_xent_loss

pytestmark = pytest.mark.ddp
B, D_IN, D_OUT, WORLD = 8, 6, 5, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs() -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(D_IN, D_OUT)
    with torch.no_grad():
        model.weight.copy_(torch.randn(D_OUT, D_IN, generator=g))
        model.bias.copy_(torch.randn(D_OUT, generator=g))
    return model, torch.randn(B, D_IN, generator=g), torch.randn(B, D_IN, generator=g)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model, x1, x2 = _inputs()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        b = B // WORLD
        sl = slice(rank * b, (rank + 1) * b)
        loss = nt_xent_loss(ddp(x1[sl]), ddp(x2[sl]), temperature=0.5, gather=True)
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        torch.save(
            {"loss": mean_loss / WORLD, "weight": model.weight.grad, "bias": model.bias.grad},
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_process_loss_and_gradients_equal_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    model, x1, x2 = _inputs()
    loss = nt_xent_loss(model(x1), model(x2), temperature=0.5, gather=False)
    loss.backward()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.allclose(got["loss"], loss.detach(), atol=1e-6)
        assert torch.allclose(got["weight"], model.weight.grad, atol=1e-6)
        assert torch.allclose(got["bias"], model.bias.grad, atol=1e-6)


def test_torchrun_pretrain_two_processes(tmp_path: Path) -> None:
    """The real launcher path: torchrun starts 2 gloo workers, rank 0 alone writes the checkpoint."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "encoder_audit",
        "pretrain",
        "--dataset",
        "synthetic",
        "--max-images",
        "256",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--no-eval",
        "--no-progress",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "encoder.safetensors").is_file() and (out / "encoder.json").is_file()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # written once (rank 0), not once per rank
