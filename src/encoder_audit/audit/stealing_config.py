"""Settings of the stealing section of ``encoder-audit audit`` and its ``smoke`` / ``quick`` / ``paper`` presets.

Sources of the defaults: Wu et al., "Refine, Discriminate and Align: Stealing Encoders via
Sample-Wise Prototypes and Multi-Relational Extraction", ECCV 2024 (arXiv 2312.00855; official
``RDA.py`` argparse defaults), and the baselines it compares with (Conventional and Cont-Steal, Sha
et al., CVPR 2023; StolenEncoder, Liu et al., CCS 2022). Every comparison runs under the
equal-compute rule of :mod:`encoder_audit.attacks.stealing.compute`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..attacks.stealing.compute import RULES

__all__ = ["STEALING_PRESETS", "StealingAuditConfig"]


@dataclass(frozen=True)
class StealingAuditConfig:
    """What the stealing audit runs.

    Attributes:
        methods: attacks compared at every budget (``encoder-audit info`` lists them). RDA "compare[s]
            with three representative baselines, i.e., Conventional, StolenEncoder, and Cont-Steal".
        budgets: images charged to the victim per attack (the equal-images arm).
        equal_n: distinct query images of the paper's arm, where every method uses the same N and RDA
            is charged N x P ("query_data_num" 2,500 in ``RDA.py``); None skips that arm.
        rule: ``steps`` (every method the same optimizer steps) or ``forward_passes`` (the same
            surrogate forward passes, views included).
        compute: steps (or forward passes) per run. The paper trains 100 epochs of 25 batches at N =
            2,500 (2,500 steps).
        defenses: output-defense specs run against the strongest methods at the largest budget (RDA's
            defenses: "noising, rounding, and top-k"; B4B, NeurIPS 2023).
        defense_methods: how many of the strongest methods face each defense.
        surrogate: the attacker's surrogate architecture (RDA: ResNet-18, random init).
        options: per-method attack options, e.g. ``{"rda": {"train_views": 2}}``.
        common: options of every attack (``batch_size``: RDA's 100).
        positive_control: also steal a random-init encoder of the surrogate's own architecture (a
            target the surrogate can represent exactly), with the strongest method at the smallest
            budget: the attack must copy it, or a "low" verdict is not backed.
        fire_fidelity: centred-cosine fidelity at which an attack counts as having copied a target
            (used for the controls). 0.4 separates the two controls as measured on the quick victim
            (docs/benchmarks/stealing.md): a random-init surrogate that made no query scores 0.16 on
            Fashion-MNIST, Conventional copies a random-init target to 0.49 in 60 steps at 500 images.
        eval_max_train: downstream training images per dataset (the kNN bank and probes).
        eval_max_test: downstream test images per dataset.
    """

    methods: tuple[str, ...] = ("rda", "conventional", "stolenencoder", "contsteal")
    budgets: tuple[int, ...] = (500, 5_000)
    equal_n: int | None = None
    rule: str = "steps"
    compute: int = 60
    defenses: tuple[str, ...] = ("noise:sigma=0.5",)
    defense_methods: int = 2
    surrogate: str = "cnn-small"
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"rda": {"train_views": 2}})
    common: dict[str, Any] = field(default_factory=dict)
    positive_control: bool = True
    fire_fidelity: float = 0.4
    eval_max_train: int = 2_000
    eval_max_test: int = 1_000

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("methods must name at least one attack")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be unique, got {list(self.methods)}")
        if not self.budgets or any(b < 2 for b in self.budgets):
            raise ValueError(f"budgets must be query counts >= 2, got {list(self.budgets)}")
        if self.equal_n is not None and self.equal_n < 2:
            raise ValueError("equal_n must be >= 2 (or null)")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {list(RULES)}, got {self.rule!r}")
        if self.compute < 1:
            raise ValueError("compute must be >= 1")
        if self.defense_methods < 1:
            raise ValueError("defense_methods must be >= 1")
        if not 0 < self.fire_fidelity < 1:
            raise ValueError("fire_fidelity must be in (0, 1)")
        if self.eval_max_train < 10 or self.eval_max_test < 2:
            raise ValueError("eval_max_train must be >= 10 and eval_max_test >= 2")
        unknown = set(self.options) - set(self.methods)
        if unknown:
            raise ValueError(f"options name methods that are not run: {sorted(unknown)}")


STEALING_PRESETS: dict[str, StealingAuditConfig] = {
    # CI: one budget, two methods, a handful of steps; the whole stage in about 10 s on 2 cores.
    "smoke": StealingAuditConfig(
        methods=("rda", "conventional"),
        budgets=(300,),
        compute=8,
        defenses=("round:decimals=1",),
        defense_methods=1,
        options={"rda": {"train_views": 1, "prototype_views": 3}},
        eval_max_train=200,
        eval_max_test=100,
    ),
    # The embedded CPU default (about a minute on 2 cores): all four methods at RDA's 2,500 images
    # charged, 40 equal steps each, Gaussian noise against the two strongest.
    "quick": StealingAuditConfig(
        methods=("rda", "conventional", "stolenencoder", "contsteal"),
        budgets=(2_500,),
        compute=40,
        defenses=("noise:sigma=0.5",),
        eval_max_test=500,
    ),
    # RDA's published setting for 32x32 targets: ResNet-18 surrogate, N = 2,500, 100 epochs of 25
    # batches (2,500 steps), Q = 5 training views, P = 10 prototype views; both arms.
    "paper": StealingAuditConfig(
        methods=("rda", "conventional", "stolenencoder", "contsteal"),
        budgets=(2_500, 25_000),
        equal_n=2_500,
        compute=2_500,
        defenses=("noise:sigma=0.5", "round:decimals=1", "topk:k=5", "b4b"),
        surrogate="resnet18",
        options={},
        eval_max_train=50_000,
        eval_max_test=10_000,
    ),
}
