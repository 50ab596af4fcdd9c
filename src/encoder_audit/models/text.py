"""A small text tower for CPU-scale CLIP-style training: token + position embeddings, a tiny Transformer.

CLIP (Radford et al., 2021, Sec. 2.4) uses a 12-layer, 512-wide Transformer over byte-pair tokens and
takes the activation at the end-of-text token as the text feature. At CPU scale the captions are short
template sentences over a few hundred words, so we keep the same shape with one or two layers of
width 64 and pool with a padding-masked mean (more stable than an EOT token when the tower is tiny).
Token ids come from :class:`encoder_audit.data.captions.WordTokenizer` (0 is padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TextConfig:
    """Shape of the text tower.

    Attributes:
        vocab_size: number of token ids (from the tokenizer, special tokens included).
        context_length: maximum tokens per caption (CLIP: 77; our captions are at most ~14 words).
        width: model width (CLIP base: 512; 64 keeps a training step in milliseconds on a CPU).
        layers: Transformer layers (CLIP: 12).
        heads: attention heads (CLIP: 8).
        pool: ``mean`` (padding-masked mean) or ``eot`` (the last non-padding token, as CLIP).
    """

    vocab_size: int
    context_length: int = 16
    width: int = 64
    layers: int = 1
    heads: int = 4
    pool: str = "mean"

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {self.vocab_size}")
        if self.context_length < 2:
            raise ValueError(f"context_length must be >= 2, got {self.context_length}")
        if self.width <= 0 or self.layers < 0 or self.heads <= 0 or self.width % self.heads:
            raise ValueError("width must be positive and divisible by heads; layers >= 0")
        if self.pool not in ("mean", "eot"):
            raise ValueError(f"pool must be 'mean' or 'eot', got {self.pool!r}")


class TextEncoder(nn.Module):
    """Token ids (N, L) -> text features (N, width).

    Args:
        config: the tower's shape.

    Shape:
        input: (N, L) int64 with 0 = padding, L <= context_length; output: (N, width).
    """

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width, padding_idx=0)
        self.positional_embedding = nn.Parameter(torch.zeros(config.context_length, config.width))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        if config.layers:
            layer = nn.TransformerEncoderLayer(
                config.width,
                config.heads,
                dim_feedforward=4 * config.width,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.transformer: nn.Module | None = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        else:
            self.transformer = None
        self.ln_final = nn.LayerNorm(config.width)

    @property
    def feature_dim(self) -> int:
        return self.config.width

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (N, L), got shape {tuple(tokens.shape)}")
        if tokens.shape[1] > self.config.context_length:
            raise ValueError(f"captions have {tokens.shape[1]} tokens, context_length is {self.config.context_length}")
        pad = tokens == 0
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        if self.transformer is not None:
            # A row of only padding would make attention NaN: let such rows attend to position 0.
            key_pad = pad.clone()
            key_pad[:, 0] = False
            x = self.transformer(x, src_key_padding_mask=key_pad)
        x = self.ln_final(x)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        if self.config.pool == "eot":
            last = (~pad).long().sum(1).clamp_min(1) - 1
            return x[torch.arange(x.shape[0], device=x.device), last]
        return (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)
