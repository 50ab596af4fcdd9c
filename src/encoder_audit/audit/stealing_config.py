"""Settings of the stealing section of ``encoder-audit audit`` and its ``smoke`` / ``quick`` / ``paper`` presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["STEALING_PRESETS", "StealingAuditConfig"]


@dataclass(frozen=True)
class StealingAuditConfig:
    """What the stealing audit runs.

    Attributes:
        methods: attacks compared at every budget (``encoder-audit info`` lists them).
        budgets: query images charged per attack.
        defenses: output-defense specs the strongest attack is run against (``noise:sigma=0.5``,
            ``round:decimals=1``, ``topk:k=8``).
        surrogate: the attacker's surrogate architecture.
        train_images: surrogate forward passes per run (views included), the same for every method so
            that methods get equal compute (None: ``epochs`` as given).
        epochs: epochs when ``train_images`` is None, and Cont-Steal's epochs (its query multiplier).
        max_epochs: cap on the epochs derived from ``train_images``.
        options: per-method config overrides, e.g. ``{"rda": {"train_views": 2}}``.
        eval_max_train: downstream training images per dataset for the probes.
        eval_max_test: downstream test images per dataset.
    """

    methods: tuple[str, ...] = ("rda", "conventional")
    budgets: tuple[int, ...] = (500, 5_000)
    defenses: tuple[str, ...] = ("noise:sigma=0.5",)
    surrogate: str = "cnn-small"
    train_images: int | None = 8_000
    epochs: int = 10
    max_epochs: int = 40
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"rda": {"train_views": 2}})
    eval_max_train: int = 2_000
    eval_max_test: int = 1_000

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("methods must name at least one attack")
        if not self.budgets or any(b < 1 for b in self.budgets):
            raise ValueError(f"budgets must be positive query counts, got {list(self.budgets)}")
        if self.train_images is not None and self.train_images < 1:
            raise ValueError("train_images must be >= 1 (or null)")
        for name in ("epochs", "max_epochs", "eval_max_train", "eval_max_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


STEALING_PRESETS: dict[str, StealingAuditConfig] = {
    "smoke": StealingAuditConfig(
        budgets=(200,), train_images=800, epochs=1, max_epochs=4, eval_max_train=300, eval_max_test=200
    ),
    "quick": StealingAuditConfig(),
    # RDA's published setting for 32x32 targets: ResNet-18 surrogate, 100 epochs, full downstream sets.
    "paper": StealingAuditConfig(
        budgets=(500, 2_500, 5_000),
        surrogate="resnet18",
        train_images=None,
        epochs=100,
        max_epochs=100,
        options={},
        eval_max_train=50_000,
        eval_max_test=10_000,
    ),
}
