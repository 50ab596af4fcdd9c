"""CLIP-style image-text training: the symmetric InfoNCE objective with a learnable temperature.

Radford et al. (CLIP, arXiv 2103.00020), Fig. 3 pseudocode: ``logits = exp(t) * I_e @ T_e.T``;
``loss = (CE(logits, arange) + CE(logits.T, arange)) / 2``. Under DDP every rank gathers the other
ranks' embeddings with gradient (:func:`~encoder_audit.train.distributed.gather_with_grad`) and uses
its own rows as anchors, so the DDP-averaged gradient equals the single-process gradient.

The training loop passes ``(images, labels, generator)``. To carry captions without touching the loop
the objective holds a **caption table** (token ids, one row per training pair) and the dataset handed to
:func:`~encoder_audit.train.fit` carries the *row numbers* as labels
(:meth:`~encoder_audit.data.captions.PairedDataset.as_training_dataset`); :func:`train_clip` does both.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..augment.views import ViewConfig, ViewGenerator
from ..data.captions import ZEROSHOT_TEMPLATES, PairedDataset, WordTokenizer, class_synonyms
from ..models.base import EncoderNet
from ..models.clip import CLIPConfig, CLIPModel, build_clip, save_clip
from ..models.text import TextConfig, TextEncoder
from ..runs import RunDir
from .distributed import gather_with_grad, rank, world_size
from .loop import TrainConfig, TrainResult, fit
from .objective import Objective, register_objective

log = logging.getLogger(__name__)

__all__ = ["CLIPObjective", "CLIPTrainConfig", "build_tokenizer", "clip_loss", "train_clip"]


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float, *, gather: bool = True
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of N pairs: ``(CE(s I Tᵀ, I) + CE(s T Iᵀ, I)) / 2``.

    Args:
        image_emb: (N, D) image embeddings (normalised here).
        text_emb: (N, D) text embeddings of the matching captions.
        logit_scale: s = exp(log(1/tau)), a scalar (tensor to learn it).
        gather: under DDP, use every rank's pairs as negatives.

    Returns:
        Scalar loss (mean over this rank's anchors).
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"image and text embeddings differ in shape: {tuple(image_emb.shape)} {tuple(text_emb.shape)}")
    i, t = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    if gather and world_size() > 1:
        all_i, all_t, r = gather_with_grad(i), gather_with_grad(t), rank()
    else:
        all_i, all_t, r = i, t, 0
    target = torch.arange(i.shape[0], device=i.device) + r * i.shape[0]
    return 0.5 * (
        F.cross_entropy(logit_scale * i @ all_t.T, target) + F.cross_entropy(logit_scale * t @ all_i.T, target)
    )


@dataclass(frozen=True)
class CLIPTrainConfig:
    """CLIP objective hyperparameters (model shape + augmentation).

    Attributes:
        image_width: base width of the image tower (0 = the architecture's default).
        embed_dim: joint embedding dimension.
        text_width: text tower width.
        text_layers: text Transformer layers.
        text_heads: attention heads.
        context_length: tokens per caption.
        init_temperature: CLIP's initial tau, 0.07.
        learn_temperature: learn log(1/tau) (CLIP) or keep it fixed.
        crop_scale: area range of the random resized crop; CLIP uses "only ... a random square crop from
            resized images" as augmentation, so the default crop is mild.
        flip_p: horizontal flip probability (0: CLIP does not flip).
    """

    image_width: int = 0
    embed_dim: int = 64
    text_width: int = 64
    text_layers: int = 1
    text_heads: int = 4
    context_length: int = 16
    init_temperature: float = 0.07
    learn_temperature: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)
    flip_p: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.init_temperature <= 1:
            raise ValueError(f"init_temperature must be in (0, 1], got {self.init_temperature}")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 <= self.flip_p <= 1:
            raise ValueError(f"flip_p must be in [0, 1], got {self.flip_p}")
        if self.embed_dim <= 0 or self.context_length < 2:
            raise ValueError("embed_dim must be positive and context_length >= 2")

    def model_config(self, image_encoder: str) -> CLIPConfig:
        return CLIPConfig(
            image_encoder=image_encoder,
            image_width=self.image_width,
            embed_dim=self.embed_dim,
            text_width=self.text_width,
            text_layers=self.text_layers,
            text_heads=self.text_heads,
            context_length=self.context_length,
            init_temperature=self.init_temperature,
        )


class CLIPObjective(Objective):
    """Symmetric InfoNCE between augmented images and their captions (looked up by row id).

    Args:
        model: the dual encoder to train (``.encoder`` is its image tower, saved by the loop).
        tokens: (N, L) caption table; row i is the caption of training row i.
        config: objective hyperparameters.
    """

    def __init__(self, model: CLIPModel, tokens: torch.Tensor, config: CLIPTrainConfig | None = None) -> None:
        super().__init__()
        self.config = config or CLIPTrainConfig()
        self.model = model
        self.encoder = model.visual
        self.tokens: torch.Tensor
        self.register_buffer("tokens", tokens.long(), persistent=False)
        self.views = ViewGenerator(
            ViewConfig(
                crop_scale=self.config.crop_scale,
                crop_ratio=(1.0, 1.0),
                flip_p=self.config.flip_p,
                jitter_p=0.0,
                gray_p=0.0,
            ),
            size=model.visual.image_size,
        )
        model.logit_scale.requires_grad_(self.config.learn_temperature)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        if labels is None:
            raise ValueError("the clip objective needs row ids as labels (use PairedDataset.as_training_dataset())")
        if int(labels.max()) >= self.tokens.shape[0]:
            raise ValueError(f"row id {int(labels.max())} outside the caption table of {self.tokens.shape[0]} rows")
        x = self.views(images, generator)
        img = self.model.encode_image(x)
        txt = self.model.encode_text(self.tokens[labels])
        return clip_loss(img, txt, self.model.scale(), gather=True)

    def after_step(self) -> None:
        self.model.clamp_logit_scale()


@register_objective("clip", config=CLIPTrainConfig, help="CLIP: symmetric InfoNCE between images and captions")
def _make_clip(
    encoder: EncoderNet,
    config: CLIPTrainConfig | None = None,
    *,
    tokenizer: WordTokenizer | None = None,
    tokens: torch.Tensor | None = None,
    captions: list[str] | None = None,
) -> CLIPObjective:
    """CLIP: symmetric InfoNCE between images and captions (needs ``tokenizer`` and ``tokens`` or ``captions``)."""
    c = config or CLIPTrainConfig()
    if captions is not None:
        tokenizer = tokenizer or WordTokenizer.build(captions)
        tokens = tokenizer.encode(captions, c.context_length)
    if tokenizer is None or tokens is None:
        raise ValueError("the clip objective needs captions (or a tokenizer and a caption token table)")
    text = TextEncoder(
        TextConfig(len(tokenizer), c.context_length, c.text_width, c.text_layers, c.text_heads),
    )
    model = CLIPModel(encoder, text, tokenizer, c.model_config(encoder.arch))
    return CLIPObjective(model, tokens, c)


def build_tokenizer(paired: PairedDataset, extra_texts: list[str] | None = None) -> WordTokenizer:
    """Vocabulary over the training captions plus the zero-shot prompts of the dataset's class names."""
    texts = list(paired.captions) + list(extra_texts or [])
    info = paired.images.info
    if info.class_names:
        texts += [t.format(s[0]) for s in class_synonyms(info) for t in ZEROSHOT_TEMPLATES]
    return WordTokenizer.build(texts)


def train_clip(
    paired: PairedDataset,
    *,
    image_encoder: str = "cnn-small",
    config: CLIPTrainConfig | None = None,
    train: TrainConfig | None = None,
    tokenizer: WordTokenizer | None = None,
    model: CLIPModel | None = None,
    run: RunDir | None = None,
    progress: bool | None = None,
    extra_config: dict[str, Any] | None = None,
) -> tuple[CLIPModel, TrainResult]:
    """Train (or continue training) a CLIP-style model on image-caption pairs with :func:`fit`.

    Args:
        paired: images and one caption per image.
        image_encoder: architecture of a new image tower.
        config: objective hyperparameters.
        train: optimisation settings.
        tokenizer: vocabulary (default: built from the captions and zero-shot prompts).
        model: continue from this model instead of a fresh one (its tokenizer is used).
        run: run directory: metrics, state, ``encoder.safetensors`` (image tower) and ``clip.safetensors``.
        progress: progress bar.
        extra_config: recorded in the sidecars.

    Returns:
        The trained model (eval mode) and the loop's :class:`TrainResult`.
    """
    c = config or CLIPTrainConfig()
    train = train or TrainConfig(epochs=5, batch_size=256, lr=2e-3)
    info = paired.images.info
    if model is None:
        tokenizer = tokenizer or build_tokenizer(paired)
        torch.manual_seed(train.seed)
        model = build_clip(
            tokenizer,
            in_channels=info.channels,
            image_size=info.image_size,
            config=c.model_config(image_encoder),
            mean=info.mean,
            std=info.std,
        )
    unknown = model.tokenizer.unknown_words(paired.captions)
    if unknown:
        log.info("%d caption words are not in the vocabulary (mapped to <unk>), e.g. %s", len(unknown), unknown[:5])
    tokens = model.tokenizer.encode(paired.captions, model.config.context_length)
    objective = CLIPObjective(model, tokens, c)
    extra = {"method": "clip", "method_config": asdict(c), "num_pairs": len(paired), **(extra_config or {})}
    result = fit(objective, paired.as_training_dataset(), train, run=run, progress=progress, extra_config=extra)
    model.eval()
    if run is not None and run.write:
        save_clip(run.file("clip.safetensors"), model, training=extra)
    return model, result
