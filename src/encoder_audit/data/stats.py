"""Normalization statistics of a training split, computed once per process and per set of files.

Every :class:`~encoder_audit.data.base.DatasetInfo` carries the per-channel mean and std of the
*training* split, whichever split was loaded, so that an encoder built from a test split normalizes
the same way as one built from the training split. Loading the test split of CIFAR therefore reads
the training files once (fast: about 150 MB of raw bytes) and remembers the result, keyed by the
files' paths, sizes and modification times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .base import channel_stats

log = logging.getLogger(__name__)

Stats = tuple[tuple[float, ...], tuple[float, ...]]
_CACHE: dict[tuple[tuple[str, int, int], ...], Stats] = {}


def train_stats(files: Sequence[Path], load: Callable[[], torch.Tensor | np.ndarray]) -> Stats:
    """Per-channel (mean, std) of the images ``load()`` returns, cached on the identity of ``files``.

    Args:
        files: the files the training images come from (their path, size and mtime form the key).
        load: returns the training images, uint8 (N, C, H, W); called only on a cache miss.
    """
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _CACHE:
        _CACHE[key] = channel_stats(load())
        log.debug("normalization statistics of %s: %s", [str(p) for p in files], _CACHE[key])
    return _CACHE[key]
