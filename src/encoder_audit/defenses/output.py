"""Output-side defenses for a served encoder: perturb the embeddings an API returns.

Each defense is a callable ``(embeddings, images) -> embeddings`` built by name through
:func:`create_defense`; :class:`DefendedEncoder` applies a chain of them to any
:class:`~encoder_audit.victim.Encoder`, so the same defense protects an in-process victim and the HTTP
service, and attacks meet it through the ordinary ``Encoder`` protocol.

The perturbation defenses evaluated against encoder stealing (StolenEncoder, Sec. 6; Cont-Steal;
RDA, Sec. 5.5) are additive Gaussian noise, rounding to a few decimals and top-k sparsification.
Noise draws from a generator seeded from the OS (``secrets``), never from the run seed: an attacker
who knows the seed must not be able to subtract the noise.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..config import build_config
from ..registry import Registry


class OutputDefense(Protocol):
    """Maps a batch of embeddings (and the images they came from) to defended embeddings."""

    name: str

    def __call__(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor: ...


DEFENSES: Registry[OutputDefense] = Registry("defense")
register_defense = DEFENSES.register


@dataclass(frozen=True)
class NoiseConfig:
    """Attributes:
    sigma: standard deviation of the Gaussian noise, relative to the mean embedding norm of the
        batch when ``relative`` (so one value fits encoders of any scale), else absolute.
    relative: scale ``sigma`` by the mean L2 norm / sqrt(D) of the batch's embeddings.
    """

    sigma: float = 0.1
    relative: bool = True

    def __post_init__(self) -> None:
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")


class GaussianNoise:
    """Adds N(0, sigma^2) to every coordinate (StolenEncoder Sec. 6.1, "adding Gaussian noise")."""

    name = "noise"

    def __init__(self, config: NoiseConfig) -> None:
        self.config = config
        self.generator = torch.Generator().manual_seed(secrets.randbits(63))

    def __call__(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        sigma = self.config.sigma
        if self.config.relative and embeddings.numel():
            scale = embeddings.norm(dim=1).mean() / embeddings.shape[1] ** 0.5
            sigma = sigma * float(scale)
        noise = torch.randn(embeddings.shape, generator=self.generator) * sigma
        return embeddings + noise.to(device=embeddings.device, dtype=embeddings.dtype)


@register_defense("noise", config=NoiseConfig, help="additive Gaussian noise (sigma, relative to embedding scale)")
def _noise(config: NoiseConfig) -> GaussianNoise:
    return GaussianNoise(config)


@dataclass(frozen=True)
class RoundConfig:
    """Attributes:
    decimals: keep this many decimals (StolenEncoder Sec. 6.1 rounds "to d decimals").
    """

    decimals: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= 10:
            raise ValueError(f"decimals must be in [0, 10], got {self.decimals}")


class Rounding:
    """Rounds every coordinate to ``decimals`` decimals."""

    name = "round"

    def __init__(self, config: RoundConfig) -> None:
        self.config = config

    def __call__(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return torch.round(embeddings, decimals=self.config.decimals)


@register_defense("round", config=RoundConfig, help="round each coordinate to d decimals")
def _round(config: RoundConfig) -> Rounding:
    return Rounding(config)


@dataclass(frozen=True)
class TopKConfig:
    """Attributes:
    k: coordinates kept (largest magnitude); the others are set to zero.
    """

    k: int = 32

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


class TopK:
    """Keeps the ``k`` largest-magnitude coordinates of each embedding (top-k sparsification)."""

    name = "topk"

    def __init__(self, config: TopKConfig) -> None:
        self.config = config

    def __call__(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        k = min(self.config.k, embeddings.shape[1])
        idx = embeddings.abs().topk(k, dim=1).indices
        out = torch.zeros_like(embeddings)
        return out.scatter_(1, idx, embeddings.gather(1, idx))


@register_defense("topk", config=TopKConfig, help="keep the k largest-magnitude coordinates")
def _topk(config: TopKConfig) -> TopK:
    return TopK(config)


def create_defense(name: str, **params: Any) -> OutputDefense:
    """Build a defense by name with validated parameters.

    >>> d = create_defense("round", decimals=1)
    >>> d(torch.tensor([[0.123, -0.987]]), torch.zeros(1, 1, 2, 2))
    tensor([[ 0.1000, -1.0000]])
    """
    cls = DEFENSES.config_class(name)
    config = build_config(cls, params) if cls is not None else None
    return DEFENSES.create(name, config)


def parse_defense_spec(spec: str) -> OutputDefense:
    """Parse ``"noise:sigma=0.1"`` / ``"round:decimals=2"`` / ``"topk:k=16"`` into a defense."""
    import yaml

    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"defense option must be key=value, got {item!r} in {spec!r}")
        params[key.strip()] = yaml.safe_load(value)
    return create_defense(name.strip(), **params)


class DefendedEncoder:
    """An :class:`~encoder_audit.victim.Encoder` whose outputs pass through a chain of defenses."""

    def __init__(self, encoder: Any, defenses: Sequence[OutputDefense]) -> None:
        self.encoder = encoder
        self.defenses = list(defenses)
        self.input_shape = encoder.input_shape
        self.embedding_dim = encoder.embedding_dim

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        out = self.encoder.embed(images)
        for defense in self.defenses:
            out = defense(out, images)
        return out

    def __repr__(self) -> str:
        return f"DefendedEncoder({self.encoder!r}, defenses={[d.name for d in self.defenses]})"
