"""encoder-audit: red-team pre-trained self-supervised image encoders and the data they learn from.

The package is organised by concern (see ``docs/ARCHITECTURE.md``)::

    data/      datasets by name, split manifests
    augment/   batched view generators on tensors
    models/    encoder registry, heads, checkpoint I/O, external encoders (torchvision, timm, ...)
    victim.py  the ``Encoder`` protocol every attack talks to, ``load_encoder``, ``wrap_encoder``
    train/     one training loop + contrastive objectives
    evaluate/  linear probe, kNN
    audit/     the one-report audit
    runs.py    run directories, seeding, environment capture
    cli/       ``encoder-audit <command>``

The names below are the Python API; each is imported on first use, so importing the package does
nothing but define names (no torch)::

    from encoder_audit import load_encoder, wrap_encoder, run_audit, resolve_config, create_attack

    victim = load_encoder("torchvision:resnet50", weights="my_resnet50.pth")
    run_audit(resolve_config("smoke"), "runs/my-audit", victim=victim)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module (relative to this package) that defines it
_LAZY = {
    "load_encoder": ".victim",
    "wrap_encoder": ".victim",
    "Encoder": ".victim",
    "LocalEncoder": ".victim",
    "QueryCounter": ".victim",
    "run_audit": ".audit.runner",
    "resolve_config": ".audit.config",
    "AuditConfig": ".audit.config",
    "create_attack": ".attacks.registry",
    "create_dataset": ".data",
}

__all__ = [
    "AuditConfig",
    "Encoder",
    "LocalEncoder",
    "QueryCounter",
    "__version__",
    "create_attack",
    "create_dataset",
    "load_encoder",
    "resolve_config",
    "run_audit",
    "wrap_encoder",
]

if TYPE_CHECKING:  # pragma: no cover
    from .attacks.registry import create_attack
    from .audit.config import AuditConfig, resolve_config
    from .audit.runner import run_audit
    from .data import create_dataset
    from .victim import Encoder, LocalEncoder, QueryCounter, load_encoder, wrap_encoder


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
