"""Data-poisoning attacks on image-text training: one verb, ``poison``, registered with the shared registry.

A poisoning attack takes a clean set of (image, caption) pairs and returns a poisoned set together
with a :class:`~.manifest.PoisonManifest`. Carlini & Terzis' attacker can "add a small number of
(image, caption) pairs" to a web-scale set whose size does not change (research notes, poisoning.md
Sec. 1.1; HanxunH's reimplementation removes the target's original pair and overwrites the rows it
poisons), so two settings exist:

* ``replace`` (the paper's setting): each poison takes the place of one clean pair; the training set
  keeps its size and the poisoned fraction is ``poisons / clean pairs``;
* ``add``: the poisons are appended as extra copies and every clean pair stays; the fraction is
  ``poisons / (clean pairs + poisons)``.

Methods register themselves in their own files with
``@register_attack("poisoning", name, config=...)``; model-supply-chain attacks (BadEncoder) are the
``backdoor`` family (verb ``backdoor``). :func:`create_poisoning` builds either by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ...data.base import ImageDataset
from ...data.captions import PairedDataset
from ..registry import attack_names, create_attack
from .manifest import PoisonManifest
from .trigger import Trigger

__all__ = [
    "MODES",
    "PoisonResult",
    "PoisoningAttack",
    "append_pairs",
    "create_poisoning",
    "insert_poisons",
    "rebuild_poisoned",
    "replacement_rows",
]

MODES = ("replace", "add")


@dataclass
class PoisonResult:
    """A poisoned training set and the manifest that describes its poisons."""

    paired: PairedDataset
    manifest: PoisonManifest


class PoisoningAttack:
    """Base class: ``poison(clean, pool=, seed=, keep=) -> PoisonResult``.

    Capabilities (class attributes): ``needs_labels`` (captions are built from class names),
    ``uses_views`` (never: poisons are not augmented by the attacker), ``white_box`` (never: the
    attacker only publishes data) and ``query_cost(n)`` (0: nothing is asked of the victim).
    """

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = True
    uses_views: ClassVar[bool] = False
    white_box: ClassVar[bool] = False
    config: Any = None

    def query_cost(self, n: int) -> int:
        """Images sent to the victim for ``n`` attacker images: none (the victim trains on the poisons)."""
        return 0

    def poison(
        self,
        clean: PairedDataset,
        *,
        pool: ImageDataset | None = None,
        seed: int = 0,
        keep: Sequence[int] = (),
    ) -> PoisonResult:
        raise NotImplementedError


def create_poisoning(name: str, config: Any = None, **params: Any) -> Any:
    """Build a poisoning attack (``targeted``, ``backdoor``) or BadEncoder (``badencoder``) by name.

    A thin wrapper over :func:`encoder_audit.attacks.registry.create_attack`: BadEncoder lives in the
    ``backdoor`` family, the data poisons in ``poisoning``.
    """
    family = "backdoor" if name in attack_names("backdoor") else "poisoning"
    return create_attack(family, name, config, **params)


def replacement_rows(n_clean: int, count: int, rng: np.random.Generator, keep: Sequence[int] = ()) -> np.ndarray:
    """``count`` distinct clean rows (never one of ``keep``) whose pairs poisons will replace.

    Raises:
        ValueError: fewer free rows than poisons.
    """
    free = np.setdiff1d(np.arange(n_clean), np.asarray(list(keep), dtype=np.int64))
    if count > len(free):
        raise ValueError(f"{count} poisons cannot replace pairs of {len(free)} free clean rows")
    return np.sort(rng.choice(free, size=count, replace=False)) if count else np.zeros(0, dtype=np.int64)


def append_pairs(clean: PairedDataset, images: torch.Tensor, captions: list[str]) -> PairedDataset:
    """The clean pairs followed by new (uint8 image, caption) pairs; new rows get source index -1."""
    return insert_poisons(clean, images, captions, rows=None)


def insert_poisons(
    clean: PairedDataset, images: torch.Tensor, captions: Sequence[str], rows: Sequence[int] | None
) -> PairedDataset:
    """Poisons into a copy of ``clean``: appended (``rows=None``) or written over the pairs at ``rows``.

    Poisoned rows get label -1 and source index -1 either way.

    Raises:
        ValueError: images that are not uint8 of the clean images' shape, one caption per image
            missing, or ``rows`` of another length / with repeats / outside the set.
    """
    if images.dtype != torch.uint8 or images.shape[1:] != clean.images.images.shape[1:]:
        raise ValueError("poison images must be uint8 with the clean images' (C, H, W)")
    if len(images) != len(captions):
        raise ValueError("one caption per poison image")
    ds = clean.images
    assert ds.indices is not None
    if rows is None:
        labels = None
        if ds.labels is not None:
            labels = torch.cat([ds.labels, torch.full((len(images),), -1, dtype=torch.long)])
        merged = ImageDataset(
            torch.cat([ds.images, images]),
            labels,
            ds.info,
            ds.split + "+poison",
            np.concatenate([ds.indices, -np.ones(len(images), dtype=np.int64)]),
        )
        return PairedDataset(merged, list(clean.captions) + list(captions))
    idx = np.asarray(list(rows), dtype=np.int64)
    if len(idx) != len(images) or len(set(idx.tolist())) != len(idx):
        raise ValueError("replacement needs one distinct clean row per poison")
    if len(idx) and (idx.min() < 0 or idx.max() >= len(clean)):
        raise ValueError(f"replacement rows must lie in [0, {len(clean)})")
    imgs = ds.images.clone()
    t_idx = torch.as_tensor(idx, dtype=torch.long)
    if len(idx):
        imgs[t_idx] = images
    labels = None
    if ds.labels is not None:
        labels = ds.labels.clone()
        labels[t_idx] = -1
    indices = np.array(ds.indices, dtype=np.int64, copy=True)
    indices[idx] = -1
    caps = list(clean.captions)
    for r, c in zip(idx.tolist(), captions):
        caps[r] = c
    return PairedDataset(ImageDataset(imgs, labels, ds.info, ds.split + "+poison", indices), caps)


def poison_images(clean: PairedDataset, manifest: PoisonManifest, pool: ImageDataset | None = None) -> torch.Tensor:
    """The poison images a manifest describes, rebuilt from the clean set and the target pool."""
    rows = []
    for src, idx in zip(manifest.source, manifest.source_indices):
        if src == "pool":
            if pool is None:
                raise ValueError("this manifest's poisons come from a target pool: pass pool=")
            rows.append(pool.images[idx])
        else:
            rows.append(clean.images.images[idx])
    images = torch.stack(rows) if rows else clean.images.images[:0]
    if manifest.trigger is not None and manifest.positions:
        t = manifest.trigger
        trig = Trigger(**{**t, "position": tuple(t.get("position", (-5, -5)))})
        images = trig.apply(images, torch.tensor(manifest.positions, dtype=torch.long))
    return images


def rebuild_poisoned(clean: PairedDataset, manifest: PoisonManifest, pool: ImageDataset | None = None) -> PairedDataset:
    """Re-create a poisoned set from its clean set, the target pool and the manifest.

    Raises:
        ValueError: the clean set does not match the manifest, or a pool is needed and missing.
    """
    if len(clean) != manifest.clean_size or clean.images.fingerprint() != manifest.clean_fingerprint:
        raise ValueError("the clean set does not match the manifest (size or fingerprint differ)")
    images = poison_images(clean, manifest, pool)
    rows = manifest.poison_rows if manifest.mode == "replace" else None
    return insert_poisons(clean, images, list(manifest.captions), rows)
