"""Scale presets of the stealing audit: ``paper`` (RDA's published settings) and ``quick`` (shared CPU).

``quick`` shrinks what the RDA code runs for 32x32 targets (ResNet-18 surrogate, 100 epochs, Q = 5)
to what a shared 2-core CPU finishes in minutes: a ``cnn-small`` surrogate, a fixed number of
surrogate training images per run (so methods get equal compute whatever their query set size),
Q = 2 training views for RDA and 10 epochs for Cont-Steal (whose query cost is N x epochs). P = 10,
tau, alpha, beta and the optimiser are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["STEALING_PRESETS", "StealingPreset"]


@dataclass(frozen=True)
class StealingPreset:
    """Attributes:
    surrogate: surrogate architecture.
    train_images: surrogate forward passes per run (views included); epochs follow from it
        (None = use ``epochs`` as given).
    epochs: epochs when ``train_images`` is None, and Cont-Steal's epochs (its query multiplier).
    max_epochs: cap on epochs derived from ``train_images``.
    options: per-method config overrides.
    eval_max_train: downstream training images per dataset for probes.
    eval_max_test: test images per dataset.
    """

    surrogate: str
    train_images: int | None
    epochs: int
    max_epochs: int = 100
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_max_train: int = 5_000
    eval_max_test: int = 2_000


STEALING_PRESETS: dict[str, StealingPreset] = {
    "quick": StealingPreset(
        surrogate="cnn-small",
        train_images=8_000,
        epochs=10,
        max_epochs=40,
        options={"rda": {"train_views": 2}},
        eval_max_train=2_000,
        eval_max_test=1_000,
    ),
    "paper": StealingPreset(surrogate="resnet18", train_images=None, epochs=100, eval_max_train=50_000),
}


def epochs_for(preset: StealingPreset, method: str, n: int, views: int) -> int:
    """Epochs of one run: Cont-Steal's preset epochs; else enough for ``train_images`` surrogate images."""
    if method == "contsteal" or preset.train_images is None:
        return preset.epochs
    return int(min(preset.max_epochs, max(1, round(preset.train_images / max(1, n * views)))))
