"""Unlearnable Clusters (UC): cluster-wise perturbations that move each cluster toward another's centre.

Zhang et al., "Unlearnable Clusters: Towards Label-agnostic Unlearnable Examples", CVPR 2023
(arXiv 2301.01217); official code ``jiamingzhang94/Unlearnable-Clusters``.

Algorithm (the official ``preprocess.py`` + ``main.py``):

1. Embed the training set with a surrogate ``f`` (any :class:`~encoder_audit.victim.Encoder`; UC-CLIP
   uses a CLIP image tower) and cluster the embeddings with seeded K-means, K = 10
   (``num_clusters: 10``).
2. For each cluster ``i`` train a generator ``G_i`` with a fixed input ``sigma_i`` so that
   ``delta_i = G_i(sigma_i)``, ``||delta_i||_inf <= eps = 16/255``, pushes images toward the centre of
   cluster ``t(i) = (i + 1) mod K`` (``target_offset: 1``; any permutation without fixed points works).
   The loss *actually optimised* by the official code is

       L_i = KL( softmax(mu_t(i)) || softmax(f(x + delta_i)) )     (PyTorch ``KLDivLoss``, batchmean)

   where the softmax runs over the embedding's dimensions. Adam, lr 1e-4, weight decay 5e-4, cosine
   annealing per iteration to 1e-6, 50 epochs, batch 256.
3. Every image receives its own cluster's perturbation and is saved losslessly.

**Which images train G_i.** The paper's objective sums over the members of cluster ``i``
(``train_on="members"``). The official code's loader iterates over *all* training images for every
cluster (``train_on="all"``, the default here, as the released results were produced that way): each
``G_i`` then learns a universal perturbation pushing any image toward ``mu_t(i)``. The choice is recorded
in the result's ``meta["train_on"]``.

**Robustness to crops and flips.** While crafting, ``x + delta_i`` goes through a random resized crop
(scale ``crop_scale``) and a horizontal flip before the surrogate (expectation over transformations),
so the perturbation survives the augmentation a trainer applies. The official code instead augments
the clean image and adds an un-augmented delta.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...augment import ops
from ...data.base import ImageDataset
from ...runs import derive_seed
from ...victim import Encoder
from .base import Norm, Protection, apply_perturbation, check_eps, register_protection
from .clustering import Clustering, cluster_features, embed_dataset, shift_permutation
from .generator import PerturbationGenerator, resize_perturbation
from .surrogate import differentiable_surrogate

__all__ = ["UCConfig", "UCFit", "UnlearnableClusters", "uc_loss"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UCConfig:
    """Unlearnable Clusters settings (defaults: the official ``config/*.yaml``).

    Attributes:
        clusters: K of K-means (``num_clusters: 10``).
        eps: budget in [0, 1] pixel units (16/255, L-inf).
        norm: ``linf`` or ``l2`` (the code's L2 option rescales to norm ``eps``).
        target_offset: cluster ``i`` moves toward centre ``(i + offset) mod K`` (``target_offset: 1``).
        permutation: explicit target of each cluster (overrides ``target_offset``; no fixed points).
        train_on: ``all`` images for every generator (official code) or cluster ``members`` (paper).
        loss: ``kl`` (official: KL(softmax(mu_t) || softmax(f(x'))), batchmean), ``cosine`` or ``mse``.
        temperature: softmax temperature of the ``kl`` loss (1 = official).
        standardize: z-score embeddings and centres per dimension (statistics of the clean set) before
            the loss. The official code feeds raw ResNet-50/CLIP features to the softmax; small encoders'
            raw features are nearly constant across dimensions, their softmax is almost uniform and the
            KL (and its gradient) vanishes, so this is on by default. ``False`` = official.
        epochs: passes of each generator over its training images (official 50).
        batch_size: images per generator step (official 256).
        lr: Adam learning rate (official 1e-4).
        lr_min: end of the per-iteration cosine schedule (official 1e-6).
        weight_decay: Adam weight decay (official 5e-4).
        ngf: generator width (official 64).
        n_blocks: generator residual blocks (official 6).
        augment: crop/flip the perturbed images while crafting.
        crop_scale: area range of those crops (the trainer's light augmentation is 0.8-1).
        kmeans_init: K-means restarts.
        cluster_source: ``kmeans`` (the method) or ``labels``: the dataset's classes are the clusters and
            their mean embeddings the centres (the *oracle* clusters of a surrogate whose clusters follow
            the classes exactly; the audit's positive control). ``clusters`` is then the class count.
        seed: K-means, generator inputs and initialisation, data order, augmentations.
    """

    clusters: int = 10
    eps: float = 16 / 255
    norm: Norm = "linf"
    target_offset: int = 1
    permutation: tuple[int, ...] | None = None
    train_on: Literal["all", "members"] = "all"
    loss: Literal["kl", "cosine", "mse"] = "kl"
    temperature: float = 1.0
    standardize: bool = True
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-4
    lr_min: float = 1e-6
    weight_decay: float = 5e-4
    ngf: int = 64
    n_blocks: int = 6
    augment: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)
    kmeans_init: int = 4
    cluster_source: Literal["kmeans", "labels"] = "kmeans"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clusters < 2:
            raise ValueError(f"clusters must be >= 2, got {self.clusters}")
        check_eps(self.eps, self.norm)
        if self.cluster_source not in ("kmeans", "labels"):
            raise ValueError(f"cluster_source must be 'kmeans' or 'labels', got {self.cluster_source!r}")
        if self.train_on not in ("all", "members"):
            raise ValueError(f"train_on must be 'all' or 'members', got {self.train_on!r}")
        if self.loss not in ("kl", "cosine", "mse"):
            raise ValueError(f"loss must be 'kl', 'cosine' or 'mse', got {self.loss!r}")
        if self.permutation is not None:
            perm = list(self.permutation)
            if sorted(perm) != list(range(self.clusters)):
                raise ValueError(f"permutation must be a permutation of 0..{self.clusters - 1}, got {perm}")
            if any(t == i for i, t in enumerate(perm)):
                raise ValueError("permutation must move every cluster (no fixed points)")
        elif self.target_offset % self.clusters == 0:
            raise ValueError(f"target_offset {self.target_offset} maps every cluster to itself")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr or self.weight_decay < 0:
            raise ValueError("need lr > 0, 0 <= lr_min <= lr and weight_decay >= 0")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
        if self.ngf < 1 or self.n_blocks < 0:
            raise ValueError("ngf must be >= 1 and n_blocks >= 0")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")

    def targets(self) -> torch.Tensor:
        """Target cluster of each cluster (K,)."""
        if self.permutation is not None:
            return torch.tensor(self.permutation, dtype=torch.int64)
        return shift_permutation(self.clusters, self.target_offset)


def uc_loss(embeddings: torch.Tensor, target: torch.Tensor, kind: str = "kl", temperature: float = 1.0) -> torch.Tensor:
    """Distance of perturbed embeddings (N, D) to a target centre (D,) or (N, D); lower = closer.

    ``kl``: ``KL(softmax(target / T) || softmax(emb / T))`` averaged over the batch (the official code's
    ``KLDivLoss(reduction="batchmean")`` on ``log_softmax(f(x'))`` with target ``softmax(mu)``).
    ``cosine``: mean ``1 - cos(emb, target)``. ``mse``: mean squared Euclidean distance.
    """
    t = target.expand_as(embeddings)
    if kind == "kl":
        log_p = F.log_softmax(embeddings / temperature, dim=1)
        q = F.softmax(t / temperature, dim=1)
        return F.kl_div(log_p, q, reduction="batchmean")
    if kind == "cosine":
        return (1 - F.cosine_similarity(embeddings, t, dim=1)).mean()
    if kind == "mse":
        return (embeddings - t).pow(2).sum(dim=1).mean()
    raise ValueError(f"unknown UC loss {kind!r}")


@dataclass
class UCFit:
    """The crafted cluster-wise perturbations.

    Attributes:
        perturbations: (K, C, H, W) float, ``||delta_i|| <= eps`` at the crafting resolution.
        clustering: K-means result on the surrogate embeddings (assignment per training image).
        targets: (K,) target cluster of each cluster.
        losses: final-epoch mean loss per generator.
        train_on: which images trained the generators.
    """

    perturbations: torch.Tensor
    clustering: Clustering
    targets: torch.Tensor
    eps: float
    norm: Norm
    losses: list[float] = field(default_factory=list)
    initial_losses: list[float] = field(default_factory=list)
    train_on: str = "all"

    def perturbation_for(self, groups: torch.Tensor, height: int, width: int, channels: int) -> torch.Tensor:
        """Per-image perturbations (N, channels, height, width) for images of any size (nearest resize)."""
        return resize_perturbation(self.perturbations, height, width, channels)[groups]

    def apply(self, images: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Protect uint8 images (N, C, H, W) given each one's cluster; the budget holds after quantisation."""
        _, c, h, w = images.shape
        return apply_perturbation(images, self.perturbation_for(groups, h, w, c), self.eps, self.norm)


class _Standardized(torch.nn.Module):
    def __init__(self, f: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.f, self.mean, self.std = f, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.f(x) - self.mean) / self.std


@register_protection("uc", config=UCConfig, help="Unlearnable Clusters: K-means + one generator per cluster")
class UnlearnableClusters(Protection):
    """Unlearnable Clusters with a surrogate encoder (UC; UC-CLIP with a CLIP image tower).

    Args:
        config: :class:`UCConfig`.
        surrogate: the protector's encoder. Clustering uses only ``embed``; crafting needs gradients, so
            it must be (or wrap) a torch module (see :mod:`.surrogate`).
        craft_size: side length of the crafted perturbation (default: the surrogate's input size).
    """

    name = "uc"
    needs_surrogate = True
    white_box = True

    def __init__(
        self, config: UCConfig | None = None, *, surrogate: Encoder | None = None, craft_size: int | None = None
    ) -> None:
        self.config = config or UCConfig()
        self.surrogate = surrogate
        self.craft_size = craft_size

    def fit(self, dataset: ImageDataset, *, progress: bool | None = False) -> UCFit:
        """Cluster ``dataset`` and train one generator per cluster; returns the perturbations."""
        if self.surrogate is None:
            raise ValueError("Unlearnable Clusters needs a surrogate encoder (surrogate=...)")
        c = self.config
        feats = embed_dataset(self.surrogate, dataset)
        clustering = self._clusters(dataset, feats)
        log.info("UC: %s K=%d cluster sizes %s", c.cluster_source, c.clusters, clustering.sizes())
        f: torch.nn.Module = differentiable_surrogate(self.surrogate)
        targets = c.targets()
        centers = clustering.centers
        if c.standardize:
            mu, sd = feats.mean(0), feats.std(0).clamp_min(1e-6)
            f = _Standardized(f, mu, sd)
            centers = (centers - mu) / sd
        size = self.craft_size or dataset.images.shape[-1]
        shape = (dataset.images.shape[1], size, size)
        deltas, losses, first = [], [], []
        bar = tqdm(total=c.clusters * c.epochs, disable=progress is False, desc="UC generators", unit="epoch")
        for i in range(c.clusters):
            idx = (
                torch.arange(len(dataset))
                if c.train_on == "all"
                else torch.nonzero(clustering.assignment == i).flatten()
            )
            delta, hist = self._train_generator(dataset, idx, f, centers[targets[i]], shape, i, bar)
            deltas.append(delta)
            losses.append(hist[-1])
            first.append(hist[0])
            log.info("UC: generator %d -> cluster %d, loss %.4f -> %.4f", i, int(targets[i]), hist[0], hist[-1])
        bar.close()
        return UCFit(
            perturbations=torch.cat(deltas),
            clustering=clustering,
            targets=targets,
            eps=c.eps,
            norm=c.norm,
            losses=losses,
            initial_losses=first,
            train_on=c.train_on,
        )

    def _clusters(self, dataset: ImageDataset, feats: torch.Tensor) -> Clustering:
        c = self.config
        if c.cluster_source == "kmeans":
            k = c.clusters
            if len(feats) < k:
                raise ValueError(f"cannot make {k} clusters from {len(feats)} images (lower clusters)")
            return cluster_features(feats, k, seed=derive_seed(c.seed, "kmeans"), n_init=c.kmeans_init)
        if dataset.labels is None:
            raise ValueError("cluster_source='labels' needs a labeled dataset")
        labels = dataset.labels.long()
        if int(labels.max()) + 1 != c.clusters:
            raise ValueError(f"cluster_source='labels' needs clusters = the class count {int(labels.max()) + 1}")
        centers = torch.stack(
            [feats[labels == i].mean(0) if (labels == i).any() else feats.mean(0) for i in range(c.clusters)]
        )
        inertia = float((feats - centers[labels]).pow(2).sum())
        return Clustering(assignment=labels.clone(), centers=centers.float(), inertia=inertia)

    def _train_generator(
        self,
        dataset: ImageDataset,
        idx: torch.Tensor,
        f: torch.nn.Module,
        target: torch.Tensor,
        shape: tuple[int, int, int],
        i: int,
        bar: Any,
    ) -> tuple[torch.Tensor, list[float]]:
        c = self.config
        g_init = torch.Generator().manual_seed(derive_seed(c.seed, "generator", i))
        torch.manual_seed(derive_seed(c.seed, "generator-init", i))
        gen = PerturbationGenerator(shape, c.eps, c.norm, ngf=c.ngf, n_blocks=c.n_blocks, generator=g_init)
        opt = torch.optim.Adam(gen.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        bs = max(1, min(c.batch_size, len(idx)))
        steps_per_epoch = math.ceil(len(idx) / bs)
        total = steps_per_epoch * c.epochs
        step = 0
        history: list[float] = []
        gen.train()
        for epoch in range(c.epochs):
            g_order = torch.Generator().manual_seed(derive_seed(c.seed, "order", i, epoch))
            order = idx[torch.randperm(len(idx), generator=g_order)]
            ep_loss = []
            for s in range(steps_per_epoch):
                lr = c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + math.cos(math.pi * step / max(total, 1)))
                for grp in opt.param_groups:
                    grp["lr"] = lr
                x = dataset.float_images(order[s * bs : (s + 1) * bs])
                delta = gen()
                if delta.shape[-2:] != x.shape[-2:] or delta.shape[1] != x.shape[1]:
                    delta = resize_perturbation(delta, x.shape[-2], x.shape[-1], x.shape[1])
                xp = (x + delta).clamp(0, 1)
                if c.augment:
                    aug = torch.Generator().manual_seed(derive_seed(c.seed, "aug", i, epoch, s))
                    xp = ops.resized_crop_flip(xp, xp.shape[-1], scale=c.crop_scale, flip_p=0.5, generator=aug)
                loss = uc_loss(f(xp), target, c.loss, c.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                ep_loss.append(float(loss.detach()))
            history.append(sum(ep_loss) / len(ep_loss))
            bar.update(1)
        # The input is one fixed sigma, so train-mode batch norm is deterministic: return exactly the function
        # that was optimised (eval-mode running statistics lag behind and shrink an under-trained output).
        with torch.no_grad():
            return gen().detach(), history

    def _protect(
        self, dataset: ImageDataset, *, progress: bool | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        fit = self.fit(dataset, progress=progress)
        groups = fit.clustering.assignment
        images = fit.apply(dataset.images, groups)
        assert self.surrogate is not None
        check = surrogate_space_check(self.surrogate, images, dataset.info, fit)
        log.info(
            "UC surrogate-space check: %.1f%% of protected images nearest their target centre, %.1f%% their own",
            100 * check["target_success"],
            100 * check["stay_own"],
        )
        meta = {
            **check,
            "train_on": fit.train_on,
            "loss": self.config.loss,
            "targets": fit.targets.tolist(),
            "cluster_sizes": fit.clustering.sizes(),
            "generator_loss_first_epoch": [round(v, 5) for v in fit.initial_losses],
            "generator_loss_last_epoch": [round(v, 5) for v in fit.losses],
            "surrogate": repr(self.surrogate),
            "fit": fit,
        }
        return images, groups, meta


def surrogate_space_check(
    surrogate: Encoder, images: torch.Tensor, info: Any, fit: UCFit, *, batch_size: int = 512
) -> dict[str, float]:
    """Where protected images land in the surrogate's own space.

    Returns ``target_success`` (share of protected images whose embedding is nearest the centre of
    their cluster's *target*, the quantity UC optimises) and ``stay_own`` (share still nearest their own
    cluster's centre). Random noise gives a target success near ``1/K`` or below.
    """
    ds = ImageDataset(images, None, info, split="train")
    feats = embed_dataset(surrogate, ds, batch_size=batch_size)
    nearest = fit.clustering.predict(feats)
    groups = fit.clustering.assignment
    return {
        "target_success": float((nearest == fit.targets[groups]).float().mean()),
        "stay_own": float((nearest == groups).float().mean()),
    }
