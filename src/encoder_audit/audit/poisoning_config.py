"""Settings of the poisoning section of ``encoder-audit audit`` and its presets.

The section models two threats:

* the victim's *training pipeline* (Carlini & Terzis, ICLR 2022): an attacker who can place a few
  (image, caption) pairs in the web data a CLIP-style model is trained on. The audit trains CPU-scale
  CLIP-style models itself, on captioned copies of the victim's data distribution, at a few poison
  counts beside a paired no-poison control;
* the victim's *weights* (BadEncoder, IEEE S&P 2022): an attacker who can fine-tune the encoder
  before it is distributed. Run on the victim itself when its weights are at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..attacks.poisoning.badencoder import BadEncoderConfig
from ..attacks.poisoning.experiment import ClipExperimentConfig
from ..attacks.poisoning.trigger import Trigger
from ..defenses.poison_detector import DetectorConfig

__all__ = ["POISONING_PRESETS", "PoisoningAuditConfig"]

DEFENSES = ("filter-density", "filter-similarity", "cleanclip")


@dataclass(frozen=True)
class PoisoningAuditConfig:
    """What the poisoning audit runs.

    Attributes:
        experiment: the CLIP-style training the poisons go into (Carlini & Terzis's setting at CPU
            scale; ``experiment.mode="replace"``: "the attacker adds a small number of pairs" to a set
            whose size is fixed, so each poison takes a clean pair's place).
        levels: ``(targeted poisons per target k, backdoor poisons m)`` per training run; ``(0, 0)``,
            the paired no-poison control every gain is measured against, is required.
        positive_control: a dose large enough to take over the pipeline at this scale (trained
            like a level but kept out of the verdict): the attack must fire on it, or a "low" verdict
            is only "inconclusive". None: no positive control.
        badencoder: BadEncoder's settings, run on the victim when its weights are at hand.
        run_badencoder: run BadEncoder on a white-box victim.
        downstream_train: labelled images the unsuspecting user's probe is trained on (BadEncoder).
        downstream_test: test images for CA / BA / ASR.
        defenses: defenses measured on the positive-control run (the strongest attack):
            ``filter-density`` (kNN density, no trusted data), ``filter-similarity`` (reference-model
            cosine; trains a reference model on the trusted pairs), ``cleanclip`` (fine-tuning).
        filter_fractions: removal fractions of the filters' sweep; the run's true poisoned fraction
            is always added, so the sweep reaches the level at which every poison fits the budget.
        filter_retrain: retrain without the flagged pairs at the true poisoned fraction and measure
            the attacks again (one training more per filter).
        cleanclip_epochs: CleanCLIP fine-tuning epochs at which the attacks are measured (one run at
            a constant learning rate, measured after each listed epoch).
        cleanclip_lr: CleanCLIP learning rate (Adam; a from-scratch CPU model needs more than the
            paper's 1e-5 on a pre-trained RN50).
        trusted_pairs: the defender's clean pairs (disjoint from the training pairs).
        high_gain: gain over the control at which an attack counts as a takeover.
        medium_gain: gain over the control at which it counts as a partial effect.
    """

    # quick: three trainings of 210 Adam steps (500 pairs, batch 64, 30 epochs) and BadEncoder at 375 steps of
    # batch 32 on the 4,000-image shadow split (ASR 0.75-0.98 on the quick victim, docs/benchmarks/poisoning.md).
    # At this scale 16 targeted copies flip 7 of 8 targets (the positive control fires) while even m = 100
    # backdoor poisons (20%) stay at ASR 0.03: the backdoor needs the 1,000-pair, 40-epoch scale.
    experiment: ClipExperimentConfig = field(
        default_factory=lambda: ClipExperimentConfig(train_size=500, epochs=30, eval_images=1000)
    )
    levels: tuple[tuple[int, int], ...] = ((0, 0), (2, 10))
    positive_control: tuple[int, int] | None = (16, 100)
    badencoder: BadEncoderConfig = field(
        default_factory=lambda: BadEncoderConfig(shadow_size=4000, epochs=3, batch_size=32)
    )
    run_badencoder: bool = True
    downstream_train: int = 3000
    downstream_test: int = 1000
    defenses: tuple[str, ...] = ("filter-density", "cleanclip")
    filter_fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3)
    filter_retrain: bool = False
    cleanclip_epochs: tuple[int, ...] = (2, 8)
    cleanclip_lr: float = 5e-4
    trusted_pairs: int = 500
    high_gain: float = 0.5
    medium_gain: float = 0.15

    def __post_init__(self) -> None:
        levels = tuple(tuple(int(v) for v in lv) for lv in self.levels)
        object.__setattr__(self, "levels", levels)
        if any(len(lv) != 2 for lv in levels):
            raise ValueError(f"each level is (targeted k, backdoor m), got {list(levels)}")
        if (0, 0) not in levels:
            raise ValueError("levels must include (0, 0): the no-poison control every gain is measured against")
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels must be unique, got {list(levels)}")
        if any(k < 0 or m < 0 for k, m in levels):
            raise ValueError(f"poison counts must be >= 0, got {list(levels)}")
        if self.positive_control is not None:
            pc = tuple(int(v) for v in self.positive_control)
            object.__setattr__(self, "positive_control", pc)
            if len(pc) != 2 or min(pc) < 0 or pc == (0, 0):
                raise ValueError(f"positive_control must be a poisoned (k, m) level, got {pc}")
        unknown = set(self.defenses) - set(DEFENSES)
        if unknown:
            raise ValueError(f"unknown defense(s) {sorted(unknown)}; choose from {list(DEFENSES)}")
        for q in self.filter_fractions:
            DetectorConfig(remove_fraction=q)  # validates 0 < q < 1
        if any(e < 1 for e in self.cleanclip_epochs):
            raise ValueError("cleanclip_epochs must be >= 1")
        if self.cleanclip_lr <= 0 or self.trusted_pairs < 2:
            raise ValueError("cleanclip_lr must be > 0 and trusted_pairs >= 2")
        if self.downstream_train < 10 or self.downstream_test < 10:
            raise ValueError("downstream_train and downstream_test must be >= 10")
        if not 0 < self.medium_gain <= self.high_gain <= 1:
            raise ValueError("need 0 < medium_gain <= high_gain <= 1")


POISONING_PRESETS: dict[str, PoisoningAuditConfig] = {
    "smoke": PoisoningAuditConfig(
        experiment=ClipExperimentConfig(
            train_size=200, epochs=3, image_width=8, text_layers=0, targets=4, eval_images=200
        ),
        levels=((0, 0), (4, 20)),
        positive_control=None,
        badencoder=BadEncoderConfig(shadow_size=256, epochs=1, batch_size=64),
        downstream_train=500,
        downstream_test=300,
        filter_fractions=(0.05, 0.2),
        cleanclip_epochs=(1,),
        trusted_pairs=128,
    ),
    "quick": PoisoningAuditConfig(),
    # Carlini & Terzis sweep poison counts from 1 upward; BadEncoder: 200 epochs, SGD lr 1e-3, batch 256
    # on all 50,000 CIFAR-10 images (README); CleanCLIP fine-tunes 10 epochs (research notes Sec. 3.1).
    "paper": PoisoningAuditConfig(
        experiment=ClipExperimentConfig(train_size=10_000, epochs=40, batch_size=128, targets=16, eval_images=2000),
        levels=((0, 0), (1, 10), (2, 25), (4, 50), (8, 100), (16, 200)),
        positive_control=(64, 400),
        badencoder=BadEncoderConfig(
            shadow_size=10_000,
            epochs=200,
            batch_size=256,
            lr=1e-3,
            optimizer="sgd",
            # the official CIFAR trigger: a white 10x10 square at offset 21 of 32 px
            trigger=Trigger(size=10, pattern="white", placement="fixed", position=(21, 21)),
        ),
        downstream_train=10_000,
        downstream_test=5_000,
        defenses=("filter-density", "filter-similarity", "cleanclip"),
        filter_fractions=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
        filter_retrain=True,
        cleanclip_epochs=(1, 2, 5, 10),
        trusted_pairs=5_000,
    ),
}
