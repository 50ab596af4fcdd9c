"""encoder-audit: red-team pre-trained self-supervised image encoders and the data they learn from.

The package is organised by concern (see ``docs/ARCHITECTURE.md``)::

    data/      datasets by name, split manifests
    augment/   batched view generators on tensors
    models/    encoder registry, heads, checkpoint I/O
    victim.py  the ``Encoder`` protocol every attack talks to
    train/     one training loop + contrastive objectives
    evaluate/  linear probe, kNN
    runs.py    run directories, seeding, environment capture
    cli/       ``encoder-audit <command>``

Importing the package does nothing but define names.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
