"""Pre-train an encoder on a dataset: the Python API behind ``encoder-audit pretrain``.

>>> from encoder_audit.data import create_dataset
>>> from encoder_audit.train import pretrain, TrainConfig
>>> ds = create_dataset("synthetic", n=64)
>>> result = pretrain(ds, method="simclr", encoder="cnn-small",
...                   train=TrainConfig(epochs=1, batch_size=32), progress=False)
>>> result.objective.encoder.feature_dim
128
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import build_config, config_to_dict
from ..data.base import ImageDataset
from ..models.base import create_encoder
from ..runs import RunDir
from .loop import TrainConfig, TrainResult, fit
from .objective import OBJECTIVES


@dataclass(frozen=True)
class Preset:
    """Defaults of a scale: what ``--preset quick|paper`` fills in when a flag is not given."""

    dataset: str
    encoder: str
    max_images: int | None
    train: dict[str, Any] = field(default_factory=dict)
    eval_max_train: int | None = 10_000


PRESETS: dict[str, Preset] = {
    # CPU minutes: cnn-small on 20k Fashion-MNIST images (see docs/BENCHMARKS.md for the measured time).
    "quick": Preset("fashion-mnist", "cnn-small", 20_000, {"epochs": 4, "batch_size": 256, "lr": 2e-3}),
    # BadEncoder/RDA SimCLR targets: ResNet-18 (CIFAR stem) on CIFAR-10, Adam 1e-3, wd 1e-6, batch 512,
    # 200 epochs (RDA's SimCLR.py default). Needs a GPU to finish in hours.
    "paper": Preset(
        "cifar10",
        "resnet18",
        None,
        {"epochs": 200, "batch_size": 512, "lr": 1e-3, "weight_decay": 1e-6},
        eval_max_train=None,
    ),
}


def method_config(method: str, values: dict[str, Any] | None = None) -> Any:
    """Build the config dataclass of a training method from a mapping (``ValueError`` if invalid)."""
    cls = OBJECTIVES.config_class(method)
    if cls is None:
        if values:
            raise ValueError(f"method {method!r} takes no options")
        return None
    return build_config(cls, values or {})


def pretrain(
    dataset: ImageDataset,
    *,
    method: str = "simclr",
    encoder: str = "cnn-small",
    train: TrainConfig | None = None,
    method_options: dict[str, Any] | None = None,
    run: RunDir | None = None,
    resume: bool = False,
    progress: bool | None = None,
    image_size: int | None = None,
) -> TrainResult:
    """Train a fresh encoder on ``dataset`` with a contrastive (or supervised) method.

    Args:
        dataset: training images.
        method: ``simclr``, ``moco`` or ``supervised`` (see ``OBJECTIVES``).
        encoder: architecture name (see ``ENCODERS``).
        train: optimisation settings.
        method_options: fields of the method's config dataclass (e.g. ``{"temperature": 0.2}``).
        run: run directory for metrics, state and the final ``encoder.safetensors``.
        resume: continue an interrupted run in ``run``.
        progress: progress bar (None = on a terminal).
        image_size: input size of the encoder (default: the dataset's).

    Returns:
        The :class:`TrainResult`; ``result.objective.encoder`` is the trained network.
    """
    train = train or TrainConfig()
    opts = dict(method_options or {})
    if method == "supervised":
        opts.setdefault("num_classes", max(dataset.info.num_classes, 2))
    mconf = method_config(method, opts)
    info = dataset.info
    net = create_encoder(
        encoder, in_channels=info.channels, image_size=image_size or info.image_size, mean=info.mean, std=info.std
    )
    objective = OBJECTIVES.create(method, net, mconf)
    extra = {
        "method": method,
        "method_config": config_to_dict(mconf) if mconf is not None else {},
        "dataset": info.name,
        "dataset_split": dataset.split,
        "dataset_fingerprint": dataset.fingerprint(),
        "num_images": len(dataset),
    }
    return fit(objective, dataset, train, run=run, resume=resume, progress=progress, extra_config=extra)
