"""JSON manifests of poisoned datasets: enough to rebuild the exact poisoned set and to score a detector.

HanxunH's CLIP-backdoor code writes a ``train_poison_info.json`` with indices, positions and texts
(research notes, poisoning.md Sec. 1.9); ours holds the same and more: the attack and its config, the
seed, the clean set's fingerprint and size, the rows of the poisoned set that are poisons, the source
image of each poison (row of the clean set or of the target pool), trigger and positions, captions, and
the targets of a targeted attack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CorruptFileError
from ...io import atomic_write_json

__all__ = ["MANIFEST_VERSION", "PoisonManifest"]

MANIFEST_VERSION = 1


@dataclass
class PoisonManifest:
    """What was poisoned, where, and how.

    Attributes:
        attack: attack name (``targeted``, ``backdoor``, ...).
        config: the attack's config as a dictionary.
        seed: the attack's seed.
        clean_size: number of clean pairs before poisoning.
        clean_fingerprint: fingerprint of the clean image set.
        poison_rows: rows of the poisoned set that are poisons (after the clean rows in ``add`` mode; the
            clean rows they overwrote in ``replace`` mode).
        source: per poison, ``"train"`` or ``"pool"`` (where its image came from).
        source_indices: per poison, the row of its image in that source.
        captions: per poison, its caption.
        positions: per poison, the trigger's (row, col), or empty for untriggered poisons.
        trigger: the trigger's settings, or None.
        target_label: the backdoor's target class (index), or None.
        target_name: the class word of ``target_label``.
        targets: for targeted poisoning, one dict per (target image, label) trial.
        mode: ``replace`` (each poison overwrote one clean pair: the paper's fixed-size web set) or
            ``add`` (poisons appended as extra pairs; manifests written before the setting existed).
    """

    attack: str
    config: dict[str, Any]
    seed: int
    clean_size: int
    clean_fingerprint: str
    poison_rows: list[int] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    source_indices: list[int] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    positions: list[list[int]] = field(default_factory=list)
    trigger: dict[str, Any] | None = None
    target_label: int | None = None
    target_name: str | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "add"
    version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        if self.mode not in ("replace", "add"):
            raise ValueError(f"manifest mode must be 'replace' or 'add', got {self.mode!r}")

    @property
    def num_poisons(self) -> int:
        return len(self.poison_rows)

    @property
    def train_size(self) -> int:
        """Pairs in the poisoned training set."""
        return self.clean_size if self.mode == "replace" else self.clean_size + self.num_poisons

    def poison_rate(self) -> float:
        """Poisons as a fraction of the poisoned training set (in ``replace`` mode: of the clean set's size)."""
        return self.num_poisons / self.train_size if self.train_size else 0.0

    def is_poison(self, n_rows: int) -> np.ndarray:
        """Boolean mask over the ``n_rows`` rows of the poisoned set (ground truth for a detector)."""
        mask = np.zeros(n_rows, dtype=bool)
        mask[np.asarray(self.poison_rows, dtype=np.int64)] = True
        return mask

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["num_poisons"] = self.num_poisons
        d["poison_rate"] = self.poison_rate()
        return d

    def save(self, path: str | Path) -> Path:
        """Write the manifest as JSON, atomically."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> PoisonManifest:
        """Read a manifest written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            CorruptFileError: not a manifest.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"poison manifest {p} not found")
        try:
            d = json.loads(p.read_text())
            d.pop("num_poisons", None)
            d.pop("poison_rate", None)
            m = cls(**d)
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{p} is not a poison manifest: {exc}") from None
        if not (len(m.poison_rows) == len(m.source_indices) == len(m.captions)):
            raise CorruptFileError(f"{p}: poison_rows, source_indices and captions differ in length")
        return m
