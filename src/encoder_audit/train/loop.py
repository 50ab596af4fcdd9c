"""One training loop for every objective: devices, DDP under torchrun, resume, progress, run files.

The loop owns the chores; an :class:`~encoder_audit.train.objective.Objective` owns the maths.

* **Data order.** Epoch ``e`` visits a permutation seeded by ``(seed, e)``; a global batch of
  ``batch_size`` images is split evenly across ranks, so one process with batch B and two with B/2
  each see the same images per step.
* **Randomness.** Augmentations of step ``s`` of epoch ``e`` on rank ``r`` draw from a generator
  seeded by ``(seed, e, s, r)``: resuming in the middle of an epoch replays exactly.
* **Resume.** ``state.pt`` (model, optimizer, position, history) is written atomically at the end of
  every ``checkpoint_every`` epochs and when SIGINT/SIGTERM arrives (after the current step);
  ``resume=True`` continues from it. It is read with ``torch.load(weights_only=True)``.
* **Files.** Only rank 0 writes: ``metrics.jsonl``, ``state.pt`` and the final ``encoder.safetensors``.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import config_to_dict
from ..data.base import ImageDataset
from ..errors import UserError
from ..models.checkpoint import load_state, save_encoder, save_state
from ..runs import RunDir, derive_seed
from . import distributed as dist_utils
from .objective import Objective

log = logging.getLogger(__name__)


class TrainingInterrupted(UserError):
    """Raised after SIGINT/SIGTERM once a resumable state has been saved."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every objective.

    Attributes:
        epochs: passes over the data.
        batch_size: global batch (split across DDP ranks).
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: peak learning rate.
        weight_decay: L2 penalty.
        momentum: SGD momentum.
        schedule: ``cosine`` decay per step, or ``constant``.
        warmup_epochs: linear warm-up length.
        seed: run seed (data order, augmentations, initialisation).
        checkpoint_every: save a resumable state every this many epochs (0 = only at the end).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
    """

    epochs: int = 10
    batch_size: int = 256
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-6
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = 0
    seed: int = 0
    checkpoint_every: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ValueError("warmup_epochs must be between 0 and epochs")
        if self.checkpoint_every < 0:
            raise ValueError("checkpoint_every must be >= 0")


@dataclass
class TrainResult:
    """What :func:`fit` returns."""

    objective: Objective
    history: list[dict[str, float]] = field(default_factory=list)
    run: RunDir | None = None
    seconds: float = 0.0
    images_per_second: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return dist_utils.default_device()
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available")
    return dev


def _make_optimizer(params: list[nn.Parameter], c: TrainConfig) -> torch.optim.Optimizer:
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
    return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)


def _lr_at(step: int, total: int, warmup: int, c: TrainConfig) -> float:
    if warmup and step < warmup:
        return c.lr * (step + 1) / warmup
    if c.schedule == "constant":
        return c.lr
    progress = (step - warmup) / max(1, total - warmup)
    return c.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop:  # second signal: give up at once
            raise KeyboardInterrupt
        log.warning("signal %d received: finishing this step and saving a resumable state", signum)
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def fit(
    objective: Objective,
    dataset: ImageDataset,
    config: TrainConfig | None = None,
    *,
    run: RunDir | None = None,
    resume: bool = False,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, Objective], None] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``objective`` on ``dataset``.

    Args:
        objective: what to optimise (owns the encoder, heads and augmentations).
        dataset: training images (labels used only by supervised objectives).
        config: optimisation settings.
        run: run directory for metrics, resumable state and the final encoder (None = no files).
        resume: continue from ``run/state.pt``.
        progress: show a progress bar (None = only on a terminal).
        on_epoch_end: called with (epoch, objective) after every epoch (e.g. to snapshot).
        extra_config: recorded in the final checkpoint's sidecar under ``training``.

    Raises:
        TrainingInterrupted: SIGINT/SIGTERM arrived; the state was saved for ``resume=True``.
        UserError: ``resume=True`` but no state exists, or the dataset is smaller than one batch.
    """
    c = config or TrainConfig()
    distributed = dist_utils.init_from_env()
    world, rank = dist_utils.world_size(), dist_utils.rank()
    if c.batch_size % world:
        raise UserError(f"batch_size {c.batch_size} must be divisible by the number of processes ({world})")
    local_bs = c.batch_size // world
    steps_per_epoch = len(dataset) // c.batch_size
    if steps_per_epoch == 0:
        raise UserError(f"dataset has {len(dataset)} images, fewer than one batch of {c.batch_size}")
    device = resolve_device(c.device)
    objective.to(device)
    torch.manual_seed(derive_seed(c.seed, "init"))
    model: nn.Module = objective
    if distributed:
        model = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = _make_optimizer(params, c)
    total_steps = c.epochs * steps_per_epoch
    warmup = c.warmup_epochs * steps_per_epoch

    start_epoch, start_step = 0, 0
    history: list[dict[str, float]] = []
    state_path = run.file("state.pt") if run is not None else None
    if resume:
        if state_path is None or not state_path.is_file():
            raise UserError(f"nothing to resume: {state_path} does not exist")
        state = load_state(state_path)
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_step = int(state["epoch"]), int(state["step"])
        history = list(state.get("history", []))
        log.info("resuming from epoch %d step %d", start_epoch, start_step)

    def save(epoch: int, step: int) -> None:
        if state_path is not None and dist_utils.is_main_process():
            save_state(
                state_path,
                {
                    "objective": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "history": history,
                    "config": config_to_dict(c),
                },
            )

    show = progress if progress is not None else None
    bar = tqdm(
        total=total_steps,
        initial=start_epoch * steps_per_epoch + start_step,
        disable=True if (show is False or not dist_utils.is_main_process()) else (False if show else None),
        unit="step",
        dynamic_ncols=True,
        desc=type(objective).__name__,
    )
    t_start = time.perf_counter()
    images_seen = 0
    try:
        with _StopFlag() as flag:
            for epoch in range(start_epoch, c.epochs):
                objective.train()  # an on_epoch_end callback may have switched to eval
                perm = torch.randperm(
                    len(dataset), generator=torch.Generator().manual_seed(derive_seed(c.seed, "order", epoch))
                )
                losses: list[float] = []
                t_epoch = time.perf_counter()
                first = start_step if epoch == start_epoch else 0
                for step in range(first, steps_per_epoch):
                    global_step = epoch * steps_per_epoch + step
                    for group in optimizer.param_groups:
                        group["lr"] = _lr_at(global_step, total_steps, warmup, c)
                    idx = perm[step * c.batch_size : (step + 1) * c.batch_size][rank * local_bs : (rank + 1) * local_bs]
                    images = dataset.float_images(idx).to(device, non_blocking=True)
                    labels = dataset.labels[idx].to(device) if dataset.labels is not None else None
                    gen = torch.Generator().manual_seed(derive_seed(c.seed, "aug", epoch, step, rank))
                    loss = model(images, labels, gen)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch} step {step}")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    objective.after_step()
                    losses.append(float(loss.detach()))
                    images_seen += images.shape[0] * world
                    elapsed = time.perf_counter() - t_start
                    bar.update(1)
                    bar.set_postfix(
                        epoch=epoch + 1, loss=f"{losses[-1]:.4f}", img_s=f"{images_seen / max(elapsed, 1e-9):.0f}"
                    )
                    if flag.stop:
                        save(epoch, step + 1)
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1} step {step + 1}; state saved to {state_path}"
                            if state_path is not None
                            else "interrupted (no run directory, nothing saved)"
                        )
                seconds = time.perf_counter() - t_epoch
                record = {
                    "epoch": epoch + 1,
                    "loss": sum(losses) / max(len(losses), 1),
                    "lr": optimizer.param_groups[0]["lr"],
                    "epoch_seconds": round(seconds, 3),
                    "images_per_second": round(len(losses) * c.batch_size / max(seconds, 1e-9), 1),
                }
                history.append(record)
                if run is not None:
                    run.log_metrics(record)
                log.info(
                    "epoch %d/%d loss %.4f (%.0f img/s)",
                    epoch + 1,
                    c.epochs,
                    record["loss"],
                    record["images_per_second"],
                )
                if c.checkpoint_every and (epoch + 1) % c.checkpoint_every == 0 and epoch + 1 < c.epochs:
                    save(epoch + 1, 0)
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, objective)
    finally:
        bar.close()
    objective.eval()
    seconds = time.perf_counter() - t_start
    save(c.epochs, 0)
    if run is not None and dist_utils.is_main_process():
        save_encoder(
            run.file("encoder.safetensors"),
            objective.encoder,
            training={"method": type(objective).__name__.lower(), **config_to_dict(c), **(extra_config or {})},
            data_manifest=dataset.fingerprint(),
        )
    dist_utils.barrier()
    return TrainResult(
        objective=objective,
        history=history,
        run=run,
        seconds=seconds,
        images_per_second=images_seen / max(seconds, 1e-9),
    )
