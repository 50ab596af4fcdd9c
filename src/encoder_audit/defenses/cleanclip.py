"""CleanCLIP: fine-tune a (possibly backdoored) CLIP model on clean pairs with multimodal + unimodal terms.

Bansal, Singhi et al., "CleanCLIP: Mitigating Data Poisoning Attacks in Multimodal Contrastive
Learning" (ICCV 2023, arXiv 2303.03323). The loss (behaviour of CleanCLIP's ``get_loss`` with
``--inmodal``; research notes, poisoning.md Sec. 3.1) is

    L = lambda_clip * 1/2 [CE(s I T^T) + CE(s T I^T)] + lambda_in * 1/2 [CE(s I I~^T) + CE(s T T~^T)]

with I~, T~ the embeddings of an augmented image and an augmented caption, s = exp(logit_scale) and
lambda_clip = lambda_in = 1. Self-supervised re-alignment of each modality on its own breaks the
spurious trigger <-> caption co-occurrence. CleanCLIP augments images with AutoAugment and captions with
EDA; here images get the SimCLR recipe of :mod:`encoder_audit.augment` (crop, jitter, grayscale; a
stand-in for AutoAugment at 28 px) and captions a small EDA (synonym replacement from the caption
synonym bank, random deletion, random swap), four variants per caption drawn once.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..augment import create_views
from ..data.captions import SYNONYMS, PairedDataset
from ..models.clip import CLIPModel
from ..train.clip import CLIPObjective, CLIPTrainConfig, clip_loss
from ..train.loop import TrainConfig, fit
from ..train.objective import register_objective

log = logging.getLogger(__name__)

__all__ = ["CleanCLIPConfig", "CleanCLIPObjective", "cleanclip_finetune", "cleanclip_loss", "eda_variants"]


@dataclass(frozen=True)
class CleanCLIPConfig:
    """CleanCLIP settings.

    Attributes:
        lambda_clip: weight of the multimodal CLIP term (paper 1).
        lambda_inmodal: weight of the unimodal self-supervised terms (paper 1).
        image_views: augmentation recipe of I~ (CleanCLIP: AutoAugment; here ``simclr``).
        text_variants: EDA variants drawn per caption.
        eda_p: per-word probability of deletion / synonym replacement in EDA.
    """

    lambda_clip: float = 1.0
    lambda_inmodal: float = 1.0
    image_views: str = "simclr"
    text_variants: int = 4
    eda_p: float = 0.1

    def __post_init__(self) -> None:
        if self.lambda_clip < 0 or self.lambda_inmodal < 0 or self.lambda_clip + self.lambda_inmodal == 0:
            raise ValueError("lambdas must be >= 0 and not both 0")
        if self.text_variants < 1 or not 0 <= self.eda_p < 1:
            raise ValueError("text_variants must be >= 1 and eda_p in [0, 1)")


def _synonym_table() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for classes in SYNONYMS.values():
        for words in classes.values():
            for w in words:
                table.setdefault(w, []).extend(x for x in words if x != w)
    return table


def eda_variants(caption: str, n: int, rng: np.random.Generator, p: float = 0.1) -> list[str]:
    """``n`` EDA-style variants of a caption (Wei & Zou 2019): synonym swap, random deletion, random swap."""
    table = _synonym_table()
    out = []
    for _ in range(n):
        text = caption
        for word in sorted(table, key=len, reverse=True):
            if word in text and rng.random() < max(p, 0.5):
                text = text.replace(word, table[word][int(rng.integers(len(table[word])))], 1)
                break
        words = text.split()
        kept = [w for w in words if rng.random() >= p] or words
        if len(kept) > 2 and rng.random() < 0.5:
            i, j = rng.choice(len(kept), size=2, replace=False)
            kept[i], kept[j] = kept[j], kept[i]
        out.append(" ".join(kept))
    return out


def cleanclip_loss(
    i: torch.Tensor,
    t: torch.Tensor,
    i_aug: torch.Tensor,
    t_aug: torch.Tensor,
    scale: torch.Tensor | float,
    lambda_clip: float = 1.0,
    lambda_inmodal: float = 1.0,
) -> torch.Tensor:
    """``lambda_clip * CLIP(I, T) + lambda_inmodal * (CE(s I I~^T) + CE(s T T~^T)) / 2`` (normalised inputs)."""
    i, t, i_aug, t_aug = (F.normalize(z, dim=-1) for z in (i, t, i_aug, t_aug))
    target = torch.arange(i.shape[0], device=i.device)
    inmodal = 0.5 * (F.cross_entropy(scale * i @ i_aug.T, target) + F.cross_entropy(scale * t @ t_aug.T, target))
    return lambda_clip * clip_loss(i, t, scale) + lambda_inmodal * inmodal


class CleanCLIPObjective(CLIPObjective):
    """CLIP loss plus CleanCLIP's in-modal terms; ``aug_tokens`` is (N, V, L) augmented captions."""

    def __init__(
        self,
        model: CLIPModel,
        tokens: torch.Tensor,
        aug_tokens: torch.Tensor,
        config: CleanCLIPConfig | None = None,
        clip_config: CLIPTrainConfig | None = None,
    ) -> None:
        super().__init__(model, tokens, clip_config)
        self.clean_config = config or CleanCLIPConfig()
        self.register_buffer("aug_tokens", aug_tokens.long(), persistent=False)
        self.strong_views = create_views(self.clean_config.image_views, size=model.visual.image_size)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        if labels is None:
            raise ValueError("the cleanclip objective needs row ids as labels")
        c = self.clean_config
        b = images.shape[0]
        both = torch.cat([self.views(images, generator), self.strong_views(images, generator)])
        z_img = self.model.encode_image(both)
        i, i_aug = z_img[:b], z_img[b:]
        pick = torch.randint(0, self.aug_tokens.shape[1], (b,), generator=generator).to(labels.device)
        tok = torch.cat([self.tokens[labels], self.aug_tokens[labels, pick]])
        z_txt = self.model.encode_text(tok)
        t, t_aug = z_txt[:b], z_txt[b:]
        return cleanclip_loss(i, t, i_aug, t_aug, self.model.scale(), c.lambda_clip, c.lambda_inmodal)


def cleanclip_finetune(
    model: CLIPModel,
    clean: PairedDataset,
    *,
    config: CleanCLIPConfig | None = None,
    train: TrainConfig | None = None,
    progress: bool | None = None,
) -> CLIPModel:
    """Return a CleanCLIP-fine-tuned copy of ``model`` (the input model is not modified).

    Args:
        model: the (possibly poisoned) CLIP model.
        clean: the defender's clean pairs (CleanCLIP: 100K clean CC3M pairs).
        config: loss weights and augmentations.
        train: optimisation (CleanCLIP: 10 epochs, batch 64, lr 1e-5 on a pre-trained RN50; a model
            trained from scratch at CPU scale needs a larger lr, e.g. 5e-4).
        progress: progress bar.
    """
    c = config or CleanCLIPConfig()
    train = train or TrainConfig(epochs=3, batch_size=128, lr=5e-4, checkpoint_every=0)
    tuned = copy.deepcopy(model).train()
    ctx = tuned.config.context_length
    rng = np.random.default_rng(train.seed)
    variants = [eda_variants(cap, c.text_variants, rng, c.eda_p) for cap in clean.captions]
    aug = torch.stack([tuned.tokenizer.encode(v, ctx) for v in variants])
    tokens = tuned.tokenizer.encode(clean.captions, ctx)
    objective = CleanCLIPObjective(tuned, tokens, aug, c)
    fit(objective, clean.as_training_dataset(), train, progress=progress)
    return tuned.eval()


@register_objective("cleanclip", config=CleanCLIPConfig, help="CleanCLIP fine-tuning: CLIP + in-modal terms")
def _make_cleanclip(
    encoder: Any, config: CleanCLIPConfig | None = None, *, model: CLIPModel, captions: list[str], seed: int = 0
) -> CleanCLIPObjective:
    """CleanCLIP fine-tuning: CLIP + in-modal terms (needs ``model`` and ``captions``)."""
    c = config or CleanCLIPConfig()
    ctx = model.config.context_length
    rng = np.random.default_rng(seed)
    aug = torch.stack([model.tokenizer.encode(eda_variants(x, c.text_variants, rng, c.eda_p), ctx) for x in captions])
    return CleanCLIPObjective(model, model.tokenizer.encode(captions, ctx), aug, c)


def describe(config: CleanCLIPConfig) -> dict[str, Any]:
    return asdict(config)
