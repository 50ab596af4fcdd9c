"""Encoder watermark: a secret trigger that maps to a secret embedding direction, and its verification.

Embedding follows BadEncoder used as a watermark (Jia, Liu, Gong, S&P 2022, arXiv 2108.00352; RDA
Sec. 5.5 evaluates it as the "watermark-based" defense): a copy of the clean encoder f0 is fine-tuned
so that images carrying a small secret trigger patch embed along a secret unit direction ``s``, while
clean images keep their clean embeddings:

    L = -mean_i cos(f(x_i + trigger), s) + lam * mean_i (1 - cos(f(x_i), f0(x_i)))

The key (trigger pattern, its position, ``s``) is drawn from the OS's ``secrets`` source, never from
the run seed, and stored as a JSON key file.

Verification on a suspect encoder g (black box, dimension-matched to the key by adaptive average
pooling as in stealing): the statistic is the mean shift of the embedding towards ``s`` caused by the
trigger, T(s) = mean_i [cos(g(x_i + trigger), s) - cos(g(x_i), s)]. Any trigger moves the embeddings
of an unrelated encoder in *some* direction, so a parametric test against 0 would flag innocent
encoders; instead T(s) is ranked against T(r) for R random unit directions r. For an encoder that
never saw the key, s is exchangeable with the r's, so p = (1 + #{T(r) >= T(s)}) / (R + 1) is an exact
one-sided p-value (and z = (T(s) - mean T(r)) / std T(r) a readable effect size). The watermark is
claimed at p < ``alpha`` (0.01).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.base import ImageDataset
from ..errors import CorruptFileError
from ..evaluate.dims import match_dim
from ..io import atomic_write_json
from ..models.base import EncoderNet
from ..victim import Encoder, adapt_images

log = logging.getLogger(__name__)

__all__ = [
    "WatermarkConfig",
    "WatermarkKey",
    "WatermarkVerdict",
    "apply_trigger",
    "embed_watermark",
    "new_watermark_key",
    "verify_watermark",
]

KEY_FORMAT = "encoder-audit-watermark-key/1"


@dataclass(frozen=True)
class WatermarkKey:
    """The owner's secret.

    Attributes:
        input_shape: (C, H, W) the trigger is defined at.
        patch: (C, p, p) trigger pattern in [0, 1].
        position: (top, left) of the patch.
        direction: unit secret direction (D,).
    """

    input_shape: tuple[int, int, int]
    patch: torch.Tensor
    position: tuple[int, int]
    direction: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.direction.shape[0])

    def save(self, path: str | Path) -> Path:
        """Write the key as JSON (atomically). Keep it private: it is what proves ownership."""
        return atomic_write_json(
            path,
            {
                "format": KEY_FORMAT,
                "input_shape": list(self.input_shape),
                "patch": self.patch.tolist(),
                "position": list(self.position),
                "direction": self.direction.tolist(),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> WatermarkKey:
        """Read a key file.

        Raises:
            FileNotFoundError: no such file.
            CorruptFileError: not a watermark key.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"watermark key {path} does not exist")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != KEY_FORMAT:
                raise ValueError("wrong format tag")
            key = cls(
                input_shape=tuple(int(v) for v in d["input_shape"]),  # type: ignore[arg-type]
                patch=torch.tensor(d["patch"], dtype=torch.float32),
                position=(int(d["position"][0]), int(d["position"][1])),
                direction=F.normalize(torch.tensor(d["direction"], dtype=torch.float32), dim=0),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CorruptFileError(f"{path} is not a watermark key file: {exc}") from None
        c, h, w = key.input_shape
        if (
            key.patch.ndim != 3
            or key.patch.shape[0] != c
            or key.position[0] + key.patch.shape[1] > h
            or key.position[1] + key.patch.shape[2] > w
        ):
            raise CorruptFileError(f"{path}: trigger patch does not fit the input shape {key.input_shape}")
        return key


def new_watermark_key(input_shape: tuple[int, int, int], dim: int, *, patch_size: int | None = None) -> WatermarkKey:
    """A fresh key from the OS's randomness: binary patch pattern at a random corner, random direction.

    Args:
        input_shape: (C, H, W) of the encoder's input.
        dim: embedding dimension of the encoder.
        patch_size: side of the trigger (default: 20% of the image side, at least 3).
    """
    c, h, w = input_shape
    p = patch_size or max(3, round(0.2 * min(h, w)))
    if p > min(h, w):
        raise ValueError(f"patch_size {p} larger than the image {h}x{w}")
    g = torch.Generator().manual_seed(secrets.randbits(63))
    patch = (torch.rand(c if c == 1 else 1, p, p, generator=g) > 0.5).float().expand(c, p, p).clone()
    corner = secrets.randbelow(4)
    position = ((h - p) * (corner // 2), (w - p) * (corner % 2))
    direction = F.normalize(torch.randn(dim, generator=g), dim=0)
    return WatermarkKey((c, h, w), patch, position, direction)


def apply_trigger(images: torch.Tensor, key: WatermarkKey) -> torch.Tensor:
    """Paste the key's trigger patch into (N, C, H, W) images in [0, 1] (adapted to the key's shape first)."""
    x = adapt_images(images, key.input_shape).clone()
    top, left = key.position
    _, p, q = key.patch.shape
    x[:, :, top : top + p, left : left + q] = key.patch.to(x.dtype)
    return x


@dataclass(frozen=True)
class WatermarkConfig:
    """Attributes:
    epochs: fine-tuning epochs (BadEncoder fine-tunes for 200 on CIFAR-10; a few suffice for cnn-small).
    batch_size: images per step.
    lr: Adam learning rate (BadEncoder: 1e-3 ... 1e-4; we use 1e-3).
    lam: weight of the clean-utility term (BadEncoder's lambda = 1).
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    lam: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.lam < 0:
            raise ValueError("epochs >= 1, batch_size >= 2, lr > 0 and lam >= 0 are required")


def embed_watermark(
    net: EncoderNet,
    key: WatermarkKey,
    data: ImageDataset,
    config: WatermarkConfig | None = None,
    *,
    seed: int = 0,
    progress: bool | None = False,
) -> EncoderNet:
    """A watermarked copy of ``net`` (the original is left untouched).

    Raises:
        ValueError: the key does not match the encoder's input shape or dimension.
    """
    import copy

    c = config or WatermarkConfig()
    if tuple(key.input_shape) != tuple(net.input_shape) or key.dim != net.feature_dim:
        raise ValueError(f"key is for {key.input_shape}/{key.dim}-d, encoder is {net.input_shape}/{net.feature_dim}-d")
    clean = copy.deepcopy(net).eval()
    wm = copy.deepcopy(net).train()
    s = key.direction
    opt = torch.optim.Adam(wm.parameters(), lr=c.lr)
    g = torch.Generator().manual_seed(seed)
    for epoch in tqdm(range(c.epochs), disable=progress is False, desc="watermark", unit="epoch"):
        total = 0.0
        for x, _, _ in data.batches(c.batch_size, shuffle=True, generator=g, drop_last=True):
            x = adapt_images(x, key.input_shape)
            with torch.no_grad():
                ref = clean(x)
            z = wm(torch.cat([x, apply_trigger(x, key)]))
            z_clean, z_trig = z.split(x.shape[0])
            loss = (
                -F.cosine_similarity(z_trig, s.expand_as(z_trig), dim=1).mean()
                + c.lam * (1 - F.cosine_similarity(z_clean, ref, dim=1)).mean()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        log.debug("watermark epoch %d loss %.4f", epoch + 1, total)
    return wm.eval()


@dataclass
class WatermarkVerdict:
    """Result of :func:`verify_watermark`.

    Attributes:
        statistic: T(s), the mean trigger-induced shift towards the secret direction.
        null_mean: mean of T(r) over random directions.
        null_std: their standard deviation.
        z: (T(s) - null_mean) / null_std.
        p_value: exact permutation p-value (resolution 1 / (R + 1)).
        detected: p_value < alpha.
        alpha: decision level.
        n_images: verification images (each queried clean and triggered).
        trigger_cosine: mean cos(g(x + trigger), s), the SSLGuard-style watermark-rate ingredient.
        watermark_rate: share of triggered images with cos(g(x_t), s) > 0.5 (SSLGuard's WR).
    """

    statistic: float
    null_mean: float
    null_std: float
    z: float
    p_value: float
    detected: bool
    alpha: float
    n_images: int
    trigger_cosine: float
    watermark_rate: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_watermark(
    suspect: Encoder,
    key: WatermarkKey,
    images: torch.Tensor,
    *,
    null_directions: int = 999,
    alpha: float = 0.01,
    seed: int = 0,
) -> WatermarkVerdict:
    """Test whether ``suspect`` carries the watermark of ``key`` (see module docstring).

    Args:
        suspect: any encoder; its output is pooled to the key's dimension if it differs.
        key: the owner's key.
        images: (N, C, H, W) clean verification images in [0, 1] (N >= 2).
        null_directions: R random directions of the null distribution.
        alpha: decision level.
        seed: seed of the null directions (they need not be secret).
    """
    if images.shape[0] < 2:
        raise ValueError("verification needs at least 2 images")
    if null_directions < 19:
        raise ValueError("null_directions must be >= 19 (p-value resolution 0.05)")
    clean = F.normalize(match_dim(suspect.embed(adapt_images(images, key.input_shape)).float(), key.dim), dim=1)
    trig = F.normalize(match_dim(suspect.embed(apply_trigger(images, key)).float(), key.dim), dim=1)
    shift = (trig - clean).mean(dim=0)  # T(d) = shift . d for unit d
    s = key.direction
    t_s = float(shift @ s)
    g = torch.Generator().manual_seed(seed)
    r = F.normalize(torch.randn(null_directions, key.dim, generator=g), dim=1)
    t_r = (r @ shift).numpy()
    p = (1 + int((t_r >= t_s).sum())) / (null_directions + 1)
    std = float(np.std(t_r)) or 1e-12
    cos_trig = trig @ s
    return WatermarkVerdict(
        statistic=t_s,
        null_mean=float(np.mean(t_r)),
        null_std=std,
        z=(t_s - float(np.mean(t_r))) / std,
        p_value=p,
        detected=p < alpha,
        alpha=alpha,
        n_images=int(images.shape[0]),
        trigger_cosine=float(cos_trig.mean()),
        watermark_rate=float((cos_trig > 0.5).float().mean()),
    )
