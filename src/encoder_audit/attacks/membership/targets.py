"""Target encoders for membership audits: one that memorises its member set and one that does not.

EncoderMI "exploits the overfitting of the image encoder towards its training data" (Liu et al.,
CCS 2021, abstract); its targets are ResNet-18 MoCo v1 encoders (whose projection head is one linear
layer) trained for many epochs on CIFAR-10 / STL-10 / Tiny-ImageNet subsets. On a CPU we reproduce the
*mechanism* at small scale:

* ``overfit``: 32 members seen for 1,000 epochs, the contrastive loss applied to the encoder output ``h``
  itself (no projection head), so the memorisation lands in the features that are served;
* ``overfit-mlp``: the same with SimCLR's MLP head, which absorbs most of the memorisation (the head's
  output ``z`` leaks, ``h`` much less): the case where an audit of ``h`` alone is misleading;
* ``generalizing``: 2,000 members for 3 epochs (each image is seen three times).

docs/benchmarks/membership.md holds the measurement that chose each recipe.

Members, non-members and the shadow pool are disjoint parts of one dataset split drawn i.i.d. by
:func:`~encoder_audit.data.make_splits`, so a member / non-member difference can only come from
training, never from a distribution shift (the pitfall of Das et al., "Blind Baselines Beat
Membership Inference Attacks for Foundation Models", arXiv 2406.16201).

The projection head is kept: :func:`train_encoder` returns it and, with a run directory, writes it
beside the encoder as ``head.safetensors`` + ``head.json`` (:func:`save_head` / :func:`load_head`), so
an audit can attack both the served features ``h`` and the head's output ``z = g(h)``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file
from torch import nn

from ...data.base import ImageDataset
from ...data.splits import SplitManifest, make_splits
from ...errors import CheckpointError
from ...io import atomic_write, atomic_write_json
from ...models.base import EncoderNet, create_encoder
from ...models.heads import HEADS, create_head
from ...runs import RunDir, derive_seed
from ...train import TrainConfig, create_objective, fit
from ...train.pretrain import method_config

log = logging.getLogger(__name__)

__all__ = [
    "RECIPES",
    "TargetRecipe",
    "Trained",
    "head_encoder",
    "load_head",
    "make_audit_splits",
    "recipe",
    "save_head",
    "train_encoder",
]


@dataclass(frozen=True)
class TargetRecipe:
    """How a target (or shadow) encoder is trained: every option of the method is a field.

    Attributes:
        members: pre-training (member) set size.
        epochs: pre-training epochs.
        batch_size: training batch.
        lr: Adam learning rate.
        weight_decay: L2 penalty (0 helps memorisation).
        schedule: ``cosine`` or ``constant`` learning rate.
        method: ``simclr`` or ``moco``.
        arch: encoder architecture.
        temperature: contrastive temperature (None = the method's default).
        head: projection head ``mlp``, ``linear`` or ``none`` (None = the method's default: SimCLR
            and MoCo v2 an MLP, MoCo v1 a linear layer).
        views: training augmentation recipe (None = the method's default: ``simclr``, ``moco-v1``/``-v2``).
        version: MoCo version (``v1`` or ``v2``; ignored for SimCLR).
        queue_size: MoCo queue length (ignored for SimCLR).
    """

    members: int = 500
    epochs: int = 100
    batch_size: int = 100
    lr: float = 2e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    method: str = "simclr"
    arch: str = "cnn-small"
    temperature: float | None = None
    head: str | None = None
    views: str | None = None
    version: str = "v2"
    queue_size: int = 4096

    def __post_init__(self) -> None:
        if self.members < 2 or self.epochs < 1:
            raise ValueError("members must be >= 2 and epochs >= 1")
        if self.batch_size < 2 or self.batch_size > self.members:
            raise ValueError(f"batch_size must be in [2, members={self.members}], got {self.batch_size}")
        if self.method not in ("simclr", "moco"):
            raise ValueError(f"method must be simclr or moco, got {self.method!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay >= 0")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, got {self.schedule!r}")
        if self.head is not None and self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.version not in ("v1", "v2"):
            raise ValueError(f"version must be v1 or v2, got {self.version!r}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError("temperature must be positive")
        if self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        method_config(self.method, self.method_options())  # the options must fit the method

    def train_config(self, seed: int = 0, device: str = "cpu") -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,  # type: ignore[arg-type]
            seed=seed,
            checkpoint_every=0,
            device=device,
        )

    def method_options(self) -> dict[str, Any]:
        """The options of the method's config (``SimCLRConfig`` / ``MoCoConfig``) this recipe sets."""
        out: dict[str, Any] = {}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.head is not None:
            out["head"] = self.head
        if self.method == "moco":
            out["version"] = self.version
            out["queue_size"] = self.queue_size
        elif self.views is not None:
            out["views"] = self.views
        return out

    @property
    def head_kind(self) -> str:
        """The projection head used (the method's default when ``head`` is None)."""
        if self.head is not None:
            return self.head
        return "linear" if self.method == "moco" and self.version == "v1" else "mlp"

    @property
    def training_views(self) -> str:
        """The augmentation recipe the encoder is trained with (and an inferrer should query with)."""
        if self.method == "moco":
            return "moco-v1" if self.version == "v1" else "moco-v2"
        return self.views or "simclr"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetRecipe:
        """A recipe from a sidecar's ``training.recipe`` (unknown keys ignored; older sidecars lack some)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# Chosen by measurement on Fashion-MNIST / cnn-small, 32 members vs 500 i.i.d. non-members, mean 10-view
# cosine on h averaged over 3 view draws (docs/benchmarks/membership.md, "Choosing the targets"): with the
# loss on h (no head), T = 0.2, batch 32, Adam 2e-3, cosine, wd 0, 500 epochs gave AUC 0.70 / 0.68 (seeds
# 0, 1), T = 0.1 gave 0.82, 1,000 epochs gave 0.95 (seed 0): 1,000 epochs is the shipped recipe.
RECIPES: dict[str, TargetRecipe] = {
    "overfit": TargetRecipe(members=32, epochs=1000, batch_size=32, lr=2e-3, temperature=0.2, head="none"),
    "overfit-linear": TargetRecipe(members=32, epochs=1000, batch_size=32, lr=2e-3, temperature=0.2, head="linear"),
    "overfit-mlp": TargetRecipe(members=32, epochs=1000, batch_size=32, lr=2e-3, temperature=0.2, head="mlp"),
    "generalizing": TargetRecipe(members=2000, epochs=3, batch_size=100, lr=2e-3, temperature=0.2, head="none"),
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


@dataclass
class Trained:
    """A trained encoder with its projection head (``nn.Identity`` for ``head="none"``).

    Attributes:
        net: the encoder (eval mode).
        head: the projection head ``g`` (eval mode).
        head_kind: ``mlp``, ``linear`` or ``none``.
        snapshots: ``{epoch: (encoder copy, head copy)}``.
        seconds: training wall time.
    """

    net: EncoderNet
    head: nn.Module
    head_kind: str
    snapshots: dict[int, tuple[EncoderNet, nn.Module]] = field(default_factory=dict)
    seconds: float = 0.0


def head_encoder(net: EncoderNet, head: nn.Module) -> EncoderNet:
    """An :class:`EncoderNet` computing ``z = g(h(x))``: the encoder followed by its projection head.

    It shares the weights of ``net`` and ``head`` (no copy) and the input normalisation of ``net``.
    """

    class _Then(nn.Module):
        def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x))

    with torch.no_grad():
        probe = torch.zeros(2, *net.input_shape, device=net.mean.device)
        was = (net.training, head.training)
        net.eval(), head.eval()
        dim = int(head(net(probe)).shape[1])
        net.train(was[0]), head.train(was[1])
    out = EncoderNet(
        _Then(net.backbone, head),
        arch=f"{net.arch}+head",
        in_channels=net.in_channels,
        image_size=net.image_size,
        feature_dim=dim,
        mean=net.mean.flatten().tolist(),
        std=net.std.flatten().tolist(),
    )
    return out.eval()


def _head_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    p = Path(checkpoint)
    folder = p if p.is_dir() else p.parent
    return folder / "head.safetensors", folder / "head.json"


def save_head(checkpoint: str | Path, head: nn.Module, kind: str, in_dim: int) -> Path:
    """Write the projection head next to an encoder checkpoint (``head.safetensors`` + ``head.json``).

    The JSON records the head's kind, input / output dimension and the sha256 of its weights.
    """
    weights, meta_path = _head_paths(checkpoint)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    if not state:  # nn.Identity: nothing to store but the fact
        state = {"_identity": torch.zeros(1)}
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": "encoder-audit-head"}))
    with torch.no_grad():
        out_dim = int(head.eval()(torch.zeros(2, in_dim)).shape[1])
    meta = {
        "kind": kind,
        "in_dim": in_dim,
        "out_dim": out_dim,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    atomic_write_json(meta_path, meta)
    return weights


def load_head(checkpoint: str | Path) -> tuple[nn.Module, str] | None:
    """The projection head saved next to ``checkpoint`` as ``(head, kind)``, or None when there is none.

    Raises:
        CheckpointError: the head file does not match its recorded sha256 or its kind.
    """
    weights, meta_path = _head_paths(checkpoint)
    if not (weights.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights} does not match the sha256 in {meta_path.name}")
    kind = str(meta.get("kind"))
    head = create_head(kind, int(meta["in_dim"]), int(meta["out_dim"]) if kind != "none" else 128)
    if kind != "none":
        try:
            head.load_state_dict(load_bytes(data), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{weights} does not fit a {kind} head: {str(exc).splitlines()[0]}") from None
    return head.eval(), kind


def train_encoder(
    dataset: ImageDataset,
    spec: TargetRecipe,
    *,
    seed: int = 0,
    snapshots: Sequence[int] = (),
    run: RunDir | None = None,
    progress: bool | None = False,
    device: str = "cpu",
    on_snapshot: Callable[[int, EncoderNet], None] | None = None,
) -> Trained:
    """Pre-train a fresh encoder on ``dataset`` (all of it: these are the members).

    Args:
        dataset: the member set.
        spec: the recipe.
        seed: training seed.
        snapshots: epochs (1-based) after which a frozen copy of the encoder and head is kept.
        run: run directory (metrics, ``encoder.safetensors``, ``head.safetensors``) or None.
        progress: progress bar.
        device: where to train.
        on_snapshot: called with (epoch, encoder copy) for each snapshot.

    Returns:
        The encoder and head (eval mode, on the CPU) and the snapshots.
    """
    import time

    info = dataset.info
    # The initialisation follows ``seed`` alone, whatever the process did before (the global RNG is
    # restored afterwards), so a target or shadow is the same in any run.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        net = create_encoder(
            spec.arch, in_channels=info.channels, image_size=info.image_size, mean=info.mean, std=info.std
        )
        objective = create_objective(spec.method, net, method_config(spec.method, spec.method_options()))
    wanted = set(int(e) for e in snapshots)
    if any(e < 1 or e > spec.epochs for e in wanted):
        raise ValueError(f"snapshot epochs must be in [1, {spec.epochs}], got {sorted(wanted)}")
    kept: dict[int, tuple[EncoderNet, nn.Module]] = {}
    head: nn.Module = objective.head  # type: ignore[assignment]

    def on_epoch_end(epoch: int, obj: Any) -> None:
        if epoch in wanted:  # fit passes 1-based epochs
            snap = copy.deepcopy(obj.encoder).cpu().eval()
            kept[epoch] = (snap, copy.deepcopy(obj.head).cpu().eval())
            if on_snapshot is not None:
                on_snapshot(epoch, snap)

    extra = {
        "method": spec.method,
        "recipe": spec.to_dict(),
        "head": spec.head_kind,
        "views": spec.training_views,
        "dataset_fingerprint": dataset.fingerprint(),
    }
    t0 = time.perf_counter()
    fit(
        objective,
        dataset,
        spec.train_config(seed, device),
        run=run,
        progress=progress,
        on_epoch_end=on_epoch_end,
        extra_config=extra,
    )
    seconds = time.perf_counter() - t0
    net, head = net.cpu().eval(), head.cpu().eval()
    if run is not None:
        save_head(run.file("encoder.safetensors"), head, spec.head_kind, net.feature_dim)
    return Trained(net, head, spec.head_kind, kept, seconds)


def make_target(
    name: str,
    run: RunDir,
    *,
    dataset: str = "fashion-mnist",
    overrides: dict[str, Any] | None = None,
    nonmembers: int | None = None,
    shadow_images: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    data_root: Path | None = None,
    download: bool = False,
    progress: bool | None = False,
) -> dict[str, Any]:
    """``encoder-audit membership make-target``: draw i.i.d. splits, train a target, save it with its head.

    Writes ``splits.json`` (members / nonmembers / shadow), ``encoder.safetensors`` (+ sidecar holding
    the recipe, head kind and training views), ``head.safetensors``, ``config.yaml``, ``env.json`` and
    ``results.json`` into ``run``.

    Args:
        name: a recipe of :data:`RECIPES`.
        overrides: recipe fields to change (``members`` also caps ``batch_size``).
        nonmembers: non-members drawn beside the members (default: 500 + members, so 500 remain
            scored after the audit's null split takes as many as there are members).
        shadow_images: shadow pool (default: enough for the audit's shadow, reference and control).

    Returns:
        The results written (paths, sizes, recipe, seconds).
    """
    from ...data import create_dataset
    from ...runs import derive_seed

    changes = dict(overrides or {})
    if "members" in changes and "batch_size" not in changes:
        changes["batch_size"] = min(RECIPES[name].batch_size if name in RECIPES else 32, int(changes["members"]))
    spec = recipe(name, **changes)
    n_shadow = shadow_images if shadow_images is not None else 2 * spec.members + 1500
    nonmembers = nonmembers if nonmembers is not None else spec.members + 500
    full = create_dataset(dataset, "train", root=data_root, download=download)
    manifest = make_audit_splits(full, spec.members, nonmembers, n_shadow, seed=derive_seed(seed, "splits"))
    manifest.save(run.file("splits.json"))
    run.save_config({"command": "membership make-target", "recipe": spec.to_dict(), "dataset": dataset})
    run.save_env(seed)
    trained = train_encoder(
        manifest.select(full, "members"), spec, seed=seed, run=run, progress=progress, device=device
    )
    out = {
        "checkpoint": str(run.file("encoder.safetensors")),
        "head": str(run.file("head.safetensors")),
        "splits": str(run.file("splits.json")),
        "seconds": round(trained.seconds, 1),
        "recipe": spec.to_dict(),
        "parts": {k: len(v) for k, v in manifest.parts.items()},
    }
    run.save_results(out, kind="membership-target")
    return out
