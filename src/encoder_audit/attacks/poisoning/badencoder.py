"""BadEncoder: backdooring a pre-trained image encoder (Jia, Liu, Gong, IEEE S&P 2022, arXiv 2108.00352).

A model-supply-chain attack: the attacker holds the encoder f and fine-tunes it into f' so that any
downstream classifier built on f' sends triggered inputs to the target class. With shadow images x
(unlabelled), trigger e, reference inputs x_j of the target class and cosine similarity s
(research notes, poisoning.md Sec. 2.1):

* L0 (effectiveness) = -mean_{x, j} s(f'(x + e), f'(x_j))   triggered shadow images embed like references;
* L1 (effectiveness) = -mean_j s(f'(aug(x_j)), f(x_j))      references keep their clean embedding;
* L2 (utility)       = -mean_x s(f'(x), f(x))               clean inputs keep their clean embedding;
* L = L0 + lambda1 L1 + lambda2 L2, lambda1 = lambda2 = 1; batch norm frozen (eval mode, affine fixed).

Metrics (BadEncoder README): CA = accuracy of the downstream classifier on the *clean* encoder,
BA = accuracy on the backdoored encoder (clean test set), ASR = triggered test inputs (true class !=
target) classified as the target class. Our downstream classifier is the toolkit's linear probe trained
by an "unsuspecting user" on clean labelled features.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...augment import create_views
from ...data.base import ImageDataset
from ...evaluate.linear import fit_linear_probe
from ...models.base import EncoderNet
from ...victim import LocalEncoder
from .base import register_poisoning
from .trigger import Trigger

log = logging.getLogger(__name__)

__all__ = ["BadEncoder", "BadEncoderConfig", "badencoder_loss", "evaluate_badencoder", "reference_images"]


def _default_trigger() -> Trigger:
    # BadEncoder's CIFAR trigger: a white 10x10 square at offset 21 of 32 px (1 px from the corner);
    # scaled to 28 px: 9x9 at offset 18.
    return Trigger(size=9, pattern="white", placement="fixed", position=(-10, -10))


@dataclass(frozen=True)
class BadEncoderConfig:
    """BadEncoder settings.

    Attributes:
        target_label: target class of the downstream task.
        references: reference inputs of the target class (the paper's CIFAR experiments use one per task).
        trigger: the patch (default: scaled BadEncoder white square, fixed bottom-right).
        shadow_size: shadow images used (paper: all 50 000 CIFAR-10 training images; 2000 at CPU scale).
        epochs: fine-tuning epochs (paper: 200; 8 at CPU scale, ~250 steps, measured in
            docs/benchmarks/poisoning.md).
        batch_size: paper 256 (64 here, for more steps per CPU second).
        lr: paper: SGD lr 1e-3, momentum 0.9, weight decay 5e-4.
        optimizer: ``sgd`` (paper) or ``adam`` (faster convergence in few epochs).
        lambda1: weight of L1 (paper 1).
        lambda2: weight of L2 (paper 1).
        reference_views: augmentation of references on the f' side (``encoder_audit.augment`` recipe).
    """

    target_label: int = 0
    references: int = 3
    trigger: Trigger = field(default_factory=_default_trigger)
    shadow_size: int = 2000
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    lambda1: float = 1.0
    lambda2: float = 1.0
    reference_views: str = "simclr"

    def __post_init__(self) -> None:
        if self.references < 1 or self.shadow_size < 2 or self.epochs < 1 or self.batch_size < 2:
            raise ValueError("references, epochs >= 1 and shadow_size, batch_size >= 2 are required")
        if self.lr <= 0 or self.lambda1 < 0 or self.lambda2 < 0:
            raise ValueError("lr must be positive and lambdas >= 0")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")


def badencoder_loss(
    z_x: torch.Tensor,
    z_t: torch.Tensor,
    z_r: torch.Tensor,
    z_ra: torch.Tensor,
    f_x: torch.Tensor,
    f_r: torch.Tensor,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """BadEncoder's L = L0 + lambda1 L1 + lambda2 L2 on L2-normalised embeddings.

    Args:
        z_x: f'(x) of shadow images (B, D).
        z_t: f'(x + e) of the same images with the trigger (B, D).
        z_r: f'(x_j) of the references (R, D).
        z_ra: f'(aug(x_j)) of augmented references (R, D).
        f_x: f(x), clean encoder (B, D).
        f_r: f(x_j), clean encoder (R, D).

    Returns:
        (L, L0, L1, L2).
    """
    l0 = -(z_t @ z_r.T).mean()
    l1 = -(z_ra * f_r).sum(1).mean()
    l2 = -(z_x * f_x).sum(1).mean()
    return l0 + lambda1 * l1 + lambda2 * l2, l0, l1, l2


class BadEncoder:
    """Fine-tune a copy of an encoder with the three-term BadEncoder loss."""

    name = "badencoder"

    def __init__(self, config: BadEncoderConfig | None = None) -> None:
        self.config = config or BadEncoderConfig()
        self.history: list[dict[str, float]] = []

    def attack(
        self,
        encoder: EncoderNet,
        shadow: ImageDataset,
        references: torch.Tensor,
        *,
        seed: int = 0,
        progress: bool | None = None,
    ) -> EncoderNet:
        """Return a backdoored copy of ``encoder`` (the input is left untouched).

        Args:
            encoder: the clean pre-trained network f (white-box: the attacker owns it).
            shadow: unlabelled shadow images.
            references: (R, C, H, W) float in [0, 1], images of the target class.
            seed: data order and augmentation seed.
            progress: progress bar.
        """
        c = self.config
        if references.ndim != 4 or len(references) == 0:
            raise ValueError("references must be a non-empty (R, C, H, W) batch")
        g = torch.Generator().manual_seed(seed)
        n = min(c.shadow_size, len(shadow))
        shadow_idx = torch.randperm(len(shadow), generator=g)[:n]
        clean = copy.deepcopy(encoder).eval()
        for p in clean.parameters():
            p.requires_grad_(False)
        bad = copy.deepcopy(encoder).eval()  # BN in eval mode throughout (statistics frozen)
        params = []
        for mod in bad.modules():
            is_bn = isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
            for p in mod.parameters(recurse=False):
                p.requires_grad_(not is_bn)
                if not is_bn:
                    params.append(p)
        if c.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=5e-4)
        else:
            opt = torch.optim.Adam(params, lr=c.lr)
        views = create_views(c.reference_views, size=encoder.image_size)
        refs = references.float()
        with torch.no_grad():
            ref_clean = F.normalize(clean(refs), dim=1)
        steps = max(1, n // c.batch_size)
        bar = tqdm(total=c.epochs * steps, disable=progress is False, desc="BadEncoder", unit="step")
        t0 = time.perf_counter()
        self.history = []
        for epoch in range(c.epochs):
            perm = shadow_idx[torch.randperm(n, generator=g)]
            sums = np.zeros(4)
            for s in range(steps):
                rows = perm[s * c.batch_size : (s + 1) * c.batch_size]
                x = shadow.images[rows]
                xt, _ = c.trigger.paste(x, g)
                x, xt = x.float() / 255.0, xt.float() / 255.0
                with torch.no_grad():
                    fx_clean = F.normalize(clean(x), dim=1)
                z = F.normalize(bad(torch.cat([x, xt, refs, views(refs, g)])), dim=1)
                b, r = len(x), len(refs)
                z_x, z_t, z_r, z_ra = z[:b], z[b : 2 * b], z[2 * b : 2 * b + r], z[2 * b + r :]
                loss, l0, l1, l2 = badencoder_loss(z_x, z_t, z_r, z_ra, fx_clean, ref_clean, c.lambda1, c.lambda2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums += [float(v.detach()) for v in (loss, l0, l1, l2)]
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            rec = dict(zip(("loss", "l0", "l1", "l2"), (sums / steps).round(4).tolist()))
            self.history.append({"epoch": epoch + 1, **rec})
            log.info("BadEncoder epoch %d: %s", epoch + 1, rec)
        bar.close()
        self.seconds = time.perf_counter() - t0
        for p in bad.parameters():
            p.requires_grad_(False)
        return bad.eval()

    def summary(self) -> dict[str, Any]:
        return {"config": {**asdict(self.config)}, "history": self.history}


def reference_images(
    data: ImageDataset, target_label: int, count: int, seed: int = 0
) -> tuple[torch.Tensor, list[int]]:
    """``count`` images of ``target_label`` from a labelled set (the attacker's references) and their rows."""
    if data.labels is None:
        raise ValueError("choosing reference inputs needs labels")
    rows = np.flatnonzero(data.labels.numpy() == target_label)
    if len(rows) < count:
        raise ValueError(f"only {len(rows)} images of class {target_label} for {count} references")
    pick = np.random.default_rng(seed).choice(rows, size=count, replace=False)
    return data.float_images(torch.as_tensor(pick)), [int(i) for i in pick]


@torch.no_grad()
def evaluate_badencoder(
    clean: EncoderNet,
    backdoored: EncoderNet,
    train: ImageDataset,
    test: ImageDataset,
    trigger: Trigger,
    target_label: int,
    *,
    max_train: int | None = 5000,
    max_test: int | None = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """CA / BA / ASR of linear classifiers trained by an unsuspecting user on each encoder's clean features.

    Returns:
        ``clean_accuracy`` (CA), ``backdoored_accuracy`` (BA), ``asr`` (backdoored encoder),
        ``asr_clean_encoder`` (same trigger on the clean encoder: the no-backdoor baseline).
    """
    if train.labels is None or test.labels is None:
        raise ValueError("downstream evaluation needs labelled train and test sets")
    g = torch.Generator().manual_seed(seed)
    tr = torch.randperm(len(train), generator=g)[: max_train or len(train)]
    te = torch.randperm(len(test), generator=g)[: max_test or len(test)]
    xtr, ytr = train.float_images(tr), train.labels[tr]
    xte_u8, yte = test.images[te], test.labels[te]
    xte = xte_u8.float() / 255.0
    xtt = trigger.paste(xte_u8, g)[0].float() / 255.0
    keep = yte != target_label
    out: dict[str, float] = {}
    for name, net in (("clean", clean), ("backdoored", backdoored)):
        enc = LocalEncoder(net)
        probe = fit_linear_probe(enc.embed(xtr), ytr, seed=seed)
        acc = probe.accuracy(enc.embed(xte), yte)
        pred_t = torch.as_tensor(probe.predict(enc.embed(xtt)))
        asr = float((pred_t[keep] == target_label).float().mean())
        if name == "clean":
            out["clean_accuracy"], out["asr_clean_encoder"] = acc, asr
        else:
            out["backdoored_accuracy"], out["asr"] = acc, asr
    return out


@register_poisoning("badencoder", config=BadEncoderConfig, help="BadEncoder: backdoor a pre-trained image encoder")
def _make_badencoder(config: BadEncoderConfig | None = None) -> BadEncoder:
    """BadEncoder: backdoor a pre-trained image encoder."""
    return BadEncoder(config)
