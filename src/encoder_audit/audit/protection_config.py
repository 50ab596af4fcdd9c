"""Settings of the data-protection section of ``encoder-audit audit`` and its presets.

The section asks: if a data owner publishes images protected with Unlearnable Clusters (Zhang et al.,
CVPR 2023, arXiv 2301.01217), can a trainer still learn the clean task from them, whatever labels it
uses? Defaults follow the paper and its official code (``jiamingzhang94/Unlearnable-Clusters``
``config/*.yaml``) where the CPU allows, and say so where they do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROTECTION_PRESETS", "SURROGATES", "ProtectionAuditConfig"]

SURROGATES = ("supervised", "victim", "simclr")
_LABELINGS = ("true", "coarse", "pseudo", "fine", "ssl")


@dataclass(frozen=True)
class ProtectionAuditConfig:
    """What the protection audit runs.

    Attributes:
        surrogates: the protector's surrogates, one UC protection each.
            ``supervised``: a classifier trained on the labelled shadow split (images disjoint from the
            protected ones): the paper's setting, whose surrogate is "an ImageNet pre-trained ResNet-50"
            trained on other labelled data. ``victim``: the audited encoder itself (needs its weights).
            ``simclr``: contrastive pre-training on the shadow split without labels.
        labelings: how the trainer labels the protected data (``true``, ``coarse``, ``pseudo``, ``fine``, ``ssl``):
            the paper's label-agnostic setting, in which the protector's "m-class unlearnable dataset may
            be exploited by the hacker as a n-class dataset".
        train: protected images drawn from the query split (None: the whole split).
        test: clean test images (None: the whole test split).
        eps: L-inf budget in [0, 1] pixel units (official ``epsilon: 16/255``).
        k_candidates: the K of K-means swept for each surrogate (official ``num_clusters: 10``; the
            paper ablates the number of clusters).
        k_tolerance: the rule for K: the candidate with the highest AMI on held-out labelled data; the
            smallest among those within this of the best (purity, which rises with K, chose a K that
            protected far less: see :func:`~encoder_audit.attacks.unlearnable.clustering.choose_k`).
        min_cluster_images: a candidate K must leave at least this many protected images per cluster on
            average (a trainer cannot learn a shortcut from a handful of images).
        controls: also run the positive control (UC with the classes as clusters, which must protect)
            and the negative control (random noise at the same budget, which must not).
        uc: Unlearnable Clusters overrides (:class:`~encoder_audit.attacks.unlearnable.uc.UCConfig` fields).
        surrogate_train: training of the ``supervised`` / ``simclr`` surrogates
            (:func:`~encoder_audit.attacks.unlearnable.surrogate.train_surrogate` arguments).
        surrogate_holdout: share of the shadow split kept out of surrogate training to choose K on.
        trainer: the fresh trainer's overrides (:class:`~encoder_audit.attacks.unlearnable.evaluation.TrainerConfig`).
        countermeasures: countermeasure specs the trainer applies to the strongest protection and to
            clean data (``pgd-at``, ``mixup``, ``jpeg:quality=10``, ``blur:sigma=1``), true labels.
        holds_at: protection holds when the trainer loses at least this share of its room above chance
            (``(clean - protected) / (clean - chance)``) under every labeling.
        fails_below: protection fails when it loses less than this share under some labeling.
    """

    surrogates: tuple[str, ...] = ("supervised", "victim")
    labelings: tuple[str, ...] = ("true", "coarse")
    train: int | None = 1000
    test: int | None = 1000
    eps: float = 16 / 255
    k_candidates: tuple[int, ...] = (10, 20, 50, 100)
    k_tolerance: float = 0.01
    min_cluster_images: int = 50
    controls: bool = True
    uc: dict[str, Any] = field(
        default_factory=lambda: {
            "epochs": 20,
            "batch_size": 32,
            "lr": 5e-3,
            "ngf": 16,
            "n_blocks": 2,
            "train_on": "members",
            "kmeans_init": 2,
        }
    )
    surrogate_train: dict[str, Any] = field(default_factory=lambda: {"epochs": 4, "batch_size": 128, "lr": 2e-3})
    surrogate_holdout: float = 0.25
    trainer: dict[str, Any] = field(default_factory=lambda: {"epochs": 6, "batch_size": 64})
    countermeasures: tuple[str, ...] = ()
    holds_at: float = 0.5
    fails_below: float = 0.15

    def __post_init__(self) -> None:
        if not self.surrogates:
            raise ValueError("protection.surrogates must name at least one surrogate")
        bad = set(self.surrogates) - set(SURROGATES)
        if bad:
            raise ValueError(f"unknown protection surrogate(s) {sorted(bad)}; choose from {list(SURROGATES)}")
        if not self.labelings:
            raise ValueError("protection.labelings must name at least one labeling")
        bad = set(self.labelings) - set(_LABELINGS)
        if bad:
            raise ValueError(f"unknown labeling(s) {sorted(bad)}; choose from {list(_LABELINGS)}")
        if "true" not in self.labelings:
            raise ValueError("protection.labelings must include 'true' (the controls and countermeasures use it)")
        for name in ("train", "test"):
            v = getattr(self, name)
            if v is not None and v < 10:
                raise ValueError(f"protection.{name} must be >= 10 images (or null for all)")
        if not 0 < self.eps <= 1:
            raise ValueError(f"protection.eps must be in (0, 1], got {self.eps}")
        if not self.k_candidates or any(k < 2 for k in self.k_candidates):
            raise ValueError("protection.k_candidates must be integers >= 2")
        if not 0 <= self.k_tolerance < 1:
            raise ValueError("protection.k_tolerance must be in [0, 1)")
        if self.min_cluster_images < 1:
            raise ValueError("protection.min_cluster_images must be >= 1")
        if not 0 < self.surrogate_holdout < 1:
            raise ValueError("protection.surrogate_holdout must be in (0, 1)")
        if not 0 < self.fails_below < self.holds_at <= 1:
            raise ValueError("protection needs 0 < fails_below < holds_at <= 1")
        for key in ("eps", "clusters", "seed", "cluster_source"):
            if key in self.uc:
                raise ValueError(f"protection.uc.{key} is set by the audit (use protection.eps / k_candidates)")
        from ..attacks.unlearnable.countermeasures import parse_countermeasure

        for spec in self.countermeasures:
            parse_countermeasure(spec)


PROTECTION_PRESETS: dict[str, ProtectionAuditConfig] = {
    # About 10 s on 2 cores: one surrogate, small sets, one K, one-epoch generators and trainer.
    "smoke": ProtectionAuditConfig(
        surrogates=("supervised",),
        labelings=("true",),
        train=200,
        test=200,
        k_candidates=(10,),
        min_cluster_images=10,
        uc={
            "epochs": 1,
            "batch_size": 32,
            "lr": 5e-3,
            "ngf": 4,
            "n_blocks": 1,
            "train_on": "members",
            "kmeans_init": 1,
        },
        surrogate_train={"epochs": 1, "batch_size": 128, "lr": 2e-3},
        trainer={"epochs": 1, "batch_size": 64, "ssl_epochs": 1},
    ),
    # The embedded CPU default (about a minute on 2 cores): the supervised surrogate only (add ``victim``
    # with --set protection.surrogates=[supervised,victim]), 10 generator epochs, a 5-epoch trainer.
    "quick": ProtectionAuditConfig(
        surrogates=("supervised",),
        uc={
            "epochs": 10,
            "batch_size": 32,
            "lr": 5e-3,
            "ngf": 16,
            "n_blocks": 2,
            "train_on": "members",
            "kmeans_init": 2,
        },
        trainer={"epochs": 5, "batch_size": 64},
    ),
    # CIFAR-10 / ResNet-18 at the official settings: 50 generator epochs, batch 256, Adam 1e-4 (the
    # ``UCConfig`` defaults), a 90-epoch SGD trainer ("SGD lr 0.1, 90 epochs, batch 512"), every labeling
    # and the countermeasures.
    "paper": ProtectionAuditConfig(
        surrogates=("supervised", "victim"),
        labelings=("true", "coarse", "pseudo", "ssl"),
        train=None,
        test=None,
        min_cluster_images=100,
        uc={},
        surrogate_train={"arch": "resnet18", "epochs": 30, "batch_size": 256, "lr": 1e-3},
        trainer={"arch": "resnet18", "epochs": 90, "batch_size": 512, "optimizer": "sgd", "lr": 0.1, "ssl_epochs": 100},
        countermeasures=("pgd-at:eps=8/255,steps=10", "mixup", "jpeg:quality=10", "blur:sigma=1"),
    ),
}
