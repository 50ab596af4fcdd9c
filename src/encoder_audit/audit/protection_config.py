"""Settings of the data-protection section of ``encoder-audit audit`` and its presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROTECTION_PRESETS", "ProtectionAuditConfig"]


@dataclass(frozen=True)
class ProtectionAuditConfig:
    """What the protection audit runs.

    Attributes:
        methods: protections crafted on the data owner's images (``uc`` = Unlearnable Clusters).
        labelings: how the trainer labels the protected data (``true``, ``pseudo``, ``coarse``, ``ssl``).
        train: protected training images (None: the whole training split).
        test: clean test images (None: the whole test split).
        uc: Unlearnable Clusters overrides (:class:`~encoder_audit.attacks.unlearnable.uc.UCConfig` fields).
        trainer: the fresh trainer's overrides (:class:`~encoder_audit.attacks.unlearnable.evaluation.TrainerConfig`).
        countermeasures: countermeasure specs the trainer may apply (``blur:sigma=1``, ``jpeg:quality=10``).
    """

    methods: tuple[str, ...] = ("uc",)
    labelings: tuple[str, ...] = ("true", "pseudo")
    train: int | None = 1000
    test: int | None = 1000
    uc: dict[str, Any] = field(
        default_factory=lambda: {
            "epochs": 40,
            "batch_size": 32,
            "lr": 5e-3,
            "ngf": 16,
            "n_blocks": 2,
            "train_on": "members",
        }
    )
    trainer: dict[str, Any] = field(default_factory=lambda: {"epochs": 6, "batch_size": 64})
    countermeasures: tuple[str, ...] = ("blur:sigma=1",)

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("methods must name at least one protection")
        if not self.labelings:
            raise ValueError("labelings must name at least one labeling")
        for name in ("train", "test"):
            v = getattr(self, name)
            if v is not None and v < 10:
                raise ValueError(f"{name} must be >= 10 images (or null for all)")


PROTECTION_PRESETS: dict[str, ProtectionAuditConfig] = {
    "smoke": ProtectionAuditConfig(
        train=200,
        test=200,
        uc={"epochs": 2, "batch_size": 32, "lr": 5e-3, "ngf": 8, "n_blocks": 1, "train_on": "members"},
        trainer={"epochs": 1, "batch_size": 64, "ssl_epochs": 1},
    ),
    "quick": ProtectionAuditConfig(),
    # The official UC settings and a longer trainer.
    "paper": ProtectionAuditConfig(
        train=None,
        test=None,
        uc={},
        trainer={"epochs": 90, "batch_size": 512, "optimizer": "sgd", "lr": 0.1},
    ),
}
