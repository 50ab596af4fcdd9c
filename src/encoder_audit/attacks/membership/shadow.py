"""Shadow encoders: the inferrer's stand-in for the target, with members and non-members it knows.

EncoderMI (Liu et al., CCS 2021, Sec. "Training a shadow encoder"): the inferrer splits a shadow
dataset into shadow members and shadow non-members, pre-trains a shadow encoder on the members with
an assumed architecture and contrastive algorithm, and uses the shadow encoder's membership features
of both parts as the inference classifier's training set. The paper varies three kinds of background
knowledge, each known or not, giving 8 settings: the pre-training data distribution (unknown: shadow
data from another dataset), the encoder architecture (unknown: the inferrer picks ResNet-18 or VGG-11)
and the training algorithm (unknown: MoCo v1 or SimCLR). "20,000 images from same or different
dataset" are its shadow data; ours are smaller to fit a shared CPU.

Besides the two parts the shadow keeps a labelled ``reference`` part the shadow encoder never saw; the
downstream-classifier baseline trains its linear head on it, and the embedding-norm baseline uses it
as known non-members.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from ...data.base import ImageDataset
from ...data.splits import make_splits
from ...runs import derive_seed
from ...victim import Encoder, LocalEncoder
from .features import FeatureConfig, VictimProbe
from .targets import TargetRecipe, head_encoder, train_encoder

log = logging.getLogger(__name__)

__all__ = ["ALTERNATIVES", "KNOWLEDGE_SETTINGS", "Knowledge", "Shadow", "ShadowConfig", "shadow_recipe", "train_shadow"]

# What an inferrer who does not know the architecture / algorithm picks instead (the paper's pairs:
# ResNet-18 <-> VGG-11, MoCo <-> SimCLR; cnn-small's CPU-sized alternative is vgg11-small, the VGG-11
# layout at 1/4 width).
ALTERNATIVES: dict[str, dict[str, str]] = {
    "arch": {"resnet18": "vgg11", "vgg11": "resnet18", "cnn-small": "vgg11-small", "vgg11-small": "cnn-small"},
    "method": {"moco": "simclr", "simclr": "moco"},
}


@dataclass(frozen=True)
class Knowledge:
    """Which of EncoderMI's three kinds of background knowledge the inferrer has."""

    data: bool = True
    arch: bool = True
    algorithm: bool = True

    @property
    def label(self) -> str:
        parts = (("data", self.data), ("arch", self.arch), ("algo", self.algorithm))
        return "/".join(f"{k}{'+' if v else '-'}" for k, v in parts)


KNOWLEDGE_SETTINGS: tuple[Knowledge, ...] = tuple(
    Knowledge(d, a, t) for d in (False, True) for a in (False, True) for t in (False, True)
)


def shadow_recipe(target: TargetRecipe, knowledge: Knowledge = Knowledge()) -> TargetRecipe:
    """The shadow's recipe: the target's, with the unknown architecture / algorithm swapped.

    The data axis is decided by which shadow data the caller passes (same dataset or another one).
    """
    arch = target.arch if knowledge.arch else ALTERNATIVES["arch"].get(target.arch, "vgg11-small")
    method = target.method if knowledge.algorithm else ALTERNATIVES["method"][target.method]
    temperature = target.temperature if knowledge.algorithm else None
    return replace(target, arch=arch, method=method, temperature=temperature)


@dataclass(frozen=True)
class ShadowConfig:
    """How the shadow is built.

    Attributes:
        recipe: training recipe of the shadow encoder (``recipe.members`` shadow members).
        nonmembers: shadow non-members (the paper splits its shadow data in two equal halves).
        reference: labelled images neither part contains (for the baselines' heads and norms).
    """

    recipe: TargetRecipe = field(default_factory=TargetRecipe)
    nonmembers: int | None = None
    reference: int = 500

    def __post_init__(self) -> None:
        if self.nonmembers is not None and self.nonmembers < 1:
            raise ValueError("nonmembers must be >= 1")
        if self.reference < 0:
            raise ValueError("reference must be >= 0")

    @property
    def n_nonmembers(self) -> int:
        return self.recipe.members if self.nonmembers is None else self.nonmembers


class Shadow:
    """A shadow encoder with its known members, non-members and reference images.

    Membership features of the shadow are computed once per feature config and shared by every
    attack fitted on it (:meth:`probes`).
    """

    def __init__(
        self,
        encoder: Encoder,
        members: ImageDataset,
        nonmembers: ImageDataset,
        reference: ImageDataset | None = None,
        *,
        recipe: TargetRecipe | None = None,
        seed: int = 0,
        head: Any = None,
    ) -> None:
        self.encoder = encoder
        self.head = head
        self.members = members
        self.nonmembers = nonmembers
        self.reference = reference
        self.recipe = recipe
        self.seed = seed
        self._probes: dict[tuple[str, int], tuple[VictimProbe, VictimProbe]] = {}
        self._ref_probe: dict[str, VictimProbe] = {}

    def probes(self, features: FeatureConfig) -> tuple[VictimProbe, VictimProbe]:
        """(member probe, non-member probe) of the shadow encoder for the view recipe of ``features``."""
        key = (features.views, features.batch_size)
        if key not in self._probes:
            self._probes[key] = (
                VictimProbe(self.encoder, self.members, features, seed=derive_seed(self.seed, "shadow-in")),
                VictimProbe(self.encoder, self.nonmembers, features, seed=derive_seed(self.seed, "shadow-out")),
            )
        return self._probes[key]

    def reference_probe(self, encoder: Any, features: FeatureConfig, tag: str) -> VictimProbe:
        """A probe of ``encoder`` (the shadow's or the victim's) on the reference images, cached by ``tag``."""
        if self.reference is None or len(self.reference) == 0:
            raise ValueError("this shadow has no reference images (ShadowConfig.reference = 0)")
        if tag not in self._ref_probe:
            self._ref_probe[tag] = VictimProbe(encoder, self.reference, features, seed=derive_seed(self.seed, tag))
        return self._ref_probe[tag]

    def head_output(self) -> Shadow:
        """This shadow seen through its projection head (``z = g(h)``); itself when it has none.

        Raises:
            ValueError: the shadow's encoder is not local (no weights to put the head on).
        """
        if self.head is None or self.recipe is None or self.recipe.head_kind == "none":
            return self
        if not isinstance(self.encoder, LocalEncoder):
            raise ValueError("the shadow's head output needs a local shadow encoder")
        return Shadow(
            LocalEncoder(head_encoder(self.encoder.net, self.head)),
            self.members,
            self.nonmembers,
            self.reference,
            recipe=self.recipe,
            seed=self.seed,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "members": len(self.members),
            "nonmembers": len(self.nonmembers),
            "reference": 0 if self.reference is None else len(self.reference),
            "dataset": self.members.name,
            "recipe": None if self.recipe is None else self.recipe.to_dict(),
        }


def train_shadow(
    shadow_data: ImageDataset,
    config: ShadowConfig | None = None,
    *,
    seed: int = 0,
    snapshots: tuple[int, ...] = (),
    progress: bool | None = False,
    device: str = "cpu",
) -> tuple[Shadow, dict[int, Shadow]]:
    """Split ``shadow_data`` i.i.d. into members / non-members / reference and train the shadow encoder.

    Args:
        shadow_data: the inferrer's own images (disjoint from the target's members and non-members).
        config: sizes and recipe.
        seed: seed of the split and of training.
        snapshots: epochs at which extra shadows are kept (for the early-stopping sweep).

    Returns:
        ``(shadow, {epoch: shadow at that epoch})``.

    Raises:
        ValueError: the shadow data is too small for the requested parts.
    """
    c = config or ShadowConfig()
    sizes = {"members": c.recipe.members, "nonmembers": c.n_nonmembers, "reference": c.reference}
    need = sum(sizes.values())
    if need > len(shadow_data):
        raise ValueError(
            f"shadow data has {len(shadow_data)} images but the shadow needs {need} "
            f"({sizes['members']} members + {sizes['nonmembers']} non-members + {sizes['reference']} reference)"
        )
    manifest = make_splits(shadow_data, sizes, seed=derive_seed(seed, "shadow-split"))
    parts = {k: shadow_data.subset(list(v)) for k, v in manifest.parts.items()}
    log.info("training shadow %s/%s on %d images", c.recipe.arch, c.recipe.method, len(parts["members"]))
    trained = train_encoder(
        parts["members"], c.recipe, seed=derive_seed(seed, "shadow-train"), snapshots=snapshots, device=device
    )
    ref = parts["reference"] if c.reference else None

    def make(net: Any, head: Any) -> Shadow:
        return Shadow(
            LocalEncoder(net), parts["members"], parts["nonmembers"], ref, recipe=c.recipe, seed=seed, head=head
        )

    return make(trained.net, trained.head), {e: make(n, h) for e, (n, h) in trained.snapshots.items()}
