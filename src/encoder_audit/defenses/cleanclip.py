"""CleanCLIP: fine-tune a (possibly backdoored) CLIP model on clean pairs with multimodal + unimodal terms.

Bansal, Singhi et al., "CleanCLIP: Mitigating Data Poisoning Attacks in Multimodal Contrastive
Learning" (ICCV 2023, arXiv 2303.03323). The loss (behaviour of CleanCLIP's ``get_loss`` with
``--inmodal``; research notes, poisoning.md Sec. 3.1) is

    L = lambda_clip * 1/2 [CE(s I T^T) + CE(s T I^T)] + lambda_in * 1/2 [CE(s I I~^T) + CE(s T T~^T)]

with I~, T~ the embeddings of an augmented image and an augmented caption, s = exp(logit_scale) and
lambda_clip = lambda_in = 1. Self-supervised re-alignment of each modality on its own breaks the
spurious trigger <-> caption co-occurrence. CleanCLIP augments images with AutoAugment and captions with
EDA; here images get the SimCLR recipe of :mod:`encoder_audit.augment` (crop, jitter, grayscale; a
stand-in for AutoAugment at 28 px) and captions a small EDA (Wei & Zou 2019: whole-word synonym
replacement from the fine-tuning set's own class-synonym table, random deletion, random swap, each
at rate ``eda_p``), four variants per caption drawn once.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..augment import create_views
from ..data.captions import PairedDataset, replace_phrases, synonym_table
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
        eda_p: EDA's rate (Wei & Zou's alpha, 0.1 in their recommendation): each word is deleted with
            probability ``eda_p``, and ``max(1, round(eda_p * words))`` synonym replacements and word
            swaps are made (none at 0: the captions are left as they are).
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


def eda_variants(
    caption: str,
    n: int,
    rng: np.random.Generator,
    p: float = 0.1,
    table: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """``n`` EDA variants of a caption (Wei & Zou 2019): synonym replacement, random deletion, random swap.

    Args:
        caption: the text.
        n: variants to draw.
        rng: randomness.
        p: EDA's rate alpha (0: every variant is the caption itself).
        table: ``{phrase: synonyms}`` of the caption's dataset (:func:`~encoder_audit.data.captions.synonym_table`);
            phrases are replaced as whole words only. None: no synonym replacement.
    """
    out = []
    for _ in range(n):
        words = caption.split()
        edits = max(1, round(p * len(words))) if p > 0 else 0
        text = replace_phrases(caption, table or {}, edits, rng)
        words = text.split()
        kept = [w for w in words if rng.random() >= p] or words
        for _ in range(edits if len(kept) > 1 else 0):
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
        aug = cast(torch.Tensor, self.aug_tokens)  # registered buffers
        tokens = cast(torch.Tensor, self.tokens)
        pick = torch.randint(0, int(aug.shape[1]), (b,), generator=generator).to(labels.device)
        tok = torch.cat([tokens[labels], aug[labels, pick]])
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
    on_epoch_end: Callable[[int, CLIPModel], None] | None = None,
) -> CLIPModel:
    """Return a CleanCLIP-fine-tuned copy of ``model`` (the input model is not modified).

    Args:
        model: the (possibly poisoned) CLIP model.
        clean: the defender's clean pairs (CleanCLIP: 100K clean CC3M pairs).
        config: loss weights and augmentations.
        train: optimisation (CleanCLIP: 10 epochs, batch 64, lr 1e-5 on a pre-trained RN50; a model
            trained from scratch at CPU scale needs a larger lr, e.g. 5e-4).
        progress: progress bar.
        on_epoch_end: called with (epoch, the model being tuned) after every epoch, e.g. to measure
            a steps sweep in one run (use a ``constant`` schedule so an epoch's model does not depend
            on the run's length).
    """
    c = config or CleanCLIPConfig()
    train = train or TrainConfig(epochs=3, batch_size=128, lr=5e-4, checkpoint_every=0)
    tuned = copy.deepcopy(model).train()
    aug, tokens = _caption_tokens(tuned, clean.captions, c, np.random.default_rng(train.seed), _table(clean))
    objective = CleanCLIPObjective(tuned, tokens, aug, c)
    hook = None
    if on_epoch_end is not None:
        cb = on_epoch_end

        def hook(epoch: int, _objective: Any) -> None:
            was = tuned.training
            tuned.eval()
            cb(epoch, tuned)
            tuned.train(was)

    fit(objective, clean.as_training_dataset(), train, progress=progress, on_epoch_end=hook)
    return tuned.eval()


def _table(clean: PairedDataset) -> dict[str, tuple[str, ...]]:
    info = clean.images.info
    return synonym_table(info) if info.class_names else {}


def _caption_tokens(
    model: CLIPModel,
    captions: list[str],
    c: CleanCLIPConfig,
    rng: np.random.Generator,
    table: dict[str, tuple[str, ...]],
) -> tuple[torch.Tensor, torch.Tensor]:
    ctx = model.config.context_length
    variants = [eda_variants(cap, c.text_variants, rng, c.eda_p, table) for cap in captions]
    aug = torch.stack([model.tokenizer.encode(v, ctx) for v in variants])
    return aug, model.tokenizer.encode(captions, ctx)


@register_objective("cleanclip", config=CleanCLIPConfig, help="CleanCLIP fine-tuning: CLIP + in-modal terms")
def _make_cleanclip(
    encoder: Any,
    config: CleanCLIPConfig | None = None,
    *,
    model: CLIPModel,
    captions: list[str],
    seed: int = 0,
    synonyms: dict[str, tuple[str, ...]] | None = None,
) -> CleanCLIPObjective:
    """CleanCLIP fine-tuning: CLIP + in-modal terms (needs ``model``, ``captions`` and the dataset's ``synonyms``)."""
    c = config or CleanCLIPConfig()
    aug, tokens = _caption_tokens(model, captions, c, np.random.default_rng(seed), synonyms or {})
    return CleanCLIPObjective(model, tokens, aug, c)


def describe(config: CleanCLIPConfig) -> dict[str, Any]:
    return asdict(config)
