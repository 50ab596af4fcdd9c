"""Data protection by unlearnable examples: the ``Protection`` base class, its result and registry.

A *protection* takes a dataset the owner wants to publish and returns the same images with a small,
bounded perturbation added, so that a model trained on them learns little that transfers to clean
data (an availability poison used defensively; Huang et al., ICLR 2021; Zhang et al., CVPR 2023).

Every protection here has one verb, :meth:`Protection.protect`, and returns a :class:`ProtectedDataset`
holding the perturbed images **as uint8** (what would be written to disk) plus metadata: the budget,
the group each image was perturbed with (cluster or class), the protector's labels, the cost.

Budgets are enforced on the quantised images, so they hold on the written PNG files:
:func:`apply_perturbation` rounds the perturbation to integer grey levels and clips it to
``floor(eps * 255)`` levels (L-inf) or truncates it toward zero (L2, which can only shrink the norm).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ...data.base import ImageDataset
from ...victim import Encoder
from ..registry import attack_class, register_attack

__all__ = [
    "ProtectedDataset",
    "Protection",
    "apply_perturbation",
    "create_protection",
    "parse_eps",
    "project",
    "register_protection",
]

log = logging.getLogger(__name__)

Norm = Literal["linf", "l2"]


def parse_eps(text: str | float, *, norm: str = "linf") -> float:
    """``"16/255"``, ``"0.0627"`` or a float -> float budget in [0, 1] pixel units.

    An L-inf budget must lie in (0, 1] (a perturbation larger than the pixel range is not a budget);
    an L2 budget only has to be positive.

    Raises:
        ValueError: not a number or fraction, not positive, or above 1 for L-inf.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip()
        try:
            if "/" in s:
                num, den = s.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(s)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"cannot parse budget {text!r}; use e.g. 16/255 or 0.0627") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"budget must be positive, got {text!r}")
    if norm == "linf" and value > 1:
        raise ValueError(f"an L-inf budget must be in (0, 1] pixel units (e.g. 16/255), got {text!r} = {value:.3f}")
    return value


def check_eps(eps: float, norm: str) -> None:
    """Raise ValueError unless ``eps`` is a valid budget for ``norm`` (L-inf in (0, 1], L2 positive)."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if not math.isfinite(eps) or eps <= 0 or (norm == "linf" and eps > 1):
        raise ValueError(f"eps must be in (0, 1] for linf (or positive for l2), got {eps}")


def project(delta: torch.Tensor, eps: float, norm: Norm = "linf") -> torch.Tensor:
    """Project perturbations onto the ``eps`` ball, per sample (first dimension).

    Shape:
        delta: (N, ...) -> (N, ...)
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1)
    scale = (eps / flat.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale[:, None]).view_as(delta)


def apply_perturbation(images: torch.Tensor, delta: torch.Tensor, eps: float, norm: Norm = "linf") -> torch.Tensor:
    """Add a float perturbation to uint8 images so that the budget holds *after* quantisation.

    L-inf: ``round(255 * delta)`` clipped to ``floor(255 * eps + 1e-6)`` grey levels. L2: the
    perturbation is first projected to the ball, then truncated toward zero (each level only shrinks),
    so the quantised norm never exceeds ``eps``. Clipping to [0, 255] can only shrink it further.

    Args:
        images: (N, C, H, W) uint8.
        delta: (N, C, H, W) float (or broadcastable), in [0, 1] pixel units.
        eps: budget in [0, 1] pixel units.
        norm: ``linf`` or ``l2``.

    Returns:
        (N, C, H, W) uint8 protected images.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    d = delta.float().expand(images.shape) * 255.0
    if norm == "linf":
        levels = math.floor(eps * 255.0 + 1e-6)
        d = d.round().clamp(-levels, levels)
    else:
        d = project(d / 255.0, eps, "l2") * 255.0
        d = d.trunc()
    return (images.to(torch.int16) + d.to(torch.int16)).clamp(0, 255).to(torch.uint8)


_JSON_TYPES = (str, int, float, bool, list, dict, type(None))


def steepest_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest-ascent direction of a per-sample gradient: its sign (L-inf) or unit-norm rescaling (L2)."""
    if norm == "linf":
        return grad.sign()
    return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))


@dataclass
class ProtectedDataset:
    """Perturbed images ready to publish, with what the protector did.

    Attributes:
        dataset: the protected images (uint8, same order, labels and info as the input).
        method: registry name of the protection.
        eps: budget in [0, 1] pixel units.
        norm: ``linf`` or ``l2``.
        groups: (N,) the cluster/class whose perturbation each image received, or None (sample-wise).
        config: the protection's resolved config.
        meta: anything else worth recording (permutation, surrogate hash, losses, label source).
        seconds: wall-clock time of :meth:`Protection.protect`.
    """

    dataset: ImageDataset
    method: str
    eps: float
    norm: str
    groups: torch.Tensor | None = None
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description (no images)."""
        return {
            "method": self.method,
            "eps": self.eps,
            "norm": self.norm,
            "images": len(self.dataset),
            "groups": None if self.groups is None else int(self.groups.max()) + 1,
            "seconds": round(self.seconds, 2),
            "config": self.config,
            "meta": {k: v for k, v in self.meta.items() if isinstance(v, _JSON_TYPES)},
        }


class Protection:
    """Base class: ``protect(dataset) -> ProtectedDataset``.

    Subclasses implement :meth:`_protect` returning ``(images uint8, groups or None, meta)``; the base
    class times it and wraps the result. Capabilities are class attributes (the attack registry's
    convention):

    - ``needs_labels``: crafted from the dataset's labels (label-based baselines in ``true`` mode);
    - ``needs_surrogate``: needs the protector's surrogate encoder (see :meth:`surrogate_needed`);
    - ``white_box``: the surrogate must be differentiable (gradients through it);
    - ``uses_views``: queries augmented views (never, for protections);
    - ``query_cost(n)``: images embedded by the surrogate for ``n`` protected images.
    """

    name: str = ""
    config: Any = None
    needs_labels: bool = False
    needs_surrogate: bool = False
    white_box: bool = False
    uses_views: bool = False

    def query_cost(self, n: int) -> int:
        """Surrogate embeddings spent on ``n`` images (0 for methods that use no surrogate)."""
        return n if self.surrogate_needed() else 0

    def surrogate_needed(self) -> bool:
        """Whether this configured instance needs a surrogate (label-based methods only in cluster mode)."""
        return self.needs_surrogate

    surrogate: Encoder | None = None

    def protect(
        self, dataset: ImageDataset, *, progress: bool | None = False, surrogate: Encoder | None = None
    ) -> ProtectedDataset:
        """Perturb every image of ``dataset`` within the budget.

        Args:
            dataset: images to protect (labels are used only by label-based methods).
            progress: show progress bars.
            surrogate: the protector's encoder (replaces the one given at construction).

        Raises:
            ValueError: an empty dataset, or no surrogate for a method that needs one.
        """
        from ...config import config_to_dict

        if len(dataset) == 0:
            raise ValueError("cannot protect an empty dataset")
        if surrogate is not None:
            self.surrogate = surrogate
        if self.surrogate_needed() and self.surrogate is None:
            raise ValueError(f"protection {self.name!r} needs a surrogate encoder (surrogate=...)")
        t0 = time.perf_counter()
        images, groups, meta = self._protect(dataset, progress=progress)
        seconds = time.perf_counter() - t0
        out = ImageDataset(images, dataset.labels, dataset.info, dataset.split, dataset.indices)
        log.info("%s protected %d images in %.1fs", self.name, len(dataset), seconds)
        return ProtectedDataset(
            dataset=out,
            method=self.name,
            eps=float(meta.pop("eps", getattr(self.config, "eps", 0.0))),
            norm=str(meta.pop("norm", getattr(self.config, "norm", "linf"))),
            groups=groups,
            config=config_to_dict(self.config) if self.config is not None else {},
            meta=meta,
            seconds=seconds,
        )

    def _protect(
        self, dataset: ImageDataset, *, progress: bool | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        raise NotImplementedError


class LabelBasedProtection(Protection):
    """Base of the label-based baselines (EM, TAP, LSP): crafted from the protector's own labels.

    The labels are the dataset's true ones, or K-means clusters of the surrogate's embeddings in
    label-agnostic mode (``config.label_source == "clusters"``), so the labels the noise was crafted with
    can differ from the ones a trainer later uses.
    """

    config_class: type = object
    needs_labels = True

    def __init__(self, config: Any = None, *, surrogate: Encoder | None = None, **_: Any) -> None:
        self.config = config or self.config_class()
        self.surrogate = surrogate

    def surrogate_needed(self) -> bool:
        return getattr(self.config, "label_source", "true") == "clusters"

    def _labels(self, dataset: ImageDataset) -> tuple[torch.Tensor, int]:
        """The protector's labels of ``dataset`` and their number of classes."""
        from ...runs import derive_seed
        from .clustering import protector_labels

        c = self.config
        return protector_labels(
            dataset, c.label_source, encoder=self.surrogate, k=c.label_clusters, seed=derive_seed(c.seed, "labels")
        )


def register_protection(name: str, *, config: type | None = None, help: str = "") -> Any:
    """Class decorator: register a :class:`Protection` as ``name`` of the ``protection`` attack family."""
    return register_attack("protection", name, config=config, help=help)


def create_protection(name: str, config: Any = None, **kwargs: Any) -> Protection:
    """Build a protection by name (``uc``, ``em``, ``tap``, ``lsp``, ``random``).

    A thin wrapper over :func:`encoder_audit.attacks.registry.create_attack` that also takes the
    constructor's keyword arguments (``surrogate=``, ``craft_size=``).

    Args:
        name: registry name.
        config: the method's config dataclass, or a mapping of its fields (validated).
        **kwargs: constructor arguments such as ``surrogate=`` (an :class:`~encoder_audit.victim.Encoder`).
    """
    from ...config import build_config
    from ..registry import registry

    cls = registry("protection").config_class(name)
    if isinstance(config, dict):
        if cls is None:
            raise ValueError(f"protection {name!r} takes no options")
        config = build_config(cls, config)
    return attack_class("protection", name)(config, **kwargs)  # type: ignore[no-any-return]
