"""Settings of the membership section of ``encoder-audit audit`` and its presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..attacks.membership.targets import TargetRecipe

__all__ = ["MEMBERSHIP_PRESETS", "MembershipAuditConfig"]

DEFAULT_ATTACKS = (
    "encodermi-v",
    "encodermi-s",
    "encodermi-t",
    "single-embedding",
    "downstream-loss",
    "embedding-norm",
    "two-view",
    "blind",
)


@dataclass(frozen=True)
class MembershipAuditConfig:
    """What the membership audit runs.

    Attributes:
        attacks: EncoderMI-V/S/T and the baselines (``encoder-audit info`` lists them).
        shadow: the shadow encoder's recipe (EncoderMI's all-knowledge setting mirrors the target's).
        shadow_nonmembers: shadow non-members (None: as many as shadow members).
        reference: labelled shadow images for the downstream-loss / embedding-norm baselines.
        max_eval: cap on the members and on the non-members scored (each; None: all).
        n_views: augmented views per queried image (EncoderMI: 10).
        views: the query augmentation (``encodermi``).
        attack_params: per-attack config overrides.
    """

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    shadow: TargetRecipe = field(
        default_factory=lambda: TargetRecipe(members=64, epochs=200, batch_size=32, lr=2e-3, temperature=0.2)
    )
    shadow_nonmembers: int | None = None
    reference: int = 300
    max_eval: int | None = 500
    n_views: int = 10
    views: str = "encodermi"
    attack_params: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"encodermi-v": {"epochs": 150}, "encodermi-s": {"epochs": 100}}
    )

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ValueError("attacks must name at least one attack")
        if self.n_views < 1:
            raise ValueError("n_views must be >= 1")
        if self.max_eval is not None and self.max_eval < 2:
            raise ValueError("max_eval must be >= 2 (or null)")
        if self.reference < 0:
            raise ValueError("reference must be >= 0")


MEMBERSHIP_PRESETS: dict[str, MembershipAuditConfig] = {
    "smoke": MembershipAuditConfig(
        shadow=TargetRecipe(members=32, epochs=5, batch_size=32, lr=2e-3, temperature=0.2),
        reference=60,
        max_eval=60,
        n_views=4,
        attack_params={"encodermi-v": {"epochs": 10}, "encodermi-s": {"epochs": 10}},
    ),
    "quick": MembershipAuditConfig(),
    # EncoderMI scale: 20,000 shadow images (10k members / 10k non-members), ResNet-18 MoCo.
    "paper": MembershipAuditConfig(
        shadow=TargetRecipe(members=10_000, epochs=800, batch_size=512, lr=1e-3, arch="resnet18", method="moco"),
        reference=2000,
        max_eval=None,
        attack_params={},
    ),
}
