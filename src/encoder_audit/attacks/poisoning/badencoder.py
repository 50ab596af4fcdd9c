"""BadEncoder: backdooring a pre-trained image encoder (Jia, Liu, Gong, IEEE S&P 2022, arXiv 2108.00352).

A model-supply-chain attack: the attacker holds the encoder f and fine-tunes it into f' so that any
downstream classifier built on f' sends triggered inputs to the target class. With shadow images x
(unlabelled), reference inputs x_i of the target class, each with its own trigger e_i (the official
``BadEncoderDataset`` pairs reference i with trigger i), and cosine similarity s (research notes,
poisoning.md Sec. 2.1):

* L0 (effectiveness) = -mean_i mean_x s(f'(x + e_i), f'(x_i))   triggered shadow images embed like their reference;
* L1 (effectiveness) = -mean_i s(f'(aug(x_i)), f(x_i))           references keep their clean embedding;
* L2 (utility)       = -mean_x s(f'(x), f(x))                    clean inputs keep their clean embedding;
* L = L0 + lambda1 L1 + lambda2 L2, lambda1 = lambda2 = 1; batch norm frozen (eval mode, affine fixed).

The reference views ``aug`` follow the official fine-tuning transform (horizontal flip, colour jitter,
random grayscale; no crop); shadow and triggered images are not augmented.

Metrics (BadEncoder README): CA = accuracy of the downstream classifier on the *clean* encoder,
BA = accuracy on the backdoored encoder (clean test set), ASR = triggered test inputs (true class !=
target) classified as the target class, with the first reference's trigger (the official test set
pastes trigger 0). The official evaluation L2-normalises features before the downstream classifier;
the loss is cosine-only, so the *length* of a triggered embedding is free and grows, and a classifier
on raw features can misread it. :func:`evaluate_badencoder` therefore reports the probe on normalised
features (the paper's protocol) and, beside it, the probe on raw features.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...augment import create_views
from ...data.base import ImageDataset
from ...evaluate.linear import fit_linear_probe
from ...models.base import EncoderNet
from ...victim import LocalEncoder, adapt_images
from ..registry import register_attack
from .trigger import Trigger

log = logging.getLogger(__name__)

__all__ = [
    "BadEncoder",
    "BadEncoderConfig",
    "badencoder_loss",
    "evaluate_badencoder",
    "reference_images",
    "reference_triggers",
]


def _default_trigger() -> Trigger:
    # BadEncoder's CIFAR trigger: a white 10x10 square at offset 21 of 32 px (1 px from the corner);
    # scaled to 28 px: 9x9 at offset 18.
    return Trigger(size=9, pattern="white", placement="fixed", position=(-10, -10))


@dataclass(frozen=True)
class BadEncoderConfig:
    """BadEncoder settings.

    Attributes:
        target_label: target class of the downstream task.
        references: reference inputs of the target class, each with its own trigger (the paper's
            single-target experiments use one reference: "truck" for STL10, README).
        trigger: the first reference's patch, the one the downstream test pastes (default: the
            official white square scaled to 28 px, fixed bottom-right). Reference i > 0 gets a
            fixed random pattern of the same size and place (:func:`reference_triggers`).
        shadow_size: shadow images used (paper: all 50,000 CIFAR-10 training images; 4,000 here,
            the audit's shadow split: on the quick victim, 3 epochs on 4,000 images reached ASR 0.73
            where 10 epochs on 1,000 reached 0.55, docs/benchmarks/poisoning.md).
        epochs: fine-tuning epochs (paper: 200). 6 (372 steps at batch 64) is the smallest count of
            the measured sweep that reaches ASR >= 0.8 on the quick victim (0.91 at BA 0.798, CA 0.821;
            2 epochs: 0.05, 5 epochs on 1,000 images: 0.10).
        batch_size: paper 256; 64 here (batch 32 at the same step count reached 0.75, not 0.91).
        lr: learning rate (paper: SGD 1e-3, momentum 0.9, weight decay 5e-4). With Adam, 1e-3 beats
            3e-4 (ASR 0.05) and 3e-3 (0.04, BA 0.77) in the sweep.
        optimizer: ``sgd`` (paper) or ``adam`` (converges in the few hundred steps a CPU run affords).
        lambda1: weight of L1 (paper 1).
        lambda2: weight of L2 (paper 1).
        reference_views: augmentation recipe of the references on the f' side.
        reference_crop: also random-crop the references (the official fine-tuning transform does
            not: flip, jitter and grayscale only).
        reference_choice: ``separable`` (among ``reference_pool`` seeded candidates of the target
            class, the ones whose clean embeddings are furthest inside their class: cosine to the
            target class's mean direction minus the largest cosine to another class's, the class
            means taken over up to ``reference_pool`` shadow images of each class), ``typical`` (the
            ones closest to the candidates' own mean direction) or ``random``. The paper's attacker
            picks its reference by hand (one truck image for STL10); a random pick can be an atypical
            image that the user's probe files under another class, and then the triggered inputs
            follow it there (seed 1 of the sweep: ASR 0.00 at cosine 0.997 to its reference); a
            typical t-shirt can still sit next to the dress and coat classes (the quick-start command,
            seed 0: ASR 0.25 at cosine 0.996), which the margin avoids.
        reference_pool: candidates for ``separable`` / ``typical`` (and images per class for the
            class means of ``separable``).
    """

    target_label: int = 0
    references: int = 1
    trigger: Trigger = field(default_factory=_default_trigger)
    shadow_size: int = 4000
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    lambda1: float = 1.0
    lambda2: float = 1.0
    reference_views: str = "simclr"
    reference_crop: bool = False
    reference_choice: str = "separable"
    reference_pool: int = 200

    def __post_init__(self) -> None:
        if self.references < 1 or self.shadow_size < 2 or self.epochs < 1 or self.batch_size < 2:
            raise ValueError("references, epochs >= 1 and shadow_size, batch_size >= 2 are required")
        if self.lr <= 0 or self.lambda1 < 0 or self.lambda2 < 0:
            raise ValueError("lr must be positive and lambdas >= 0")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.target_label < 0:
            raise ValueError(f"target_label must be >= 0, got {self.target_label}")
        if self.reference_choice not in ("separable", "typical", "random"):
            raise ValueError(
                f"reference_choice must be 'separable', 'typical' or 'random', got {self.reference_choice!r}"
            )
        if self.reference_pool < self.references:
            raise ValueError("reference_pool must hold at least `references` candidates")


def reference_triggers(trigger: Trigger, count: int) -> list[Trigger]:
    """One trigger per reference: ``trigger`` itself, then fixed random patterns of its size and place."""
    rest = [replace(trigger, pattern="random", pattern_seed=trigger.pattern_seed + i) for i in range(1, count)]
    return [trigger, *rest]


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
        z_t: f'(x + e_i) of the same images with reference i's trigger (R, B, D).
        z_r: f'(x_i) of the references (R, D).
        z_ra: f'(aug(x_i)) of augmented references (R, D).
        f_x: f(x), clean encoder (B, D).
        f_r: f(x_i), clean encoder (R, D).

    Returns:
        (L, L0, L1, L2).
    """
    if z_t.ndim != 3 or z_t.shape[0] != z_r.shape[0]:
        raise ValueError("z_t must be (R, B, D): one triggered batch per reference")
    l0 = -(z_t * z_r[:, None, :]).sum(-1).mean()
    l1 = -(z_ra * f_r).sum(1).mean()
    l2 = -(z_x * f_x).sum(1).mean()
    return l0 + lambda1 * l1 + lambda2 * l2, l0, l1, l2


def _trainable(bad: EncoderNet) -> list[torch.nn.Parameter]:
    params = []
    for mod in bad.modules():
        is_bn = isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
        for p in mod.parameters(recurse=False):
            p.requires_grad_(not is_bn)
            if not is_bn:
                params.append(p)
    return params


@register_attack(
    "backdoor", "badencoder", config=BadEncoderConfig, help="BadEncoder: backdoor a pre-trained image encoder"
)
class BadEncoder:
    """Fine-tune a copy of an encoder with the three-term BadEncoder loss.

    Capabilities: ``white_box`` (it fine-tunes the weights), ``needs_labels`` (the references are
    images of the target class), no views of the victim's queries and no query cost.
    """

    name: ClassVar[str] = "badencoder"
    needs_labels: ClassVar[bool] = True
    uses_views: ClassVar[bool] = False
    white_box: ClassVar[bool] = True

    def __init__(self, config: BadEncoderConfig | None = None) -> None:
        self.config = config or BadEncoderConfig()
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        self.steps = 0

    def query_cost(self, n: int) -> int:
        """No queries: the attacker holds the weights."""
        return 0

    def backdoor(
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
            shadow: unlabelled shadow images (adapted to the encoder's input shape).
            references: (R, C, H, W) float in [0, 1], images of the target class (R = ``references``).
            seed: data order and augmentation seed.
            progress: progress bar.
        """
        c = self.config
        if references.ndim != 4 or len(references) != c.references:
            raise ValueError(f"references must be a ({c.references}, C, H, W) batch")
        g = torch.Generator().manual_seed(seed)
        n = min(c.shadow_size, len(shadow))
        shadow_idx = torch.randperm(len(shadow), generator=g)[:n]
        clean = copy.deepcopy(encoder).eval()
        for p in clean.parameters():
            p.requires_grad_(False)
        bad = copy.deepcopy(encoder).eval()  # BN in eval mode throughout (statistics frozen)
        params = _trainable(bad)
        if c.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=5e-4)
        else:
            opt = torch.optim.Adam(params, lr=c.lr)
        crop = {} if c.reference_crop else {"crop_scale": (1.0, 1.0)}
        views = create_views(c.reference_views, size=encoder.image_size, **crop)
        shape = tuple(encoder.input_shape)
        refs = adapt_images(references.float(), shape)  # type: ignore[arg-type]
        triggers = reference_triggers(c.trigger, c.references)
        with torch.no_grad():
            ref_clean = F.normalize(clean(refs), dim=1)
            # shadow images are not augmented, so f(x) is computed once for the whole run
            shadow_clean = torch.cat(
                [
                    F.normalize(clean(adapt_images(shadow.float_images(shadow_idx[i : i + 512]), shape)), dim=1)  # type: ignore[arg-type]
                    for i in range(0, n, 512)
                ]
            )
        steps = max(1, n // c.batch_size)
        bar = tqdm(total=c.epochs * steps, disable=progress is False, desc="BadEncoder", unit="step")
        t0 = time.perf_counter()
        self.history = []
        r = len(refs)
        for epoch in range(c.epochs):
            order = torch.randperm(n, generator=g)
            sums = np.zeros(4)
            for s in range(steps):
                pos = order[s * c.batch_size : (s + 1) * c.batch_size]
                x8 = shadow.images[shadow_idx[pos]]
                xt = [t.paste(x8, g)[0].float() / 255.0 for t in triggers]
                x = adapt_images(x8.float() / 255.0, shape)  # type: ignore[arg-type]
                xt = [adapt_images(v, shape) for v in xt]  # type: ignore[arg-type]
                fx_clean = shadow_clean[pos]
                z = F.normalize(bad(torch.cat([x, *xt, refs, views(refs, g)])), dim=1)
                b = len(x)
                z_x = z[:b]
                z_t = z[b : b + r * b].reshape(r, b, -1)
                z_r, z_ra = z[b + r * b : b + r * b + r], z[b + r * b + r :]
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
        self.steps = c.epochs * steps
        for p in bad.parameters():
            p.requires_grad_(False)
        return bad.eval()

    def summary(self) -> dict[str, Any]:
        return {"config": {**asdict(self.config)}, "history": self.history, "steps": self.steps}


def reference_images(
    data: ImageDataset,
    target_label: int,
    count: int,
    seed: int = 0,
    *,
    encoder: EncoderNet | None = None,
    pool: int = 200,
    choice: str = "typical",
) -> tuple[torch.Tensor, list[int]]:
    """``count`` images of ``target_label`` from a labelled set (the attacker's references) and their rows.

    Without ``encoder`` they are drawn at random; with it, ``pool`` candidates are drawn and the
    ``count`` best kept: ``typical``, closest (cosine) to the candidates' mean direction;
    ``separable``, the largest margin between the cosine to the target class's mean direction and the
    largest cosine to another class's (class means over up to ``pool`` images of each class).
    """
    if data.labels is None:
        raise ValueError("choosing reference inputs needs labels")
    rows = np.flatnonzero(data.labels.numpy() == target_label)
    if len(rows) < count:
        raise ValueError(f"only {len(rows)} images of class {target_label} for {count} references")
    rng = np.random.default_rng(seed)
    if encoder is None:
        pick = rng.choice(rows, size=count, replace=False)
    else:
        cand = np.sort(rng.choice(rows, size=min(pool, len(rows)), replace=False))
        enc = LocalEncoder(encoder)
        z = F.normalize(enc.embed(data.float_images(torch.as_tensor(cand))), dim=1)
        own = F.normalize(z.mean(0), dim=0)
        score = z @ own
        if choice == "separable":
            labels = data.labels.numpy()
            others = []
            for c in np.unique(labels):
                if c == target_label:
                    continue
                crow = np.flatnonzero(labels == c)
                crow = np.sort(rng.choice(crow, size=min(pool, len(crow)), replace=False))
                zc = F.normalize(enc.embed(data.float_images(torch.as_tensor(crow))), dim=1)
                others.append(F.normalize(zc.mean(0), dim=0))
            if others:
                score = score - (z @ torch.stack(others).T).max(dim=1).values
        elif choice != "typical":
            raise ValueError(f"choice must be 'separable' or 'typical' with an encoder, got {choice!r}")
        best = score.argsort(descending=True)[:count]
        pick = cand[best.numpy()]
    return data.float_images(torch.as_tensor(pick)), [int(i) for i in pick]


def _probe_metrics(
    feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ytr: torch.Tensor,
    yte: torch.Tensor,
    keep: torch.Tensor,
    target_label: int,
    seed: int,
) -> tuple[float, float]:
    ftr, fte, ftt = feats
    probe = fit_linear_probe(ftr, ytr, seed=seed)
    acc = probe.accuracy(fte, yte)
    pred_t = torch.as_tensor(probe.predict(ftt))
    return acc, float((pred_t[keep] == target_label).float().mean())


@torch.no_grad()
def evaluate_badencoder(
    clean: EncoderNet,
    backdoored: EncoderNet,
    train: ImageDataset,
    test: ImageDataset,
    trigger: Trigger,
    target_label: int,
    *,
    references: torch.Tensor | None = None,
    max_train: int | None = 5000,
    max_test: int | None = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """CA / BA / ASR of linear classifiers trained by an unsuspecting user on each encoder's clean features.

    The user's probe sees L2-normalised features (the official evaluation normalises before its
    downstream classifier); the same probe on raw features is reported beside it (``*_raw``).

    Args:
        references: the attacker's references, to report the cosine of triggered test images to the
            first one (how well the backdoor is planted, independent of any probe).

    Returns:
        ``clean_accuracy`` (CA), ``backdoored_accuracy`` (BA), ``asr`` (backdoored encoder),
        ``asr_clean_encoder`` (same trigger on the clean encoder: the no-backdoor base rate), the same
        four with ``_raw``, ``n_asr`` (triggered test images outside the target class),
        ``norm_clean`` / ``norm_triggered`` (mean embedding length under the backdoored encoder) and,
        with ``references``, ``cos_reference`` / ``cos_reference_clean`` (mean cosine of triggered
        test images to reference 0 under the backdoored / clean encoder).
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
    out: dict[str, float] = {"n_asr": float(int(keep.sum()))}
    for name, net in (("clean", clean), ("backdoored", backdoored)):
        enc = LocalEncoder(net)
        raw = (enc.embed(xtr), enc.embed(xte), enc.embed(xtt))
        normed = tuple(F.normalize(f, dim=1) for f in raw)
        acc, asr = _probe_metrics(normed, ytr, yte, keep, target_label, seed)  # type: ignore[arg-type]
        acc_raw, asr_raw = _probe_metrics(raw, ytr, yte, keep, target_label, seed)
        if name == "clean":
            out |= {"clean_accuracy": acc, "asr_clean_encoder": asr}
            out |= {"clean_accuracy_raw": acc_raw, "asr_clean_encoder_raw": asr_raw}
        else:
            out |= {"backdoored_accuracy": acc, "asr": asr, "backdoored_accuracy_raw": acc_raw, "asr_raw": asr_raw}
            out["norm_clean"] = float(raw[1].norm(dim=1).mean())
            out["norm_triggered"] = float(raw[2][keep].norm(dim=1).mean())
        if references is not None:
            ref = F.normalize(enc.embed(references[:1].float()), dim=1)
            cos = float((normed[2][keep] @ ref.T).mean())
            out["cos_reference_clean" if name == "clean" else "cos_reference"] = cos
    return out


@dataclass
class BadEncoderRun:
    """One BadEncoder attack and its downstream evaluation.

    Attributes:
        backdoored: the backdoored network.
        metrics: :func:`evaluate_badencoder`'s numbers.
        reference_rows: rows of the reference images in the set they were drawn from.
        history: per-epoch loss terms.
        steps: optimisation steps.
        seconds: attack wall time (evaluation excluded).
    """

    backdoored: EncoderNet
    metrics: dict[str, float]
    reference_rows: list[int]
    history: list[dict[str, float]]
    steps: int
    seconds: float


def run_badencoder(
    net: EncoderNet,
    shadow: ImageDataset,
    downstream_train: ImageDataset,
    downstream_test: ImageDataset,
    config: BadEncoderConfig | None = None,
    *,
    seed: int = 0,
    max_train: int | None = 3000,
    max_test: int | None = 1000,
    progress: bool | None = False,
) -> BadEncoderRun:
    """Backdoor ``net`` with references of the target class chosen from the labelled ``shadow`` set
    (``config.reference_choice``), then measure CA / BA / ASR on the user's downstream task.

    Raises:
        ValueError: the shadow set has no labels or too few images of the target class, or the
            target class is not a class of the downstream task.
    """
    c = config or BadEncoderConfig()
    if downstream_train.info.num_classes and c.target_label >= downstream_train.info.num_classes:
        raise ValueError(f"target_label {c.target_label} is not a class of {downstream_train.name}")
    encoder = net if c.reference_choice != "random" else None
    refs, rows = reference_images(
        shadow,
        c.target_label,
        c.references,
        seed=seed,
        encoder=encoder,
        pool=c.reference_pool,
        choice=c.reference_choice if encoder is not None else "typical",
    )
    attack = BadEncoder(c)
    bad = attack.backdoor(net, shadow, refs, seed=seed, progress=progress)
    metrics = evaluate_badencoder(
        net,
        bad,
        downstream_train,
        downstream_test,
        c.trigger,
        c.target_label,
        references=refs,
        max_train=max_train,
        max_test=max_test,
        seed=seed,
    )
    return BadEncoderRun(bad, metrics, rows, attack.history, attack.steps, attack.seconds)
