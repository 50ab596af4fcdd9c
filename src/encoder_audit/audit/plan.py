"""What the main audit runs on: its configuration, presets and the disjoint data splits.

With no victim given, the audit trains the embedded default itself (SimCLR ``cnn-small`` on a
member set of Fashion-MNIST), so it knows the ground truth that membership inference needs. All
splits are drawn i.i.d. from one training split with one seeded permutation and saved as a manifest
(``splits.json``): members (the victim's training set), non-members, shadow data (the attacker's
own data from the same distribution), stealing queries and downstream-evaluation images never
overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..data import ImageDataset, SplitManifest, create_dataset, make_splits

SECTIONS = ("stealing", "membership", "poisoning", "protection")


@dataclass(frozen=True)
class AuditConfig:
    """Settings of ``encoder-audit audit``.

    Attributes:
        preset: ``quick`` (CPU, about 10 minutes) or ``paper`` (GPU scale).
        seeds: the audit runs once per seed (each stage derives its own seed from it) and the report
            shows mean ± std over them; default ``(0,)``. Non-empty, unique, non-negative.
        seed: the first of ``seeds``, kept for configurations written before ``seeds`` existed: give
            either one (``seed: 3`` means ``seeds: [3]``); both must agree if both are given.
        dataset: the data the victim was (or is) trained on; the audits draw from its training split.
        eval_datasets: labelled datasets for downstream evaluation of stolen encoders.
        sections: which audits to run.
        members: size of the victim's training (member) set when the audit trains the victim.
        nonmembers: held-out images from the same distribution.
        shadow: the attacker's shadow data (split again into shadow members / non-members).
        queries: the stealing attacker's query images.
        victim_encoder: architecture of the default victim.
        victim_epochs: SimCLR epochs of the default victim (many epochs on a small member set make
            the overfit encoder membership inference is about).
        victim_batch_size: SimCLR batch size of the default victim.
        members_known: for a given victim, the member split is the victim's real training data (set
            when ``--members`` is passed), so membership inference can be scored.
    """

    preset: Literal["quick", "paper"] = "quick"
    seeds: tuple[int, ...] | None = None
    seed: int | None = None
    dataset: str = "fashion-mnist"
    eval_datasets: tuple[str, ...] = ("fashion-mnist", "digits")
    sections: tuple[str, ...] = SECTIONS
    members: int = 2000
    nonmembers: int = 2000
    shadow: int = 4000
    queries: int = 5000
    victim_encoder: str = "cnn-small"
    victim_epochs: int = 30
    victim_batch_size: int = 256
    members_known: bool = False

    def __post_init__(self) -> None:
        seeds = (0 if self.seed is None else self.seed,) if self.seeds is None else tuple(self.seeds)
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {list(seeds)}")
        if self.seed is not None and self.seed != seeds[0]:
            raise ValueError(f"seed {self.seed} disagrees with seeds {list(seeds)}: give only seeds")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "seed", seeds[0])
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown audit section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
        for name in ("members", "nonmembers", "shadow", "queries", "victim_epochs", "victim_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


AUDIT_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    # EncoderMI / RDA scale: ResNet-18 SimCLR on CIFAR-10 (needs the data and a GPU).
    "paper": {
        "dataset": "cifar10",
        "eval_datasets": ("cifar10", "stl10"),
        "members": 25000,
        "nonmembers": 10000,
        "shadow": 10000,
        "queries": 2500,
        "victim_encoder": "resnet18",
        "victim_epochs": 200,
        "victim_batch_size": 512,
    },
}


def config_for(preset: str, **overrides: Any) -> AuditConfig:
    """The preset's config with ``overrides`` applied."""
    if preset not in AUDIT_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(AUDIT_PRESETS)}")
    return AuditConfig(**{"preset": preset, **AUDIT_PRESETS[preset], **overrides})


@dataclass
class AuditData:
    """The datasets every stage draws from (all subsets of ``train`` except ``test``)."""

    train: ImageDataset
    test: ImageDataset
    members: ImageDataset
    nonmembers: ImageDataset
    shadow: ImageDataset
    queries: ImageDataset
    manifest: SplitManifest


def prepare_data(
    config: AuditConfig, *, root: Path | None = None, manifest_path: Path | None = None, seed: int | None = None
) -> AuditData:
    """Load the dataset and draw (or reload) the disjoint splits (drawn with ``seed``, default ``config.seed``).

    Raises:
        ValueError: the splits need more images than the training split has.
    """
    train = create_dataset(config.dataset, "train", root=root)
    test = create_dataset(config.dataset, "test", root=root)
    if manifest_path is not None and manifest_path.is_file():
        manifest = SplitManifest.load(manifest_path)
    else:
        sizes = {
            "members": config.members,
            "nonmembers": config.nonmembers,
            "shadow": config.shadow,
            "queries": config.queries,
        }
        manifest = make_splits(train, sizes, seed=config.seed if seed is None else seed)
        if manifest_path is not None:
            manifest.save(manifest_path)
    return AuditData(
        train=train,
        test=test,
        members=manifest.select(train, "members"),
        nonmembers=manifest.select(train, "nonmembers"),
        shadow=manifest.select(train, "shadow"),
        queries=manifest.select(train, "queries"),
        manifest=manifest,
    )
