"""Label-agnostic evaluation: does a model trained on the protected set still learn the clean task?

A *trainer* (the party the protector defends against) trains a fresh classifier from the encoder
registry with the ``supervised`` objective of :mod:`encoder_audit.train` on the protected images, under
labels of its own choosing, and is scored on the **clean** test set (lower = better protection):

* ``true``: the dataset's labels (label-consistent setting of EM/TAP papers);
* ``coarse``: a coarser grouping of the classes (Fashion-MNIST: tops / trousers+dresses / footwear / bags;
  otherwise contiguous groups of classes);
* ``pseudo``: a different number of classes: K-means pseudo-labels (``pseudo_k``, default 5) of PCA-50
  pixel features of the *clean* images (the trainer's own annotation, independent of any surrogate);
* ``fine``: a finer labeling than the protector's clusters: each class split into ``fine_k`` (default 2)
  sub-classes by K-means on PCA-50 pixel features of that class's clean images. The released UC code
  evaluates this way: the protector crafts K = 10 clusters and the hacker trains on the dataset's 37
  (Pets) or 196 (Cars) classes (``config/data.yaml``);
* ``ssl``: SimCLR pre-training on the protected images without labels, then a linear probe fitted on
  their features with the true labels.

These are the label-agnostic settings of Unlearnable Clusters (Zhang et al., CVPR 2023: a protector's
m-class dataset "may be exploited by the hacker as a n-class dataset"). Both the final-epoch and the
peak accuracy across epochs are reported (peak = an early-stopping trainer; Sandoval-Segura et al.,
arXiv 2204.08615, recommend reporting it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...data.base import ImageDataset
from ...models.base import create_encoder
from ...runs import derive_seed
from ...train import TrainConfig, create_objective, fit
from ...train.objective import Objective
from ...train.supervised import Supervised, SupervisedConfig

__all__ = [
    "LABELINGS",
    "Labeling",
    "TrainerConfig",
    "TrainerResult",
    "evaluate_protection",
    "make_labelings",
    "train_classifier",
    "train_ssl_probe",
]

log = logging.getLogger(__name__)

LABELINGS = ("true", "coarse", "pseudo", "fine", "ssl")

# Fashion-MNIST classes: 0 T-shirt, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker,
# 8 bag, 9 ankle boot -> upper-body garments / trousers and dresses / footwear / bags.
FASHION_COARSE = (0, 1, 0, 1, 0, 2, 0, 2, 3, 2)


@dataclass(frozen=True)
class TrainerConfig:
    """How the trainer trains (the same schedule for clean and protected data).

    Attributes:
        arch: classifier backbone from the encoder registry.
        epochs: supervised epochs.
        batch_size: batch size.
        optimizer: ``adam`` / ``adamw`` / ``sgd``.
        lr: peak learning rate (cosine schedule).
        weight_decay: L2 penalty.
        augment: random crop (0.8-1) + flip, the standard light augmentation.
        ssl_epochs: SimCLR epochs for the ``ssl`` labeling.
        ssl_batch_size: SimCLR batch size.
        pseudo_k: number of classes of the ``pseudo`` labeling.
        coarse_k: number of groups of the ``coarse`` labeling (datasets without a semantic grouping).
        fine_k: sub-classes per class of the ``fine`` labeling.
        device: where the trainer trains (``cpu``, ``cuda``, ``cuda:N``).
        seed: initialisation, data order and augmentation seed.
    """

    arch: str = "cnn-small"
    epochs: int = 8
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 5e-4
    augment: bool = True
    ssl_epochs: int = 8
    ssl_batch_size: int = 128
    pseudo_k: int = 5
    coarse_k: int = 2
    fine_k: int = 2
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.ssl_epochs < 1:
            raise ValueError("epochs and ssl_epochs must be >= 1")
        if self.pseudo_k < 2 or self.coarse_k < 2 or self.fine_k < 2:
            raise ValueError("pseudo_k, coarse_k and fine_k must be >= 2")


@dataclass
class Labeling:
    """A trainer's labeling of the training and test images."""

    name: str
    train: torch.Tensor | None
    test: torch.Tensor
    num_classes: int
    note: str = ""


@dataclass
class TrainerResult:
    """Clean test accuracy of one trainer run: per epoch, final and peak."""

    history: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> float:
        return self.history[-1]

    @property
    def peak(self) -> float:
        return max(self.history)

    def to_dict(self) -> dict[str, Any]:
        return {
            "final": round(self.final, 4),
            "peak": round(self.peak, 4),
            "history": [round(v, 4) for v in self.history],
            "seconds": round(self.seconds, 1),
        }


def make_labelings(
    train: ImageDataset, test: ImageDataset, names: Sequence[str] = LABELINGS, *, config: TrainerConfig | None = None
) -> list[Labeling]:
    """The trainer's labelings of clean ``train``/``test`` (see module docstring).

    Raises:
        ValueError: unknown name, or unlabeled data for a label-derived labeling.
    """
    cfg = config or TrainerConfig()
    if train.labels is None or test.labels is None:
        raise ValueError("label-agnostic evaluation needs labeled train and test sets")
    out = []
    for name in names:
        if name == "true":
            out.append(Labeling("true", train.labels, test.labels, int(train.labels.max()) + 1, "dataset labels"))
        elif name == "coarse":
            c = int(max(train.labels.max(), test.labels.max())) + 1
            if train.info.name == "fashion-mnist" and c == 10:
                table = torch.tensor(FASHION_COARSE)
                note = "Fashion-MNIST: tops / trousers+dresses / footwear / bags"
            else:
                table = torch.arange(c) * cfg.coarse_k // c
                note = f"{c} classes in {cfg.coarse_k} contiguous groups"
            out.append(Labeling("coarse", table[train.labels], table[test.labels], int(table.max()) + 1, note))
        elif name == "pseudo":
            tr, te = _pixel_kmeans(train, test, cfg.pseudo_k, seed=derive_seed(cfg.seed, "pseudo"))
            note = f"K-means K={cfg.pseudo_k} on PCA-50 pixels of the clean images"
            out.append(Labeling("pseudo", tr, te, cfg.pseudo_k, note))
        elif name == "fine":
            tr, te = _fine_split(train, test, cfg.fine_k, seed=derive_seed(cfg.seed, "fine"))
            note = f"each class split in {cfg.fine_k} by K-means on PCA-50 pixels of its clean images"
            out.append(Labeling("fine", tr, te, int(train.labels.max() + 1) * cfg.fine_k, note))
        elif name == "ssl":
            out.append(Labeling("ssl", None, test.labels, int(train.labels.max()) + 1, "SimCLR + linear probe"))
        else:
            raise ValueError(f"unknown labeling {name!r}; choose from {', '.join(LABELINGS)}")
    return out


def _pixel_kmeans(train: ImageDataset, test: ImageDataset, k: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    xtr = train.float_images().flatten(1).numpy()
    xte = test.float_images().flatten(1).numpy()
    pca = PCA(n_components=min(50, xtr.shape[1], len(xtr)), random_state=seed).fit(xtr)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pca.transform(xtr))
    return (
        torch.as_tensor(km.labels_, dtype=torch.int64),
        torch.as_tensor(km.predict(pca.transform(xte)), dtype=torch.int64),
    )


def _fine_split(train: ImageDataset, test: ImageDataset, k: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ``c``'s images get labels ``k c .. k c + k - 1`` from a K-means of that class's clean pixels."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    assert train.labels is not None and test.labels is not None
    xtr, xte = train.float_images().flatten(1).numpy(), test.float_images().flatten(1).numpy()
    ytr, yte = train.labels.clone(), test.labels.clone()
    out_tr, out_te = ytr * k, yte * k
    for c in ytr.unique().tolist():
        itr, ite = (ytr == c).nonzero().flatten(), (yte == c).nonzero().flatten()
        if len(itr) < k:
            raise ValueError(f"class {c} has {len(itr)} training images; the fine labeling needs >= {k}")
        pca = PCA(n_components=min(50, xtr.shape[1], len(itr)), random_state=seed).fit(xtr[itr])
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pca.transform(xtr[itr]))
        out_tr[itr] += torch.as_tensor(km.labels_, dtype=torch.int64)
        if len(ite):
            out_te[ite] += torch.as_tensor(km.predict(pca.transform(xte[ite])), dtype=torch.int64)
    return out_tr, out_te


@torch.no_grad()
def _accuracy(model: Supervised, test: ImageDataset, labels: torch.Tensor) -> float:
    was = model.training
    model.eval()
    correct = 0
    device = next(model.parameters()).device
    for x, _, idx in test.batches(512):
        correct += int((model.logits(x.to(device)).argmax(1).cpu() == labels[idx]).sum())
    model.train(was)
    return correct / len(test)


def train_classifier(
    train: ImageDataset,
    train_labels: torch.Tensor,
    test: ImageDataset,
    test_labels: torch.Tensor,
    num_classes: int,
    config: TrainerConfig | None = None,
    *,
    objective_factory: Callable[[Any, int], Objective] | None = None,
) -> TrainerResult:
    """Train a fresh classifier on ``train`` with ``train_labels``; clean test accuracy after every epoch.

    Args:
        objective_factory: builds the objective from (encoder, num_classes); default the ``supervised``
            objective (countermeasures pass training-time variants such as MixUp or PGD training).
    """
    cfg = config or TrainerConfig()
    torch.manual_seed(derive_seed(cfg.seed, "trainer-init"))
    info = train.info
    net = create_encoder(cfg.arch, in_channels=info.channels, image_size=info.image_size, mean=info.mean, std=info.std)
    if objective_factory is not None:
        objective = objective_factory(net, num_classes)
    else:
        objective = create_objective("supervised", net, SupervisedConfig(num_classes=num_classes, augment=cfg.augment))
    ds = ImageDataset(train.images, train_labels, info, train.split, train.indices)
    history: list[float] = []

    def on_epoch(epoch: int, obj: Objective) -> None:
        history.append(_accuracy(obj, test, test_labels))  # type: ignore[arg-type]

    tc = TrainConfig(
        epochs=cfg.epochs,
        batch_size=min(cfg.batch_size, len(ds)),
        optimizer=cfg.optimizer,  # type: ignore[arg-type]
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        checkpoint_every=0,
        device=cfg.device,
    )
    t0 = time.perf_counter()
    fit(objective, ds, tc, progress=False, on_epoch_end=on_epoch)
    return TrainerResult(history=history, seconds=time.perf_counter() - t0)


def train_ssl_probe(
    train: ImageDataset, test: ImageDataset, config: TrainerConfig | None = None, *, probe_every: int = 2
) -> TrainerResult:
    """SimCLR pre-training on ``train`` (labels ignored), then a linear probe on its features.

    The probe is fitted on the (protected) training images with their true labels and scored on the clean
    test set every ``probe_every`` epochs and at the end.
    """
    from ...evaluate import extract_features, fit_linear_probe
    from ...victim import LocalEncoder

    cfg = config or TrainerConfig()
    if train.labels is None or test.labels is None:
        raise ValueError("the ssl labeling needs labels for the linear probe")
    torch.manual_seed(derive_seed(cfg.seed, "ssl-init"))
    info = train.info
    net = create_encoder(cfg.arch, in_channels=info.channels, image_size=info.image_size, mean=info.mean, std=info.std)
    objective = create_objective("simclr", net, None)
    history: list[float] = []

    def probe(obj: Objective) -> float:
        enc = LocalEncoder(obj.encoder)
        ftr, fte = extract_features(enc, train), extract_features(enc, test)
        acc = fit_linear_probe(ftr, train.labels, max_iter=300).accuracy(fte, test.labels)  # type: ignore[arg-type]
        obj.train()
        return acc

    def on_epoch(epoch: int, obj: Objective) -> None:
        if epoch % probe_every == 0 or epoch == cfg.ssl_epochs:
            history.append(probe(obj))

    tc = TrainConfig(
        epochs=cfg.ssl_epochs,
        batch_size=min(cfg.ssl_batch_size, len(train)),
        lr=cfg.lr,
        seed=cfg.seed,
        checkpoint_every=0,
        device=cfg.device,
    )
    t0 = time.perf_counter()
    fit(objective, train, tc, progress=False, on_epoch_end=on_epoch)
    return TrainerResult(history=history, seconds=time.perf_counter() - t0)


def evaluate_protection(
    protected: ImageDataset,
    test: ImageDataset,
    labelings: Sequence[Labeling],
    config: TrainerConfig | None = None,
) -> dict[str, dict[str, Any]]:
    """Trainer accuracy on the clean test set for each labeling (``{labeling: TrainerResult.to_dict()}``).

    ``protected`` must be in the same order as the clean training set the labelings were made from
    (pass the clean set itself for the clean reference).
    """
    cfg = config or TrainerConfig()
    out: dict[str, dict[str, Any]] = {}
    for lab in labelings:
        if lab.name == "ssl":
            res = train_ssl_probe(protected, test, cfg)
        else:
            assert lab.train is not None
            res = train_classifier(protected, lab.train, test, lab.test, lab.num_classes, cfg)
        out[lab.name] = res.to_dict()
        log.info("trainer [%s]: final %.3f peak %.3f (%.0fs)", lab.name, res.final, res.peak, res.seconds)
    return out


def chance_level(labels: torch.Tensor) -> float:
    """Accuracy of always predicting the most frequent class."""
    counts = np.bincount(labels.numpy())
    return float(counts.max() / counts.sum())
