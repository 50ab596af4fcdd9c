"""Poisoning and backdoor attacks on contrastive encoders.

* :mod:`.targeted` -- Carlini & Terzis targeted poisoning of CLIP-style training (image -> label).
* :mod:`.backdoor` -- Carlini & Terzis patch backdoor (trigger -> label), ASR and backdoor z-score.
* :mod:`.badencoder` -- BadEncoder, a model-supply-chain backdoor of an image encoder (``backdoor`` family).
* :mod:`.manifest` -- JSON manifests of every poisoned set; :mod:`.trigger` -- patch triggers.
* :mod:`.experiment` -- poison / train / evaluate runs, sweeps and defenses; :mod:`.commands` -- the
  ``encoder-audit poison`` jobs. The audit stage lives in the audit layer above this package.

Importing this package registers ``targeted`` and ``backdoor`` (family ``poisoning``, verb ``poison``)
and ``badencoder`` (family ``backdoor``, verb ``backdoor``) with :mod:`encoder_audit.attacks.registry`.

>>> from encoder_audit.attacks.poisoning import create_poisoning
>>> create_poisoning("backdoor").config.poisons
32
>>> create_poisoning("badencoder", epochs=2).white_box
True
"""

from __future__ import annotations

from . import backdoor, badencoder, targeted  # noqa: F401  (each registers its attack)
from .base import MODES, PoisoningAttack, PoisonResult, create_poisoning, insert_poisons, rebuild_poisoned
from .manifest import PoisonManifest
from .trigger import Trigger

__all__ = [
    "MODES",
    "PoisonManifest",
    "PoisonResult",
    "PoisoningAttack",
    "Trigger",
    "create_poisoning",
    "insert_poisons",
    "rebuild_poisoned",
]
