"""Datasets by name and split manifests.

>>> from encoder_audit.data import create_dataset
>>> ds = create_dataset("synthetic", "train", n=8)
>>> ds.images.shape, ds.info.num_classes
(torch.Size([8, 1, 28, 28]), 10)
"""

from __future__ import annotations

from . import cifar, digits, fashion_mnist, imagefolder, stl10, svhn, synthetic  # noqa: F401  (registers the datasets)
from .base import DATASETS, DatasetInfo, ImageDataset, create_dataset, default_data_root, register_dataset, subsample
from .splits import SplitManifest, make_splits

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "SplitManifest",
    "create_dataset",
    "default_data_root",
    "make_splits",
    "register_dataset",
    "subsample",
]
