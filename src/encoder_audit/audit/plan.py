"""What the main audit runs on: its configuration, presets and the disjoint data splits.

With no victim given, the audit trains the embedded default itself (SimCLR ``cnn-small`` on a
member set of Fashion-MNIST), so it knows the ground truth that membership inference needs. All
splits are drawn i.i.d. from one training split with one seeded permutation and saved as a manifest
(``splits.json``): members (the victim's training set), non-members, shadow data (the attacker's
own data from the same distribution), stealing queries and downstream-evaluation images never
overlap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data import ImageDataset, SplitManifest, create_dataset, make_splits

if TYPE_CHECKING:
    from .config import DataConfig

log = logging.getLogger(__name__)

MIN_PER_SPLIT = 8
TEST_FRACTION = 0.2


def same_images(a: ImageDataset, b: ImageDataset) -> bool:
    """Whether two splits are the same images (a folder without train/test sub-folders gives both)."""
    if a.paths is not None and b.paths is not None:
        return a.paths == b.paths
    return len(a) == len(b) and bool((a.images == b.images).all())


def hold_out(ds: ImageDataset, seed: int, fraction: float = TEST_FRACTION) -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)``: a seeded ``fraction`` of ``ds`` held out as its test split."""
    n_test = max(1, round(fraction * len(ds)))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return ds.subset(order[n_test:].sort().values), ds.subset(order[:n_test].sort().values)


def fit_sizes(sizes: dict[str, int], available: int) -> tuple[dict[str, int], str | None]:
    """Split sizes scaled down in proportion to what ``available`` images hold, and a note saying so.

    Raises:
        ValueError: fewer than ``MIN_PER_SPLIT`` images would be left for some split.
    """
    total = sum(sizes.values())
    if total <= available:
        return sizes, None
    scaled = {k: int(v * available / total) for k, v in sizes.items()}
    if min(scaled.values()) < MIN_PER_SPLIT:
        raise ValueError(
            f"the audit's splits ({', '.join(f'{k} {v}' for k, v in sizes.items())}) need at least "
            f"{MIN_PER_SPLIT * len(sizes)} images; the training split has {available}"
        )
    note = (
        f"The training split holds {available:,} images, fewer than the {total:,} the splits ask for: sizes "
        f"scaled to {', '.join(f'{k} {v:,}' for k, v in scaled.items())}."
    )
    return scaled, note


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
    notes: list[str] = field(default_factory=list)


def prepare_data(
    config: DataConfig, *, seed: int, root: Path | None = None, manifest_path: Path | None = None
) -> AuditData:
    """Load the dataset and draw (or reload) the disjoint splits (drawn with ``seed``).

    Raises:
        ValueError: the splits need more images than the training split has.
    """
    train = create_dataset(config.dataset, "train", root=root)
    test = create_dataset(config.dataset, "test", root=root)
    notes: list[str] = []
    if same_images(train, test):
        train, test = hold_out(train, seed=0)
        notes.append(
            f"{config.dataset} has no separate test split: {len(test):,} of its images "
            f"({TEST_FRACTION:.0%}) are held out as the test split."
        )
    if manifest_path is not None and manifest_path.is_file():
        manifest = SplitManifest.load(manifest_path)
    else:
        sizes = {
            "members": config.members,
            "nonmembers": config.nonmembers,
            "shadow": config.shadow,
            "queries": config.queries,
        }
        sizes, note = fit_sizes(sizes, len(train))
        if note:
            log.warning("%s", note)
            notes.append(note)
        manifest = make_splits(train, sizes, seed=seed)
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
        notes=notes,
    )
