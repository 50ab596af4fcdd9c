"""Target encoders for membership audits: one that overfits its member set and one that does not.

EncoderMI "exploits the overfitting of the image encoder towards its training data" (Liu et al.,
CCS 2021, abstract); its targets are ResNet-18 MoCo encoders trained for many epochs on CIFAR-10 /
STL-10 / Tiny-ImageNet subsets. On a CPU we reproduce the *mechanism* at small scale:

* ``overfit``: a small member set seen for many epochs (every image is revisited hundreds of times,
  so the encoder can memorise how its own views look);
* ``generalizing``: many more images for a few epochs (each image is seen a handful of times).

Members, non-members and the shadow pool are disjoint parts of one dataset split drawn i.i.d. by
:func:`~encoder_audit.data.make_splits`, so a member / non-member difference can only come from
training, never from a distribution shift (the pitfall of Das et al., "Blind Baselines Beat
Membership Inference Attacks for Foundation Models", arXiv 2406.16201).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...data.base import ImageDataset
from ...data.splits import SplitManifest, make_splits
from ...models.base import EncoderNet, create_encoder
from ...runs import RunDir
from ...train import TrainConfig, create_objective, fit
from ...train.pretrain import method_config

log = logging.getLogger(__name__)

__all__ = ["RECIPES", "TargetRecipe", "make_audit_splits", "recipe", "train_encoder"]


@dataclass(frozen=True)
class TargetRecipe:
    """How a target (or shadow) encoder is trained.

    Attributes:
        members: pre-training (member) set size.
        epochs: pre-training epochs.
        batch_size: training batch.
        lr: Adam learning rate.
        weight_decay: L2 penalty (0 helps memorisation).
        method: ``simclr`` or ``moco``.
        arch: encoder architecture.
        temperature: contrastive temperature (None = the method's default).
    """

    members: int = 500
    epochs: int = 100
    batch_size: int = 100
    lr: float = 2e-3
    weight_decay: float = 0.0
    method: str = "simclr"
    arch: str = "cnn-small"
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.members < 2 or self.epochs < 1:
            raise ValueError("members must be >= 2 and epochs >= 1")
        if self.batch_size < 2 or self.batch_size > self.members:
            raise ValueError(f"batch_size must be in [2, members={self.members}], got {self.batch_size}")
        if self.method not in ("simclr", "moco"):
            raise ValueError(f"method must be simclr or moco, got {self.method!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay >= 0")

    def train_config(self, seed: int = 0) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=seed,
            checkpoint_every=0,
            device="cpu",
        )

    def method_options(self) -> dict[str, Any]:
        return {} if self.temperature is None else {"temperature": self.temperature}


# Sizes chosen to fit a 2-core CPU (docs/benchmarks/membership.md). On Fashion-MNIST a cnn-small
# SimCLR encoder showed no measurable leakage after 300 steps on 100-500 members, nor after 1,000 steps
# on 64 members; on 32 members the member / non-member gap of the mean view similarity grows with
# training up to ~1,000 epochs (one step each) and then levels off.
RECIPES: dict[str, TargetRecipe] = {
    "overfit": TargetRecipe(members=32, epochs=2000, batch_size=32, lr=2e-3, temperature=0.2),
    "generalizing": TargetRecipe(members=2000, epochs=3, batch_size=100, lr=2e-3, temperature=0.2),
    "tiny": TargetRecipe(members=64, epochs=30, batch_size=32),
}


def recipe(name: str, **overrides: Any) -> TargetRecipe:
    """A named recipe with fields overridden (``ValueError`` for unknown names)."""
    if name not in RECIPES:
        raise ValueError(f"unknown target recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return replace(RECIPES[name], **overrides) if overrides else RECIPES[name]


def make_audit_splits(
    dataset: ImageDataset, members: int, nonmembers: int, shadow: int, *, seed: int = 0
) -> SplitManifest:
    """Disjoint ``members`` / ``nonmembers`` / ``shadow`` parts, i.i.d. from one split."""
    return make_splits(dataset, {"members": members, "nonmembers": nonmembers, "shadow": shadow}, seed=seed)


def train_encoder(
    dataset: ImageDataset,
    spec: TargetRecipe,
    *,
    seed: int = 0,
    snapshots: Sequence[int] = (),
    run: RunDir | None = None,
    progress: bool | None = False,
    on_snapshot: Callable[[int, EncoderNet], None] | None = None,
) -> tuple[EncoderNet, dict[int, EncoderNet]]:
    """Pre-train a fresh encoder on ``dataset`` (all of it: these are the members).

    Args:
        dataset: the member set.
        spec: the recipe.
        seed: training seed.
        snapshots: epochs (1-based) after which a frozen copy of the encoder is kept.
        run: run directory (metrics, final checkpoint) or None.
        progress: progress bar.
        on_snapshot: called with (epoch, copy) for each snapshot.

    Returns:
        ``(final encoder, {epoch: encoder copy})``, all in eval mode.
    """
    info = dataset.info
    net = create_encoder(spec.arch, in_channels=info.channels, image_size=info.image_size, mean=info.mean, std=info.std)
    objective = create_objective(spec.method, net, method_config(spec.method, spec.method_options()))
    wanted = set(int(e) for e in snapshots)
    if any(e < 1 or e > spec.epochs for e in wanted):
        raise ValueError(f"snapshot epochs must be in [1, {spec.epochs}], got {sorted(wanted)}")
    kept: dict[int, EncoderNet] = {}

    def on_epoch_end(epoch: int, obj: Any) -> None:
        if epoch in wanted:  # fit passes 1-based epochs
            snap = copy.deepcopy(obj.encoder).eval()
            kept[epoch] = snap
            if on_snapshot is not None:
                on_snapshot(epoch, snap)

    extra = {"method": spec.method, "recipe": spec.__dict__, "dataset_fingerprint": dataset.fingerprint()}
    fit(
        objective,
        dataset,
        spec.train_config(seed),
        run=run,
        progress=progress,
        on_epoch_end=on_epoch_end,
        extra_config=extra,
    )
    return net.eval(), kept
