"""Split manifests: which samples of which dataset a run used, saved as JSON with a hash.

A membership audit's members/non-members, a stealing attack's query set and a held-out evaluation set
are all :class:`SplitManifest` files, so any result can say exactly which images it touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_write_text
from .base import ImageDataset

MANIFEST_VERSION = 1


def indices_hash(indices: Sequence[int] | np.ndarray) -> str:
    """sha256 of the int64 little-endian bytes of ``indices``."""
    arr = np.ascontiguousarray(np.asarray(indices, dtype="<i8"))
    return hashlib.sha256(arr.tobytes()).hexdigest()


@dataclass(frozen=True)
class SplitManifest:
    """Named index sets into one split of one dataset."""

    dataset: str
    split: str
    parts: Mapping[str, tuple[int, ...]]
    seed: int | None = None

    def hash(self) -> str:
        h = hashlib.sha256(f"{self.dataset}:{self.split}".encode())
        for name in sorted(self.parts):
            h.update(name.encode() + b":" + indices_hash(self.parts[name]).encode())
        return h.hexdigest()

    def to_json(self) -> dict[str, object]:
        return {
            "version": MANIFEST_VERSION,
            "dataset": self.dataset,
            "split": self.split,
            "seed": self.seed,
            "sha256": self.hash(),
            "parts": {
                k: {"count": len(v), "sha256": indices_hash(v), "indices": list(v)} for k, v in self.parts.items()
            },
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_json()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SplitManifest:
        """Read a manifest, verifying each part's hash.

        Raises:
            ValueError: malformed file or a hash mismatch.
        """
        try:
            data = json.loads(Path(path).read_text())
            parts = {k: tuple(int(i) for i in v["indices"]) for k, v in data["parts"].items()}
            for k, v in data["parts"].items():
                if indices_hash(parts[k]) != v["sha256"]:
                    raise ValueError(f"manifest {path}: part {k!r} does not match its sha256")
            return cls(dataset=data["dataset"], split=data["split"], parts=parts, seed=data.get("seed"))
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read split manifest {path}: {exc}") from None

    def select(self, dataset: ImageDataset, part: str) -> ImageDataset:
        """The rows of ``dataset`` named by ``part`` (the dataset must be the manifest's)."""
        if dataset.name != self.dataset or dataset.split != self.split:
            raise ValueError(f"manifest is for {self.dataset}/{self.split}, not {dataset.name}/{dataset.split}")
        if part not in self.parts:
            raise ValueError(f"manifest has no part {part!r}; parts: {', '.join(self.parts)}")
        return dataset.subset(np.asarray(self.parts[part], dtype=np.int64), split=dataset.split)


def make_splits(
    dataset: ImageDataset, sizes: Mapping[str, int], *, seed: int = 0, stratify: bool = False
) -> SplitManifest:
    """Draw disjoint random index sets of the given sizes (i.i.d. from the same distribution).

    Args:
        dataset: the source dataset.
        sizes: part name -> number of samples.
        seed: seed of the permutation.
        stratify: keep class proportions in each part (needs labels).

    Raises:
        ValueError: the parts need more samples than the dataset has.
    """
    total = sum(sizes.values())
    if total > len(dataset):
        raise ValueError(f"splits need {total} samples but {dataset.name}/{dataset.split} has {len(dataset)}")
    if any(v < 0 for v in sizes.values()):
        raise ValueError("split sizes must be non-negative")
    rng = np.random.default_rng(seed)
    if stratify and dataset.labels is not None:
        labels = dataset.labels.numpy()
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
        # interleave classes so that any prefix is roughly balanced
        ranks = np.empty(len(order), dtype=np.int64)
        for c in np.unique(labels):
            pos = np.flatnonzero(labels[order] == c)
            ranks[pos] = np.arange(len(pos)) * len(labels) // max(len(pos), 1)
        perm = order[np.argsort(ranks + rng.random(len(order)), kind="stable")]
    else:
        perm = rng.permutation(len(dataset))
    parts: dict[str, tuple[int, ...]] = {}
    start = 0
    for name, size in sizes.items():
        parts[name] = tuple(int(i) for i in np.sort(perm[start : start + size]))
        start += size
    return SplitManifest(dataset=dataset.name, split=dataset.split, parts=parts, seed=seed)
