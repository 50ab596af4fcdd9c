"""A CLIP-style dual encoder at CPU scale: image tower from the encoder registry, a small text tower.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (CLIP, ICML
2021, arXiv 2103.00020), Sec. 2.4-2.5: each tower is followed by a linear projection (no bias) into a
shared embedding space; embeddings are L2-normalised; "the temperature parameter ... is directly
optimized during training as a log-parameterized multiplicative scalar" initialised to 1/0.07, and
"clipped to prevent scaling the logits by more than 100". We keep that: ``logit_scale`` holds
log(1/tau), :meth:`CLIPModel.clamp_logit_scale` clips it to [0, log 100] after every step.

Checkpoints are ``NAME.safetensors`` plus a ``NAME.json`` sidecar (shape config, tokenizer vocabulary,
normalization, training notes, sha256 of the weights), like :mod:`encoder_audit.models.checkpoint`.

>>> from encoder_audit.data.captions import WordTokenizer
>>> tok = WordTokenizer.build(["a photo of a bag."])
>>> m = build_clip(tok, in_channels=1, image_size=28)
>>> m.encode_image(torch.rand(2, 1, 28, 28)).shape, m.encode_text(["a bag"]).shape
(torch.Size([2, 64]), torch.Size([1, 64]))
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..data.captions import WordTokenizer
from ..errors import CheckpointError
from ..io import atomic_write, atomic_write_json
from .base import EncoderNet, create_encoder
from .checkpoint import _refuse_pickle, sha256_file
from .text import TextConfig, TextEncoder

__all__ = ["CLIPConfig", "CLIPImageEncoder", "CLIPModel", "build_clip", "load_clip", "save_clip"]

MAX_LOGIT_SCALE = math.log(100.0)


@dataclass(frozen=True)
class CLIPConfig:
    """Shape of the dual encoder.

    Attributes:
        image_encoder: architecture name of the image tower (``encoder_audit.models.ENCODERS``).
        image_width: base width passed to the image architecture (0 = its default; ``cnn-small`` takes
            ``width``, 32 by default; 16 quarters the cost for CPU poison-count sweeps).
        embed_dim: joint embedding dimension (CLIP RN50: 1024; 64 at CPU scale).
        text_width: text tower width.
        text_layers: text Transformer layers.
        text_heads: attention heads.
        context_length: tokens per caption.
        init_temperature: initial tau; CLIP: "initialized to the equivalent of 0.07".
    """

    image_encoder: str = "cnn-small"
    image_width: int = 0
    embed_dim: int = 64
    text_width: int = 64
    text_layers: int = 1
    text_heads: int = 4
    context_length: int = 16
    init_temperature: float = 0.07

    def __post_init__(self) -> None:
        if self.image_width < 0:
            raise ValueError(f"image_width must be >= 0, got {self.image_width}")
        if self.embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}")
        if not 0 < self.init_temperature <= 1:
            raise ValueError(f"init_temperature must be in (0, 1], got {self.init_temperature}")


class CLIPModel(nn.Module):
    """Image tower + text tower + projections + learnable logit scale.

    Args:
        image_tower: an :class:`EncoderNet` (takes [0, 1] images, normalizes inside).
        text_tower: a :class:`TextEncoder`.
        tokenizer: the caption tokenizer (kept with the model and saved in the sidecar).
        config: the shape config.
    """

    def __init__(
        self, image_tower: EncoderNet, text_tower: TextEncoder, tokenizer: WordTokenizer, config: CLIPConfig
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.visual = image_tower
        self.text = text_tower
        self.image_projection = nn.Linear(image_tower.feature_dim, config.embed_dim, bias=False)
        self.text_projection = nn.Linear(text_tower.feature_dim, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.visual.input_shape

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer.encode(list(texts), self.config.context_length).to(self.logit_scale.device)

    def encode_image(self, images: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, embed_dim) (L2-normalised unless ``normalize=False``)."""
        z = self.image_projection(self.visual(images))
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, texts: Sequence[str] | torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """Captions (strings or token ids (N, L)) -> (N, embed_dim)."""
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        z = self.text_projection(self.text(tokens.to(self.logit_scale.device)))
        return F.normalize(z, dim=-1) if normalize else z

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), capped at 100."""
        return self.logit_scale.clamp(0, MAX_LOGIT_SCALE).exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Clip log(1/tau) to [0, log 100] in place (CLIP's training-loop clamp)."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image and text embeddings and the logit scale."""
        return self.encode_image(images), self.encode_text(tokens), self.scale()

    def image_encoder(self, *, batch_size: int = 512, projected: bool = True) -> CLIPImageEncoder:
        """This model's image side as an ``Encoder`` (``embed(images) -> (N, D)``)."""
        return CLIPImageEncoder(self, batch_size=batch_size, projected=projected)


class CLIPImageEncoder:
    """The image tower of a :class:`CLIPModel` behind the ``Encoder`` protocol.

    Args:
        model: the dual encoder.
        batch_size: images per forward pass.
        projected: return normalised joint-space embeddings (True) or raw image-tower features.
    """

    def __init__(self, model: CLIPModel, *, batch_size: int = 512, projected: bool = True) -> None:
        self.model = model
        self.batch_size = batch_size
        self.projected = projected
        self.input_shape: tuple[int, int, int] = model.input_shape
        self.embedding_dim: int = model.embed_dim if projected else model.visual.feature_dim

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        from ..victim import adapt_images

        was_training = self.model.training
        self.model.eval()
        dev = self.model.logit_scale.device
        outs = []
        try:
            for s in range(0, images.shape[0], self.batch_size):
                x = adapt_images(images[s : s + self.batch_size], self.input_shape).to(dev)
                z = self.model.encode_image(x) if self.projected else self.model.visual(x)
                outs.append(z.float().cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(outs) if outs else torch.empty(0, self.embedding_dim)


def build_clip(
    tokenizer: WordTokenizer,
    *,
    in_channels: int,
    image_size: int,
    config: CLIPConfig | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> CLIPModel:
    """A randomly initialised :class:`CLIPModel` for images of the given shape and the tokenizer's vocabulary."""
    c = config or CLIPConfig()
    kw: dict[str, Any] = {"width": c.image_width} if c.image_width else {}
    visual = create_encoder(c.image_encoder, in_channels=in_channels, image_size=image_size, mean=mean, std=std, **kw)
    text = TextEncoder(
        TextConfig(
            vocab_size=len(tokenizer),
            context_length=c.context_length,
            width=c.text_width,
            layers=c.text_layers,
            heads=c.text_heads,
        )
    )
    return CLIPModel(visual, text, tokenizer, c)


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / "clip.safetensors"
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if p.suffix != ".safetensors":
        p = p.with_name(p.name + ".safetensors")
    return p, p.with_suffix(".json")


def save_clip(path: str | Path, model: CLIPModel, *, training: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write ``NAME.safetensors`` + ``NAME.json`` (config, tokenizer, normalization, sha256), atomically."""
    weights, sidecar = _paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": "encoder-audit-clip"}))
    meta = {
        "format_version": 1,
        "kind": "clip",
        "config": asdict(model.config),
        "input_shape": list(model.input_shape),
        "normalization": model.visual.normalization(),
        "embedding_dim": model.embed_dim,
        "tokenizer": model.tokenizer.to_dict(),
        "training": training or {},
        "versions": {"encoder_audit": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "weights_sha256": sha256_file(weights),
        **extra,
    }
    atomic_write_json(sidecar, meta)
    return weights


def load_clip(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[CLIPModel, dict[str, Any]]:
    """Rebuild a :class:`CLIPModel` saved by :func:`save_clip` and return it with its sidecar.

    Raises:
        CheckpointError: missing files, a pickle, a sha256 mismatch, or weights that do not fit.
    """
    _refuse_pickle(Path(path))
    weights, sidecar = _paths(path)
    if not sidecar.is_file() or not weights.is_file():
        raise CheckpointError(f"CLIP checkpoint {weights} (+ .json sidecar) not found")
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{sidecar} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != "clip":
        raise CheckpointError(f"{sidecar} is not a CLIP checkpoint sidecar")
    if meta.get("weights_sha256") and sha256_file(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match the sha256 in its sidecar: the file was changed")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a valid safetensors file: {exc}") from None
    try:
        config = CLIPConfig(**meta["config"])
        tok = WordTokenizer.from_dict(meta["tokenizer"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{sidecar} has an invalid config or tokenizer: {exc}") from None
    c, h, _ = meta["input_shape"]
    norm = meta.get("normalization") or {}
    model = build_clip(tok, in_channels=c, image_size=h, config=config, mean=norm.get("mean"), std=norm.get("std"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{weights} does not fit the config in {sidecar.name}: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    return model.to(device), meta
