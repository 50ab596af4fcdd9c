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
from typing import TYPE_CHECKING

from ..data import ImageDataset, SplitManifest, create_dataset, make_splits

if TYPE_CHECKING:
    from .config import DataConfig

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
    config: DataConfig, *, seed: int, root: Path | None = None, manifest_path: Path | None = None
) -> AuditData:
    """Load the dataset and draw (or reload) the disjoint splits (drawn with ``seed``).

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
    )
