"""Seeded K-means on surrogate embeddings, the shift permutation, and the protector's labels.

Unlearnable Clusters (Zhang et al., CVPR 2023, Sec. 4) replaces class labels by the K-means clusters
of a surrogate's embeddings: "The entire dataset is divided into p clusters via K-means clustering".
The official code clusters the whole training set with scikit-learn's ``KMeans`` (K = 10, seed 42)
and targets the *next* cluster's centre, ``t(i) = (i + 1) mod K`` (``target_offset: 1``), the same
label map as targeted adversarial poisoning (Fowl et al., NeurIPS 2021, ``(y + 1) mod C``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ...data.base import ImageDataset
from ...victim import Encoder

__all__ = ["Clustering", "cluster_features", "embed_dataset", "protector_labels", "shift_permutation"]

log = logging.getLogger(__name__)


@dataclass
class Clustering:
    """A fitted K-means.

    Attributes:
        assignment: (N,) int64 cluster of each image.
        centers: (K, D) float32 cluster centres in embedding space.
        inertia: K-means objective.
    """

    assignment: torch.Tensor
    centers: torch.Tensor
    inertia: float

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Nearest centre of each row of ``features`` (N, D) -> (N,)."""
        return torch.cdist(features.float(), self.centers).argmin(dim=1)

    def sizes(self) -> list[int]:
        return torch.bincount(self.assignment, minlength=self.k).tolist()


def embed_dataset(encoder: Encoder, dataset: ImageDataset, *, batch_size: int = 512) -> torch.Tensor:
    """Embeddings (N, D) of every image through any :class:`Encoder` (adapts size/channels)."""
    outs = [encoder.embed(x) for x, _, _ in dataset.batches(batch_size)]
    return torch.cat(outs).float()


def cluster_features(features: torch.Tensor, k: int, *, seed: int = 0, n_init: int = 4) -> Clustering:
    """Seeded K-means (scikit-learn, k-means++ init, ``n_init`` restarts).

    Raises:
        ValueError: fewer points than clusters, or ``k < 2``.
    """
    from sklearn.cluster import KMeans

    if k < 2:
        raise ValueError(f"need at least 2 clusters, got {k}")
    if len(features) < k:
        raise ValueError(f"cannot make {k} clusters from {len(features)} images")
    from threadpoolctl import threadpool_limits

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    with threadpool_limits(1):
        assign = km.fit_predict(features.double().numpy())
    return Clustering(
        assignment=torch.as_tensor(assign, dtype=torch.int64),
        centers=torch.as_tensor(km.cluster_centers_, dtype=torch.float32),
        inertia=float(km.inertia_),
    )


def shift_permutation(k: int, offset: int = 1) -> torch.Tensor:
    """Target cluster of each cluster: ``t(i) = (i + offset) mod k`` (official ``target_offset: 1``).

    Raises:
        ValueError: the shift maps some cluster to itself (``offset`` a multiple of ``k``).
    """
    if k < 2:
        raise ValueError(f"need at least 2 clusters, got {k}")
    if offset % k == 0:
        raise ValueError(f"target_offset {offset} maps every cluster to itself for K={k}")
    return (torch.arange(k) + offset) % k


def protector_labels(
    dataset: ImageDataset,
    source: Literal["true", "clusters"],
    *,
    encoder: Encoder | None = None,
    k: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """The labels a label-based protection is crafted with, and their number.

    ``true`` uses the dataset's labels (label-consistent setting). ``clusters`` uses K-means
    pseudo-labels of the surrogate's embeddings: the label-agnostic protocol of UC Sec. 3.2, in which the
    protector's labels differ from whatever labels the trainer later uses.

    Raises:
        ValueError: ``true`` on an unlabeled dataset, or ``clusters`` without an encoder.
    """
    if source == "true":
        if dataset.labels is None:
            raise ValueError("label source 'true' needs a labeled dataset; use label_source='clusters'")
        return dataset.labels.clone(), int(dataset.labels.max()) + 1
    if source == "clusters":
        if encoder is None:
            raise ValueError("label source 'clusters' needs a surrogate encoder")
        cl = cluster_features(embed_dataset(encoder, dataset), k, seed=seed)
        log.info("protector pseudo-labels: K-means K=%d sizes %s", k, cl.sizes())
        return cl.assignment, k
    raise ValueError(f"unknown label source {source!r}; choose 'true' or 'clusters'")


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Adjusted mutual information between two labelings (1 = identical partitions, 0 = chance)."""
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(np.asarray(a), np.asarray(b)))


def purity(assignment: torch.Tensor, labels: torch.Tensor) -> float:
    """Cluster purity: the share of images whose label is their cluster's most frequent label.

    1 = every cluster holds one class; ``1 / C`` or so for clusters that ignore the classes. Purity
    never falls when clusters are split, so it is read together with :func:`agreement` (AMI).
    """
    a, y = np.asarray(assignment), np.asarray(labels)
    if len(a) != len(y) or len(a) == 0:
        raise ValueError("purity needs one label per assigned image")
    total = sum(int(np.bincount(y[a == c]).max()) for c in np.unique(a))
    return total / len(a)


@dataclass
class KChoice:
    """One K of a K sweep: purity and AMI of the K-means clusters against labels the protector holds."""

    k: int
    purity: float
    ami: float


def sweep_k(
    features: torch.Tensor,
    labels: torch.Tensor,
    candidates: tuple[int, ...] = (10, 20, 50, 100),
    *,
    seed: int = 0,
    n_init: int = 2,
    min_cluster_images: int = 1,
) -> list[KChoice]:
    """Purity and AMI of K-means on ``features`` for every K in ``candidates`` that leaves at least
    ``min_cluster_images`` images per cluster on average."""
    out = []
    for k in candidates:
        if k < 2 or k * min_cluster_images > len(features):
            continue
        cl = cluster_features(features, k, seed=seed, n_init=n_init)
        out.append(KChoice(k, purity(cl.assignment, labels), agreement(cl.assignment, labels)))
    return out


def choose_k(sweep: list[KChoice], tolerance: float = 0.01) -> int:
    """The measured rule for K: the K whose clusters have the highest AMI with the labels held out for it;
    among candidates within ``tolerance`` of the best AMI, the smallest K.

    Purity alone rises with K (finer clusters split the mixed ones) but is the wrong target: UC on 5,000
    Fashion-MNIST images with a supervised surrogate cost a trainer 27.5 points at K = 10 (held-out
    purity 81.6%, AMI 0.775) and 5.0 points at K = 50 (purity 87.3%, AMI 0.627), because a class split
    over many clusters gets many patterns, each learned from fewer images. AMI penalises that split
    (docs/benchmarks/unlearnable.md).

    Raises:
        ValueError: an empty sweep.
    """
    if not sweep:
        raise ValueError("no K fits the data (too few images for the smallest candidate)")
    best = max(c.ami for c in sweep)
    return min(c.k for c in sweep if c.ami >= best - tolerance)
