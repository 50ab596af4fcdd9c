"""Countermeasures a trainer may apply to protected data, and the protection x countermeasure table.

Data-side (applied once to the training images before training):

* ``grayscale``: ITU-R 601 luma (ISS, Liu et al., ICML 2023: beats low-frequency poisons such as EM and
  LSP). On 1-channel data (Fashion-MNIST) it is the identity and is reported as such.
* ``jpeg``: JPEG re-encoding at ``quality`` (ISS: q = 10 beats high-frequency poisons such as TAP).
* ``blur``: Gaussian smoothing, ``sigma`` in pixels (UC code ``GaussianSmoothing``; APBench Gaussian).

Training-side (the trainer's objective changes; used through :func:`~.evaluation.train_classifier`):

* ``cutout`` (DeVries & Taylor 2017: a square of side ``size`` x image side set to zero; CIFAR 16 of 32),
* ``cutmix`` (Yun et al. 2019, Beta(``alpha``, ``alpha``) box area),
* ``mixup`` (Zhang et al. 2018, Beta(``alpha``, ``alpha``) mixing),
* ``pgd-at``: adversarial training (Madry et al. 2018) at a small L-inf radius ``eps`` (default 4/255;
  APBench uses 8/255), ``steps`` PGD steps of ``2.5 * eps / steps``.

Specs are ``name`` or ``name:key=value,...`` (e.g. ``jpeg:quality=10``, ``pgd-at:eps=0.0157``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...augment import ops
from ...data.base import ImageDataset
from ...models.base import EncoderNet
from ...train.objective import Objective
from ...train.supervised import Supervised, SupervisedConfig
from .evaluation import Labeling, TrainerConfig, train_classifier

__all__ = ["COUNTERMEASURES", "Countermeasure", "countermeasure_table", "parse_countermeasure"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Countermeasure:
    """A trainer-side countermeasure: a data transform and/or a training objective.

    Attributes:
        name: spec as given (e.g. ``jpeg:quality=10``).
        prepare: maps the protected training set to the set actually trained on (None = unchanged).
        objective: builds the training objective from (encoder, num_classes, augment) (None = supervised).
        note: caveat shown in tables (e.g. identity on grayscale data).
    """

    name: str
    prepare: Callable[[ImageDataset], ImageDataset] | None = None
    objective: Callable[[EncoderNet, int, bool], Objective] | None = None
    note: str = ""


def _map_images(ds: ImageDataset, fn: Callable[[torch.Tensor], torch.Tensor]) -> ImageDataset:
    x = fn(ds.float_images())
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageDataset(images, ds.labels, ds.info, ds.split, ds.indices)


def jpeg_images(ds: ImageDataset, quality: int) -> ImageDataset:
    """Re-encode every image as JPEG at ``quality`` (Pillow) and decode it again."""
    from PIL import Image

    out = torch.empty_like(ds.images)
    for i in range(len(ds)):
        arr = ds.images[i].permute(1, 2, 0).numpy()
        img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(quality))
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(img.mode))
        out[i] = torch.from_numpy(back.reshape(arr.shape).copy()).permute(2, 0, 1)
    return ImageDataset(out, ds.labels, ds.info, ds.split, ds.indices)


class _Mixing(Supervised):
    """Supervised objective with a batch-level augmentation after the standard crop/flip."""

    def __init__(self, encoder: EncoderNet, num_classes: int, augment: bool, kind: str, **p: float) -> None:
        super().__init__(encoder, SupervisedConfig(num_classes=num_classes, augment=augment))
        self.kind, self.p = kind, p

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        if labels is None:
            raise ValueError("supervised training needs labels")
        x = self.views(images, generator) if self.config.augment else images
        n, _, h, w = x.shape
        if self.kind == "cutout":
            side = max(1, round(self.p["size"] * h))
            cy = torch.randint(0, h, (n,), generator=generator)
            cx = torch.randint(0, w, (n,), generator=generator)
            ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
            inside = ((ys - cy.view(-1, 1, 1)).abs() <= side // 2) & ((xs - cx.view(-1, 1, 1)).abs() <= side // 2)
            return F.cross_entropy(self.logits(x * (~inside).unsqueeze(1).to(x.dtype)), labels)
        lam = float(
            np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator))).beta(
                self.p["alpha"], self.p["alpha"]
            )
        )
        perm = torch.randperm(n, generator=generator)
        if self.kind == "mixup":
            mixed = lam * x + (1 - lam) * x[perm]
        else:  # cutmix
            cut = (1 - lam) ** 0.5
            bh, bw = int(h * cut), int(w * cut)
            by = int(torch.randint(0, h, (1,), generator=generator))
            bx = int(torch.randint(0, w, (1,), generator=generator))
            y0, y1 = max(by - bh // 2, 0), min(by + bh // 2, h)
            x0, x1 = max(bx - bw // 2, 0), min(bx + bw // 2, w)
            mixed = x.clone()
            mixed[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        logits = self.logits(mixed)
        return lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels[perm])


class _PGDTraining(Supervised):
    """Madry adversarial training: cross entropy on L-inf PGD examples of the current model."""

    def __init__(self, encoder: EncoderNet, num_classes: int, augment: bool, eps: float, steps: int) -> None:
        super().__init__(encoder, SupervisedConfig(num_classes=num_classes, augment=augment))
        self.eps, self.steps = eps, int(steps)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        if labels is None:
            raise ValueError("supervised training needs labels")
        x = self.views(images, generator) if self.config.augment else images
        step = 2.5 * self.eps / max(self.steps, 1)
        d = (torch.rand(x.shape, generator=generator) * 2 - 1) * self.eps
        for _ in range(self.steps):
            d.requires_grad_(True)
            loss = F.cross_entropy(self.logits((x + d).clamp(0, 1)), labels)
            (grad,) = torch.autograd.grad(loss, d)
            d = (d.detach() + step * grad.sign()).clamp(-self.eps, self.eps)
        return F.cross_entropy(self.logits((x + d.detach()).clamp(0, 1)), labels)


def _blur(sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        frac = (2 * int(np.ceil(2 * sigma)) + 1) / x.shape[-1]
        return ops.gaussian_blur(x, p=1.0, sigma=(sigma, sigma), kernel_frac=frac)

    return fn


_DEFAULTS: dict[str, dict[str, float]] = {
    "none": {},
    "grayscale": {},
    "jpeg": {"quality": 10},
    "blur": {"sigma": 1.0},
    "cutout": {"size": 0.5},
    "cutmix": {"alpha": 1.0},
    "mixup": {"alpha": 1.0},
    "pgd-at": {"eps": 4 / 255, "steps": 3},
}
COUNTERMEASURES = tuple(_DEFAULTS)


def parse_countermeasure(spec: str, *, channels: int = 3) -> Countermeasure:
    """Build a countermeasure from ``name`` or ``name:key=value,...``.

    Raises:
        ValueError: unknown name or parameter, or a value that is not a number.
    """
    name, _, rest = spec.partition(":")
    if name not in _DEFAULTS:
        raise ValueError(f"unknown countermeasure {name!r}; choose from {', '.join(COUNTERMEASURES)}")
    params = dict(_DEFAULTS[name])
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in params:
            raise ValueError(f"countermeasure {name!r} takes {sorted(params) or 'no options'}, got {item!r}")
        try:
            params[key] = float(value.split("/")[0]) / float(value.split("/")[1]) if "/" in value else float(value)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{spec!r}: {key} must be a number") from None
    if name == "none":
        return Countermeasure(spec)
    if name == "grayscale":
        note = "identity on 1-channel images" if channels == 1 else ""
        return Countermeasure(spec, prepare=lambda ds: _map_images(ds, ops.grayscale), note=note)
    if name == "jpeg":
        q = int(params["quality"])
        if not 1 <= q <= 95:
            raise ValueError("jpeg quality must be in [1, 95]")
        return Countermeasure(spec, prepare=lambda ds: jpeg_images(ds, q))
    if name == "blur":
        if params["sigma"] <= 0:
            raise ValueError("blur sigma must be positive")
        return Countermeasure(spec, prepare=lambda ds: _map_images(ds, _blur(params["sigma"])))
    if name == "pgd-at":
        if params["eps"] <= 0 or params["steps"] < 1:
            raise ValueError("pgd-at needs eps > 0 and steps >= 1")
        return Countermeasure(
            spec, objective=lambda enc, k, aug: _PGDTraining(enc, k, aug, params["eps"], int(params["steps"]))
        )
    if (name == "cutout" and not 0 < params["size"] <= 1) or (name != "cutout" and params["alpha"] <= 0):
        raise ValueError(f"invalid parameters for {name}: {params}")
    return Countermeasure(spec, objective=lambda enc, k, aug: _Mixing(enc, k, aug, name, **params))


def train_with_countermeasure(
    protected: ImageDataset,
    test: ImageDataset,
    labeling: Labeling,
    countermeasure: Countermeasure,
    config: TrainerConfig | None = None,
) -> dict[str, Any]:
    """Trainer accuracy (final/peak on clean test) when it trains on ``protected`` with a countermeasure."""
    cfg = config or TrainerConfig()
    data = countermeasure.prepare(protected) if countermeasure.prepare is not None else protected
    factory = None
    if countermeasure.objective is not None:
        make = countermeasure.objective

        def factory(enc: EncoderNet, k: int) -> Objective:
            return make(enc, k, cfg.augment)

    assert labeling.train is not None
    res = train_classifier(
        data, labeling.train, test, labeling.test, labeling.num_classes, cfg, objective_factory=factory
    )
    return res.to_dict()


def countermeasure_table(
    protected: dict[str, ImageDataset],
    test: ImageDataset,
    labeling: Labeling,
    countermeasures: Sequence[str],
    config: TrainerConfig | None = None,
) -> dict[str, Any]:
    """Clean test accuracy for every protection x countermeasure (the trainer uses ``labeling``).

    Returns:
        ``{"title", "columns", "rows", "note", "raw"}``: rows are protections, columns countermeasures,
        cells ``final (peak)`` accuracies.
    """
    channels = next(iter(protected.values())).info.channels
    cms = [parse_countermeasure(s, channels=channels) for s in countermeasures]
    raw: dict[str, dict[str, Any]] = {}
    rows = []
    for pname, ds in protected.items():
        raw[pname] = {}
        row: list[Any] = [pname]
        for cm in cms:
            r = train_with_countermeasure(ds, test, labeling, cm, config)
            raw[pname][cm.name] = r
            row.append(f"{r['final']:.3f} ({r['peak']:.3f})")
            log.info("countermeasure %s on %s: final %.3f peak %.3f", cm.name, pname, r["final"], r["peak"])
        rows.append(row)
    notes = [f"{cm.name}: {cm.note}" for cm in cms if cm.note]
    return {
        "title": f"Trainer clean test accuracy under countermeasures (labels: {labeling.name}), final (peak)",
        "columns": ["protection", *[cm.name for cm in cms]],
        "rows": rows,
        "note": "; ".join(notes),
        "raw": raw,
    }
