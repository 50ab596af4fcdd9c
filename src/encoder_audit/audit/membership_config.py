"""Settings of the membership section of ``encoder-audit audit`` and its presets.

Sources of the defaults: Liu, Jia, Qu, Gong, "EncoderMI: Membership Inference against Pre-trained
Encoders in Contrastive Learning", ACM CCS 2021 (arXiv 2108.11023), and Carlini et al., "Membership
Inference Attacks From First Principles", IEEE S&P 2022 (TPR at low FPR, which needs non-members).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..attacks.membership.targets import RECIPES, TargetRecipe

__all__ = ["DEFAULT_ATTACKS", "MEMBERSHIP_PRESETS", "MembershipAuditConfig"]

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
        shadow: the shadow encoder's recipe. EncoderMI trains the shadow "with the same architecture
            and training algorithm" in its all-knowledge setting; ours is the leaking ``overfit`` recipe
            (its members must differ from its non-members for the classifiers to learn anything).
        shadow_nonmembers: shadow non-members (None: as many as shadow members; the paper splits its
            shadow data into two equal halves).
        reference: labelled shadow images for the downstream-loss / embedding-norm baselines.
        members: cap on the victim's members scored (None: all).
        nonmembers: victim non-members scored. 500 by default: TPR at 1% FPR needs >= 100 non-members
            and an AUC interval of +-0.1 needs hundreds (Carlini et al. 2022 report TPR at low FPR).
        n_views: augmented views per queried image per draw (EncoderMI: "n = 10", 45 similarities).
        view_draws: independent draws of the ``n_views`` views; scores are averaged over draws and the
            spread of the AUC across draws is reported.
        views: the query augmentation: ``auto`` is the victim's own training augmentation when its
            sidecar records one (EncoderMI queries with "the data augmentation used to pre-train the
            encoder"), else ``simclr``; or a recipe name (``encodermi``, ``moco-v2``, ...).
        outputs: ``auto`` attacks the served features ``h`` and, when the victim's projection head is
            at hand, the head's output ``z``; ``h`` attacks only the served features.
        positive_control: recipe of the known-leaking target the audit trains (architecture: the
            victim's when known) and attacks beside the victim; None disables the control (a "low"
            verdict then stays unchecked).
        control_nonmembers: non-members of the positive control scored.
        negative_control: score non-members of the victim labelled as members (a null split that
            must not fire).
        fire_auc: an attack "fires" on a target when its AUC is at least this and the lower end of
            the AUC's 95% interval is above 0.5.
        bootstrap: resamples of the AUC's 95% interval.
        attack_params: per-attack config overrides.
    """

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    shadow: TargetRecipe = field(default_factory=lambda: RECIPES["overfit"])
    shadow_nonmembers: int | None = None
    reference: int = 300
    members: int | None = 500
    nonmembers: int = 500
    n_views: int = 10
    view_draws: int = 3
    views: str = "auto"
    outputs: str = "auto"
    positive_control: TargetRecipe | None = field(default_factory=lambda: RECIPES["overfit"])
    control_nonmembers: int = 500
    negative_control: bool = True
    fire_auc: float = 0.6
    bootstrap: int = 1000
    attack_params: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"encodermi-v": {"epochs": 150}, "encodermi-s": {"epochs": 100}}
    )

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ValueError("attacks must name at least one attack")
        if self.n_views < 2:
            raise ValueError("n_views must be >= 2")
        if self.view_draws < 1:
            raise ValueError("view_draws must be >= 1")
        if self.members is not None and self.members < 2:
            raise ValueError("members must be >= 2 (or null)")
        if self.nonmembers < 2 or self.control_nonmembers < 2:
            raise ValueError("nonmembers and control_nonmembers must be >= 2")
        if self.reference < 0:
            raise ValueError("reference must be >= 0")
        if self.outputs not in ("auto", "h"):
            raise ValueError(f"outputs must be auto or h, got {self.outputs!r}")
        if not 0.5 < self.fire_auc < 1:
            raise ValueError("fire_auc must be in (0.5, 1)")
        if self.bootstrap < 0:
            raise ValueError("bootstrap must be >= 0")
        if self.views != "auto":
            from ..augment import VIEWS

            if self.views not in VIEWS:
                raise ValueError(
                    f"unknown view recipe {self.views!r}; choose auto or one of {', '.join(VIEWS.names())}"
                )
        from ..attacks.registry import attack_names

        unknown = set(self.attacks) - set(attack_names("membership"))
        if unknown:
            raise ValueError(f"unknown membership attack(s) {sorted(unknown)}")


# smoke: the whole stage in about 10 s on 2 cores; the short control still separates its 16 members.
_SMOKE_RECIPE = TargetRecipe(members=16, epochs=40, batch_size=16, lr=2e-3, temperature=0.2, head="none")

# quick: the shipped ``overfit`` recipe (32 members, 1,000 epochs) costs about 2 minutes of CPU per model;
# 16 members at batch 16, T = 0.1, for 500 epochs is a quarter of it (docs/benchmarks/membership.md).
_QUICK_RECIPE = TargetRecipe(members=16, epochs=500, batch_size=16, lr=2e-3, temperature=0.1, head="none")

MEMBERSHIP_PRESETS: dict[str, MembershipAuditConfig] = {
    "smoke": MembershipAuditConfig(
        attacks=("encodermi-v", "encodermi-s", "encodermi-t", "two-view", "blind"),
        shadow=_SMOKE_RECIPE,
        reference=0,
        members=64,
        nonmembers=100,
        n_views=4,
        view_draws=1,
        positive_control=_SMOKE_RECIPE,
        control_nonmembers=100,
        bootstrap=100,
        attack_params={"encodermi-v": {"epochs": 10}, "encodermi-s": {"epochs": 10}},
    ),
    # quick: 200 members (+ 200 for the null split) and 500 non-members, 2 view draws; at 3 draws and 500
    # members the stage took 420 s on a shared, saturated 2-core machine (load ~10), a third of it scoring.
    "quick": MembershipAuditConfig(shadow=_QUICK_RECIPE, positive_control=_QUICK_RECIPE, members=200, view_draws=2),
    # EncoderMI: ResNet-18 MoCo v1 (linear head) shadows on "20,000 images" (10k members / 10k
    # non-members); the paper preset's 10,000 shadow images hold a 4k / 4k shadow, 1k reference and the
    # positive control (a ResNet-18 memorising 500 images, 500 non-members). 5,000 victim non-members
    # (+ as many for the null split) fit the 10,000 of the data preset.
    "paper": MembershipAuditConfig(
        shadow=TargetRecipe(
            members=4000, epochs=800, batch_size=512, lr=1e-3, arch="resnet18", method="moco", version="v1"
        ),
        reference=1000,
        members=None,
        nonmembers=5000,
        positive_control=TargetRecipe(
            members=500, epochs=800, batch_size=250, lr=1e-3, arch="resnet18", temperature=0.2, head="none"
        ),
        control_nonmembers=500,
        attack_params={},
    ),
}
