"""DECREE: detecting a backdoor in a pre-trained encoder by inverting a minimal trigger.

Feng et al., "Detecting Backdoors in Pre-trained Encoders" (CVPR 2023, arXiv 2303.15180; official code
GiantSeaweed/DECREE, ``main.py``; research notes, poisoning.md Sec. 3.4). A backdoored encoder maps any
image carrying its trigger close to one embedding, so a *small* trigger makes the embeddings of many
clean images nearly identical; on a clean encoder only a trigger that overwrites much of the image does
that. DECREE searches for the smallest such trigger, a mask m in [0, 1]^{H x W} and a pattern p in the
valid image range, stamped as

    x' = (1 - m) * x + m * p,

minimising

    L(m, p) = -mean_{i != j} cos(f(x'_i), f(x'_j)) + lambda * C * |m|_1

over a few clean images (the penalty is the L1 norm of the mask broadcast over the C channels, as the
official ``loss_reg`` sums the (H, W, 3) mask). m and p are optimised in tanh space
(m = (tanh(w_m) + 1) / 2, likewise p), with lambda adapted on the fly: raised 5x after more than 5
consecutive steps whose similarity reaches the success level (0.99), lowered 5x after more than 5 that
miss it. The smallest mask seen at a successful step is the inverted trigger; its size relative to the
image, the **PL1-norm** |m|_1 / (H W), is the detection score (small = trojaned).

Which threshold separates the two depends on the architecture, the input size and the data (a clean
encoder whose features are already collapsed needs only a small trigger), so beside the absolute
threshold of :class:`DecreeConfig` the detector can be *calibrated*: :func:`reference_pl1_norms` runs
the inversion on clean encoders of the same recipe, and :func:`detect_backdoor` with ``reference``
flags the suspect when its PL1-norm is below ``reference_ratio`` times the smallest clean one.

On the project's quick victim (SimCLR ``cnn-small``, Fashion-MNIST) DECREE does not separate clean
encoders from BadEncoder-backdoored copies: the clean network already has scattered-pixel triggers
smaller than BadEncoder's 9x9 patch (measurements in ``benchmarks/poisoning_decree.py``). On an
encoder whose only small trigger is the planted one it does (``tests/defenses/test_decree.py``).

White-box only: the inversion back-propagates through the network (``encoder.net``, the
:class:`~encoder_audit.models.base.EncoderNet`, which normalises its [0, 1] input itself), like
:mod:`encoder_audit.attacks.poisoning.badencoder`. The network's weights are never changed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..data.base import ImageDataset
from ..models.base import EncoderNet
from ..victim import WhiteBox, adapt_images

log = logging.getLogger(__name__)

__all__ = [
    "DecreeConfig",
    "DecreeResult",
    "LambdaSchedule",
    "calibrated_threshold",
    "decree_loss",
    "detect_backdoor",
    "mean_pairwise_cosine",
    "reference_pl1_norms",
    "stamp",
]


@dataclass(frozen=True)
class DecreeConfig:
    """DECREE settings. Defaults follow the official ``main.py`` for its 32 px (CIFAR-10/STL-10)
    encoders unless said otherwise; with them a 28x28 grayscale ``cnn-small`` is scanned in 1-4 s on
    one CPU core (measured: 38-101 steps before the early stop, ``benchmarks/poisoning_decree.py``).

    Attributes:
        images: clean images the trigger is inverted on (official CIFAR-10 branch:
            ``clean_train_data.sample(0.005)`` of the 10,000 test images, i.e. 50).
        batch_size: images per step; at least ``images`` gives one full-batch step per epoch, as the
            official CIFAR-10 run does (``--batch_size`` default 256 for 50 images).
        max_epochs: epochs at most (official ``epochs = 1000``; 300 here to bound a CPU run: the
            official schedule has reached its final learning rate at epoch 50, and the measured runs
            stop early after 38-101 steps).
        lr: Adam learning rate of the first stage (``run_decree.py`` passes ``lr=0.5``).
        lr_milestones: epochs where the rate drops (official ``adjust_learning_rate``: ``[30, 50]``
            for cifar10/stl10 encoders, ``[200, 500]`` for ImageNet/CLIP).
        lr_late: the rates after the first and second milestone (official: 0.1, then 0.05).
        betas: Adam betas (official ``betas=(0.5, 0.9)``).
        success_similarity: mean pairwise cosine a trigger must reach to count (official
            ``--thres`` default 0.99, the ``succ_threshold`` of the lambda schedule).
        lambda_init: initial weight of the mask penalty (official ``init_loss_lambda = 1e-3``).
        lambda_factor: the factor lambda is raised or lowered by (official ``adaptor_lambda = 5.0``).
        lambda_min: lambda is not lowered below this, and a lambda under it that keeps succeeding is
            reset to ``lambda_init`` (official ``lambda_min = 1e-5`` for cifar10/stl10, 1e-7 for
            ImageNet/CLIP).
        lambda_max: lambda is not raised above this (official ``if loss_lambda < 1e5``).
        patience: consecutive successful (failed) steps after which lambda goes up (down)
            (official ``patience = 5``).
        lambda_reset_patience: successful steps under ``lambda_min`` before the reset (official
            ``lambda_set_patience = 2 * patience``).
        early_stop_patience: steps without a smaller successful mask after which an epoch whose mean
            similarity succeeds ends the search (official ``2 * patience`` for cifar10/stl10,
            ``7 * patience`` for ImageNet/CLIP).
        mask_init: ``random`` (mask and pattern uniform in [0, 1]; ``run_decree.py`` uses
            ``mask_init='rand'``) or ``full`` (mask 0.99 everywhere: starts from a trigger that surely
            succeeds; not official).
        threshold: absolute PL1-norm under which an uncalibrated encoder is called trojaned. 0.1 is a
            working value, **not** a quoted one: the official repository's code and README state no
            PL1 threshold (the README's one threshold is the z-score > 2.5 of its text-on-pair check),
            and the paper's value could not be checked here. For a 28 px encoder 0.1 is the area of
            BadEncoder's 9x9 trigger (81 / 784 = 0.103); on the quick victim it flags clean encoders
            too (their PL1-norms: 0.065-0.096). Prefer a calibrated decision (``reference``).
        reference_ratio: with reference clean encoders, the suspect is trojaned when its PL1-norm is
            below this fraction of the smallest reference PL1-norm (ours, not the paper's: "needs less
            than half the trigger area of any clean encoder of the same recipe").
        mask_cells: ``None`` (official: one mask value per pixel) or the number of mask cells per side,
            each cell covering a block of pixels (nearest upsampling). Not official: a coarse mask
            cannot use the scattered single-pixel patterns that collapse small stride-2 CNNs (measured
            in the docstring of ``benchmarks/poisoning_decree.py``).
    """

    images: int = 50
    batch_size: int = 256
    max_epochs: int = 300
    lr: float = 0.5
    lr_milestones: tuple[int, int] = (30, 50)
    lr_late: tuple[float, float] = (0.1, 0.05)
    betas: tuple[float, float] = (0.5, 0.9)
    success_similarity: float = 0.99
    lambda_init: float = 1e-3
    lambda_factor: float = 5.0
    lambda_min: float = 1e-5
    lambda_max: float = 1e5
    patience: int = 5
    lambda_reset_patience: int = 10
    early_stop_patience: int = 10
    mask_init: str = "random"
    threshold: float = 0.1
    reference_ratio: float = 0.5
    mask_cells: int | None = None

    def __post_init__(self) -> None:
        if self.images < 2:
            raise ValueError(f"images must be >= 2 (pairs of embeddings are compared), got {self.images}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if not (self.lr > 0 and all(v > 0 for v in self.lr_late)) or len(self.lr_late) != 2:
            raise ValueError("lr and the two lr_late rates must be positive")
        if len(self.lr_milestones) != 2 or not 0 <= self.lr_milestones[0] <= self.lr_milestones[1]:
            raise ValueError(f"lr_milestones must be two epochs 0 <= a <= b, got {self.lr_milestones}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two values in [0, 1), got {self.betas}")
        if not -1 < self.success_similarity < 1:
            raise ValueError(f"success_similarity must be in (-1, 1), got {self.success_similarity}")
        if not 0 < self.lambda_min <= self.lambda_init <= self.lambda_max:
            raise ValueError("need 0 < lambda_min <= lambda_init <= lambda_max")
        if self.lambda_factor <= 1:
            raise ValueError(f"lambda_factor must be > 1, got {self.lambda_factor}")
        if self.patience < 0 or self.lambda_reset_patience < 0 or self.early_stop_patience < 0:
            raise ValueError("patience, lambda_reset_patience and early_stop_patience must be >= 0")
        if self.mask_init not in ("random", "full"):
            raise ValueError(f"mask_init must be 'random' or 'full', got {self.mask_init!r}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be a PL1-norm in (0, 1], got {self.threshold}")
        if self.mask_cells is not None and self.mask_cells < 1:
            raise ValueError(f"mask_cells must be >= 1 (or None: one cell per pixel), got {self.mask_cells}")
        if not 0 < self.reference_ratio <= 1:
            raise ValueError(f"reference_ratio must be in (0, 1], got {self.reference_ratio}")


@dataclass
class DecreeResult:
    """One DECREE scan.

    Attributes:
        pl1_norm: |m|_1 / (H W) of the inverted trigger (1.0, the whole image, when no mask reached
            ``success_similarity``: overwriting the whole image always does).
        l1_norm: |m|_1 in pixels.
        similarity: mean pairwise cosine of the scanned images stamped with the inverted trigger.
        clean_similarity: the same images' mean pairwise cosine without the trigger (the baseline).
        found: whether some mask reached ``success_similarity``.
        trojaned: the decision (``pl1_norm < threshold``).
        threshold: the PL1-norm threshold used.
        threshold_source: where it comes from (the config's absolute value, or the reference encoders).
        reference_pl1: PL1-norms of the clean reference encoders, when given.
        relative_pl1: ``pl1_norm`` / the smallest reference PL1-norm, when references are given.
        steps: optimisation steps.
        epochs: epochs run.
        seconds: wall time of the inversion.
        images: images scanned.
        mask: (H, W) inverted mask in [0, 1] (at the encoder's input size); the last one tried when
            nothing was found.
        pattern: (C, H, W) inverted pattern in [0, 1].
        history: per epoch: mean similarity, mean PL1-norm of the current mask, lambda, learning rate.
    """

    pl1_norm: float
    l1_norm: float
    similarity: float
    clean_similarity: float
    found: bool
    trojaned: bool
    threshold: float
    threshold_source: str
    steps: int
    epochs: int
    seconds: float
    images: int
    mask: torch.Tensor = field(repr=False)
    pattern: torch.Tensor = field(repr=False)
    reference_pl1: tuple[float, ...] | None = None
    relative_pl1: float | None = None
    history: list[dict[str, float]] = field(default_factory=list, repr=False)

    def mask_mass_in(self, rows: tuple[int, int], cols: tuple[int, int]) -> float:
        """Fraction of the mask's L1 mass inside rows [r0, r1) x cols [c0, c1) (e.g. a known trigger)."""
        total = float(self.mask.sum())
        if total <= 0:
            return 0.0
        return float(self.mask[rows[0] : rows[1], cols[0] : cols[1]].sum()) / total

    def to_dict(self, *, history: bool = False) -> dict[str, Any]:
        """The numbers (no tensors), for JSON."""
        out = {k: v for k, v in asdict(self).items() if k not in ("mask", "pattern", "history")}
        if out["reference_pl1"] is not None:
            out["reference_pl1"] = list(out["reference_pl1"])
        if history:
            out["history"] = self.history
        return out


def mean_pairwise_cosine(z: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all ordered pairs i != j of the rows of ``z`` (N, D), N >= 2.

    The official ``compute_self_cos_sim``: the off-diagonal mean of the cosine matrix.
    """
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"need (N, D) embeddings with N >= 2, got shape {tuple(z.shape)}")
    u = F.normalize(z, dim=1)
    n = len(u)
    s = u.sum(0)
    # sum over all pairs minus the diagonal, without the N x N matrix
    return ((s @ s) - (u * u).sum()) / (n * (n - 1))


def decree_loss(
    z: torch.Tensor, mask: torch.Tensor, lam: float, channels: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DECREE's objective on the embeddings ``z`` (N, D) of stamped images and the mask (H, W).

    Returns:
        (loss, similarity, l1) with loss = -similarity + lam * channels * l1, similarity the mean
        pairwise cosine (:func:`mean_pairwise_cosine`) and l1 = |m|_1.
    """
    cos = mean_pairwise_cosine(z)
    l1 = mask.abs().sum()
    return -cos + lam * channels * l1, cos, l1


def stamp(images: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """x' = (1 - m) * x + m * p, clipped to [0, 1].

    Shape:
        images: (N, C, H, W) in [0, 1]; mask: (H, W) in [0, 1]; pattern: (C, H, W) in [0, 1].
    """
    return ((1 - mask) * images + mask * pattern).clamp(0, 1)


def _to_unit(w: torch.Tensor) -> torch.Tensor:
    return ((torch.tanh(w) + 1) / 2).clamp(0, 1)


def _from_unit(v: torch.Tensor) -> torch.Tensor:
    return torch.atanh((2 * v - 1).clamp(-1 + 1e-6, 1 - 1e-6))


def _network(encoder: WhiteBox | EncoderNet) -> EncoderNet:
    if isinstance(encoder, EncoderNet):
        return encoder
    net = getattr(encoder, "net", None)
    if isinstance(net, EncoderNet):
        return net
    raise TypeError(
        f"DECREE needs white-box access (gradients through the network): {type(encoder).__name__} has no "
        "EncoderNet `.net`; pass an EncoderNet or a LocalEncoder"
    )


@contextlib.contextmanager
def _frozen(net: EncoderNet) -> Iterator[None]:
    """Eval mode and no parameter gradients for the scan; restores both afterwards."""
    was_training = net.training
    flags = [p.requires_grad for p in net.parameters()]
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(net.parameters(), flags):
            p.requires_grad_(flag)
        net.train(was_training)


def calibrated_threshold(reference: Sequence[float], ratio: float) -> float:
    """``ratio`` times the smallest PL1-norm of the clean reference encoders.

    Raises:
        ValueError: no references, or PL1-norms outside (0, 1].
    """
    if not reference:
        raise ValueError("calibration needs at least one reference PL1-norm")
    if not all(0 < v <= 1 for v in reference):
        raise ValueError(f"reference PL1-norms must be in (0, 1], got {list(reference)}")
    return ratio * min(reference)


class LambdaSchedule:
    """DECREE's adaptive weight of the mask penalty, one :meth:`step` per optimisation step.

    The official ``main.py`` rules, in its order: while lambda is below ``lambda_min`` and the step
    succeeds for more than ``lambda_reset_patience`` steps in a row, lambda is reset to
    ``lambda_init`` (counters cleared); then more than ``patience`` successes in a row multiply it by
    ``lambda_factor`` (not beyond ``lambda_max``) and more than ``patience`` failures in a row divide it
    (only while it is still >= ``lambda_min``).
    """

    def __init__(self, config: DecreeConfig) -> None:
        self.config = config
        self.lam = config.lambda_init
        self.up = self.down = self.stuck = 0

    def step(self, success: bool) -> float:
        """Update after a step whose similarity did (not) reach the success level; returns lambda."""
        c = self.config
        if self.lam < c.lambda_min and success:
            self.stuck += 1
            if self.stuck > c.lambda_reset_patience:
                self.lam, self.up, self.down = c.lambda_init, 0, 0
        else:
            self.stuck = 0
        self.up, self.down = (self.up + 1, 0) if success else (0, self.down + 1)
        if self.up > c.patience:
            if self.lam < c.lambda_max:
                self.lam *= c.lambda_factor
            self.up = 0
        elif self.down > c.patience:
            if self.lam >= c.lambda_min:
                self.lam /= c.lambda_factor
            self.down = 0
        return self.lam


def _lr_at(epoch: int, c: DecreeConfig) -> float:
    if epoch < c.lr_milestones[0]:
        return c.lr
    return c.lr_late[0] if epoch < c.lr_milestones[1] else c.lr_late[1]


def detect_backdoor(
    encoder: WhiteBox | EncoderNet,
    images: ImageDataset,
    config: DecreeConfig | None = None,
    *,
    seed: int = 0,
    reference: Sequence[float] | None = None,
) -> DecreeResult:
    """Invert a minimal trigger for ``encoder`` on ``config.images`` clean images and decide.

    Args:
        encoder: the suspect (a white-box :class:`~encoder_audit.victim.LocalEncoder`, or its
            :class:`EncoderNet`); used in eval mode, weights untouched.
        images: clean images, adapted to the encoder's input shape (a random ``config.images`` of them,
            drawn with ``seed``, are scanned).
        config: settings (default :class:`DecreeConfig`).
        seed: image choice, mask/pattern initialisation and batch order.
        reference: PL1-norms of clean encoders of the same recipe (see :func:`reference_pl1_norms`);
            given, the decision uses :func:`calibrated_threshold` instead of ``config.threshold``.

    Raises:
        TypeError: a black-box encoder.
        ValueError: fewer than two images.
    """
    c = config or DecreeConfig()
    net = _network(encoder)
    if len(images) < 2:
        raise ValueError(f"DECREE needs at least 2 clean images, got {len(images)}")
    device = next(iter(net.parameters()), net.mean).device
    g = torch.Generator().manual_seed(seed)
    n = min(c.images, len(images))
    rows = torch.randperm(len(images), generator=g)[:n]
    x = adapt_images(images.float_images(rows), net.input_shape).to(device)
    ch, h, w = net.input_shape
    mh, mw = (h, w) if c.mask_cells is None else (min(h, c.mask_cells), min(w, c.mask_cells))
    if c.mask_init == "random":
        m0 = torch.rand(mh, mw, generator=g)
    else:
        m0 = torch.full((mh, mw), 0.99)
    p0 = torch.rand(ch, h, w, generator=g)
    w_mask = _from_unit(m0).to(device).requires_grad_(True)
    w_pattern = _from_unit(p0).to(device).requires_grad_(True)
    opt = torch.optim.Adam([w_mask, w_pattern], lr=c.lr, betas=c.betas)

    schedule = LambdaSchedule(c)
    lam = schedule.lam
    best_l1 = math.inf

    def full_mask() -> torch.Tensor:
        m = _to_unit(w_mask)
        if m.shape != (h, w):
            m = F.interpolate(m[None, None], size=(h, w), mode="nearest")[0, 0]
        return m

    best_mask = full_mask().detach().clone()
    best_pattern = _to_unit(w_pattern).detach().clone()
    early_best = math.inf
    early_cnt = 0
    steps = epochs = 0
    chunks = max(1, n // c.batch_size)  # every batch holds >= batch_size >= 2 images (or all n)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    with _frozen(net):
        for epoch in range(c.max_epochs):
            lr = _lr_at(epoch, c)
            for group in opt.param_groups:
                group["lr"] = lr
            cos_sum = reg_sum = 0.0
            order = torch.randperm(n, generator=g).to(device)
            parts = torch.tensor_split(order, chunks)
            for idx in parts:
                mask = full_mask()
                pattern = _to_unit(w_pattern)
                loss, cos, l1 = decree_loss(net(stamp(x[idx], mask, pattern)), mask, lam, ch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                cos_v, l1_v = float(cos.detach()), float(l1.detach())
                cos_sum += cos_v
                reg_sum += l1_v
                success = cos_v > c.success_similarity
                if success and l1_v < best_l1:  # the mask of this forward pass (before the update)
                    best_l1 = l1_v
                    best_mask, best_pattern = mask.detach().clone(), pattern.detach().clone()
                if math.isfinite(best_l1):
                    early_cnt = early_cnt + 1 if best_l1 >= early_best else 0
                early_best = min(early_best, best_l1)
                lam = schedule.step(success)
            epochs += 1
            cos_e, reg_e = cos_sum / len(parts), reg_sum / len(parts)
            history.append({"epoch": epoch, "similarity": cos_e, "pl1_norm": reg_e / (h * w), "lambda": lam, "lr": lr})
            if epoch % 50 == 0:
                log.info("DECREE epoch %d: similarity %.4f, PL1 %.4f, lambda %.2e", epoch, cos_e, reg_e / (h * w), lam)
            if cos_e > c.success_similarity and early_cnt > c.early_stop_patience:
                break
        seconds = time.perf_counter() - t0
        found = math.isfinite(best_l1)
        with torch.no_grad():
            sim = float(mean_pairwise_cosine(net(stamp(x, best_mask, best_pattern))))
            clean = float(mean_pairwise_cosine(net(x)))
    if not found:  # report the final state (the whole image is the trigger that surely succeeds)
        best_mask, best_pattern = full_mask().detach().clone(), _to_unit(w_pattern).detach().clone()
    l1_norm = best_l1 if found else float(h * w)
    pl1 = l1_norm / (h * w)
    if reference is not None:
        ref = tuple(float(v) for v in reference)
        threshold = calibrated_threshold(ref, c.reference_ratio)
        source = f"calibrated: {c.reference_ratio} x the smallest PL1-norm of {len(ref)} clean reference encoder(s)"
        relative: float | None = pl1 / min(ref)
    else:
        ref, relative = None, None
        threshold = c.threshold
        source = "absolute: DecreeConfig.threshold (a working value, not the paper's; see its docstring)"
    result = DecreeResult(
        pl1_norm=pl1,
        l1_norm=l1_norm,
        similarity=sim,
        clean_similarity=clean,
        found=found,
        trojaned=pl1 < threshold,
        threshold=threshold,
        threshold_source=source,
        steps=steps,
        epochs=epochs,
        seconds=seconds,
        images=n,
        mask=best_mask.cpu(),
        pattern=best_pattern.cpu(),
        reference_pl1=ref,
        relative_pl1=relative,
        history=history,
    )
    log.info(
        "DECREE: PL1 %.4f (similarity %.4f, clean %.4f) after %d steps in %.1f s: %s",
        pl1,
        sim,
        clean,
        steps,
        seconds,
        "trojaned" if result.trojaned else "clean",
    )
    return result


def reference_pl1_norms(
    encoders: Sequence[WhiteBox | EncoderNet],
    images: ImageDataset,
    config: DecreeConfig | None = None,
    *,
    seed: int = 0,
) -> tuple[float, ...]:
    """PL1-norms of clean reference encoders (same recipe as the suspect), for ``detect_backdoor(reference=...)``.

    Each is scanned with the same images, config and seed as the suspect will be.
    """
    if not encoders:
        raise ValueError("give at least one clean reference encoder")
    out = tuple(detect_backdoor(e, images, config, seed=seed).pl1_norm for e in encoders)
    log.info("DECREE reference PL1-norms: %s (median %.4f)", [round(v, 4) for v in out], statistics.median(out))
    return out
