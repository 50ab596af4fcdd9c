"""Settings of the poisoning section of ``encoder-audit audit`` and its presets."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..attacks.poisoning.badencoder import BadEncoderConfig
from ..attacks.poisoning.experiment import ClipExperimentConfig

__all__ = ["POISONING_PRESETS", "PoisoningAuditConfig"]


@dataclass(frozen=True)
class PoisoningAuditConfig:
    """What the poisoning audit runs.

    Attributes:
        experiment: the CLIP-style training the poisons go into (Carlini & Terzis's setting at CPU scale).
        levels: ``(targeted poisons per target, backdoor poisons)`` per training run; ``(0, 0)`` is
            the paired no-poison control.
        badencoder: BadEncoder's settings, run on the victim when its weights are at hand.
        run_badencoder: run BadEncoder on a white-box victim.
    """

    experiment: ClipExperimentConfig = field(default_factory=lambda: ClipExperimentConfig(train_size=1000, epochs=30))
    levels: tuple[tuple[int, int], ...] = ((0, 0), (2, 10), (8, 30))
    badencoder: BadEncoderConfig = field(
        default_factory=lambda: BadEncoderConfig(shadow_size=2000, epochs=8, batch_size=64)
    )
    run_badencoder: bool = True

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("levels must name at least one (targeted, backdoor) poison count")
        if any(k < 0 or m < 0 for k, m in self.levels):
            raise ValueError(f"poison counts must be >= 0, got {list(self.levels)}")


POISONING_PRESETS: dict[str, PoisoningAuditConfig] = {
    "smoke": PoisoningAuditConfig(
        experiment=ClipExperimentConfig(train_size=200, epochs=2, targets=2, eval_images=200),
        levels=((0, 0), (4, 20)),
        badencoder=BadEncoderConfig(shadow_size=200, epochs=1, batch_size=64),
    ),
    "quick": PoisoningAuditConfig(),
    "paper": PoisoningAuditConfig(
        experiment=ClipExperimentConfig(train_size=2000, epochs=40),
        levels=((0, 0), (1, 10), (2, 25), (4, 50), (8, 100), (16, 200), (64, 400)),
        badencoder=BadEncoderConfig(shadow_size=10000, epochs=20, batch_size=128),
    ),
}
