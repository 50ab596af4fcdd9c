"""Poisoning and backdoor attacks on contrastive encoders.

* :mod:`.targeted` -- Carlini & Terzis targeted poisoning of CLIP-style training (image -> label).
* :mod:`.backdoor` -- Carlini & Terzis patch backdoor (trigger -> label), ASR and backdoor z-score.
* :mod:`.badencoder` -- BadEncoder, a model-supply-chain backdoor of an image encoder.
* :mod:`.manifest` -- JSON manifests of every poisoned set; :mod:`.trigger` -- patch triggers.
* :mod:`.experiment` -- poison / train / evaluate runs, sweeps and defenses; :mod:`.audit` -- the audit.

>>> from encoder_audit.attacks.poisoning import create_poisoning
>>> create_poisoning("backdoor").config.poisons
32
"""

from __future__ import annotations

from .base import POISONING, PoisoningAttack, PoisonResult, create_poisoning, rebuild_poisoned, register_poisoning
from .manifest import PoisonManifest
from .trigger import Trigger

__all__ = [
    "POISONING",
    "PoisonManifest",
    "PoisonResult",
    "PoisoningAttack",
    "Trigger",
    "create_poisoning",
    "rebuild_poisoned",
    "register_poisoning",
]
