"""Data-poisoning attacks on image-text training: one verb, ``poison``, and a registry.

A poisoning attack takes a clean set of (image, caption) pairs and returns a poisoned set (the clean
pairs followed by the poison pairs) together with a :class:`~.manifest.PoisonManifest`. The attacker
only *adds* pairs (Carlini & Terzis' threat model: "add a small number of (image, caption) pairs",
research notes Sec. 1.1); training is the victim's business. Model-supply-chain attacks (BadEncoder)
live in the same registry but take an encoder instead (see :mod:`.badencoder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...data.base import ImageDataset
from ...data.captions import PairedDataset
from ...registry import Registry
from .manifest import PoisonManifest
from .trigger import Trigger

__all__ = [
    "POISONING",
    "PoisonResult",
    "PoisoningAttack",
    "append_pairs",
    "create_poisoning",
    "rebuild_poisoned",
    "register_poisoning",
]


@dataclass
class PoisonResult:
    """A poisoned training set and the manifest that describes its poisons."""

    paired: PairedDataset
    manifest: PoisonManifest


class PoisoningAttack:
    """Base class: ``poison(clean, pool=, seed=) -> PoisonResult``."""

    name: str = ""
    config: Any = None

    def poison(self, clean: PairedDataset, *, pool: ImageDataset | None = None, seed: int = 0) -> PoisonResult:
        raise NotImplementedError


POISONING: Registry[Any] = Registry("poisoning attack")
register_poisoning = POISONING.register


def create_poisoning(name: str, config: Any = None) -> Any:
    """Build a poisoning attack by name (``targeted``, ``backdoor``, ``badencoder``)."""
    from . import backdoor, badencoder, targeted  # noqa: F401  (registers the attacks)

    return POISONING.create(name, config)


def append_pairs(clean: PairedDataset, images: torch.Tensor, captions: list[str]) -> PairedDataset:
    """The clean pairs followed by new (uint8 image, caption) pairs; new rows get source index -1."""
    if images.dtype != torch.uint8 or images.shape[1:] != clean.images.images.shape[1:]:
        raise ValueError("poison images must be uint8 with the clean images' (C, H, W)")
    if len(images) != len(captions):
        raise ValueError("one caption per poison image")
    ds = clean.images
    assert ds.indices is not None
    import numpy as np

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


def rebuild_poisoned(clean: PairedDataset, manifest: PoisonManifest, pool: ImageDataset | None = None) -> PairedDataset:
    """Re-create a poisoned set from its clean set, the target pool and the manifest.

    Raises:
        ValueError: the clean set does not match the manifest, or a pool is needed and missing.
    """
    if len(clean) != manifest.clean_size or clean.images.fingerprint() != manifest.clean_fingerprint:
        raise ValueError("the clean set does not match the manifest (size or fingerprint differ)")
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
    return append_pairs(clean, images, list(manifest.captions))
