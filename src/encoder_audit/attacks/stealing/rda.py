"""RDA: Refine, Discriminate and Align (Wu, Ma, Wei, Xu, Ding, Qian, Xiao, Xiang; ECCV 2024, arXiv 2312.00855).

**Refine.** Before training, every query image x_i is augmented into P views (``"rda-prototype"``:
a fixed 0.9-area crop, flip, jitter, grayscale, blur, solarize), every view is sent to the victim
once, each output is L2-normalised and the P unit vectors are averaged into a sample-wise prototype

    p_i = (1/P) sum_v e_{i,v} / ||e_{i,v}||         (NOT re-normalised, so ||p_i|| <= 1)

P = 10 for 32x32 targets (official ``RDA.py``, ``proto_patch``). Prototypes are keyed by the query's
**row index** in the query set, never by a label: the official code keys them by the dataset's ``y``
field, which collapses them to one per class when ``y`` holds class labels (upstream issue
ShuchiWu/RDA#1). After this step training makes no further queries ("query-free training").

**Discriminate and Align.** Each epoch each image yields Q = 5 surrogate-side views (``"rda-train"``,
the same chain with a 0.75-area crop). With z_i the unit-norm surrogate embedding of a view and p_i
its prototype, tau = 0.07 and alpha = beta = 1 (the ``OurLoss`` constructor defaults)

    L_disc  = (1/B) sum_i -log[ exp(z_i.p_i/tau) / (sum_{j!=i} exp(z_i.p_j/tau) + sum_{j!=i} exp(z_i.z_j/tau)) ]
    L_align = (1/B) sum_i [ log(||z_i - p_i||^2 + eps) - log(1 + cos(z_i, p_i) + eps) ]
    L = alpha * L_disc + beta * L_align,   averaged over the Q views.

The official code has no eps; a prototype of norm exactly 1 (P = 1, or all views agreeing) would
send log||z - p||^2 to -inf, so a small eps keeps the loss finite.

Query cost: N x P images, all before training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...models.base import EncoderNet
from ..registry import register_attack
from .base import StealingAttack, StealingConfig
from .views import stealing_views

__all__ = ["RDAAttack", "RDAConfig", "build_prototypes", "prototype_statistics", "rda_loss"]

AGGREGATES = ("mean", "median")


@dataclass(frozen=True)
class RDAConfig(StealingConfig):
    """Attributes:
    prototype_views: P, victim queries per image (10 for 32x32 targets; 5 for ImageNet/CLIP).
    train_views: Q, surrogate views per image and epoch (5; 1 for ImageNet/CLIP).
    temperature: tau of the discriminate term (0.07).
    alpha: weight of L_disc (1).
    beta: weight of L_align (1).
    eps: added inside both logarithms of L_align (not in the official code; see module docstring).
    prototype_recipe: view recipe of the prototype queries (``"rda-prototype"``, crop 0.9; on
        1-channel images ``"rda-gray-prototype"``, see :mod:`.views`).
    train_recipe: view recipe of the surrogate views (``"rda-train"``, crop 0.75; ``"rda-gray-train"``).
    prototype_crop: area range of the prototype views' crop, replacing the recipe's (an ablation of
        the scale the official code calls "critical"); None keeps the recipe's.
    renormalize: re-normalise prototypes to unit norm (ablation; the paper does not).
    aggregate: ``"mean"`` (the paper) or ``"median"`` (coordinate-wise, a robust variant against
        perturbation defenses; an extension, not in the paper).
    """

    prototype_views: int = 10
    train_views: int = 5
    temperature: float = 0.07
    alpha: float = 1.0
    beta: float = 1.0
    eps: float = 1e-6
    prototype_recipe: str = "rda-prototype"
    train_recipe: str = "rda-train"
    prototype_crop: tuple[float, float] | None = None
    renormalize: bool = False
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prototype_views < 1 or self.train_views < 1:
            raise ValueError(
                f"prototype_views and train_views must be >= 1, got {self.prototype_views}, {self.train_views}"
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.alpha < 0 or self.beta < 0 or self.eps < 0:
            raise ValueError("alpha, beta and eps must be >= 0")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")
        if self.prototype_crop is not None:
            lo, hi = self.prototype_crop
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"prototype_crop must satisfy 0 < lo <= hi <= 1, got {self.prototype_crop}")


def rda_loss(
    z: torch.Tensor,
    p: torch.Tensor,
    temperature: float = 0.07,
    alpha: float = 1.0,
    beta: float = 1.0,
    *,
    eps: float = 1e-6,
) -> torch.Tensor:
    """RDA's multi-relational extraction loss ``alpha * L_disc + beta * L_align``.

    Args:
        z: (B, D) unit-norm surrogate embeddings (B >= 2).
        p: (B, D) prototypes (norm <= 1, not re-normalised), row i matching z_i.
        temperature: tau of the discriminate term.
        alpha: weight of the discriminate term.
        beta: weight of the align term.
        eps: stabiliser inside the align term's logarithms.

    Returns:
        Scalar loss.

    >>> z = F.normalize(torch.randn(4, 8), dim=1)
    >>> float(rda_loss(z, 0.9 * z, beta=0.0)) < float(rda_loss(z, 0.9 * z.roll(1, 0), beta=0.0))
    True
    """
    if z.shape != p.shape or z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z and p must both be (B, D) with B >= 2, got {tuple(z.shape)}, {tuple(p.shape)}")
    b = z.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=z.device)
    zp = z @ p.T / temperature
    zz = z @ z.T / temperature
    pos = zp.diagonal()
    neg = torch.cat([zp.masked_fill(eye, -math.inf), zz.masked_fill(eye, -math.inf)], dim=1)
    disc = (torch.logsumexp(neg, dim=1) - pos).mean()
    dist2 = (z - p).pow(2).sum(dim=1)
    cos = F.cosine_similarity(z, p, dim=1, eps=1e-12)
    align = (torch.log(dist2 + eps) - torch.log(1.0 + cos + eps)).mean()
    return alpha * disc + beta * align


def aggregate_views(views: torch.Tensor, how: str = "mean", renormalize: bool = False) -> torch.Tensor:
    """Prototype from (P, N, D) view embeddings: normalise each, then mean (or median) over P.

    >>> v = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])  # two views of one image
    >>> aggregate_views(v)
    tensor([[0.5000, 0.5000]])
    """
    unit = F.normalize(views, dim=-1)
    proto = unit.mean(dim=0) if how == "mean" else unit.median(dim=0).values
    return F.normalize(proto, dim=-1) if renormalize else proto


def build_prototypes(
    query_fn: object,
    images: torch.Tensor,
    views: int,
    recipe: str,
    generator: torch.Generator,
    *,
    crop: tuple[float, float] | None = None,
    **kw: object,
) -> torch.Tensor:
    """Sample-wise prototypes, row i for query image i (index keyed; labels never used).

    Args:
        query_fn: ``images -> (N, D)`` victim embeddings (metered by the caller).
        images: (N, C, H, W) query images in [0, 1].
        views: P.
        recipe: view recipe name.
        generator: randomness of the views.
        crop: crop area range replacing the recipe's.
        **kw: ``how`` / ``renormalize`` for :func:`aggregate_views`.

    Shape:
        returns (N, D), each row of norm <= 1 unless re-normalised.
    """
    gen = stealing_views(recipe, crop_scale=None if crop is None else (float(crop[0]), float(crop[1])))
    outs = torch.stack([query_fn(gen(images, generator)) for _ in range(views)])  # type: ignore[operator]
    return aggregate_views(outs, **kw)  # type: ignore[arg-type]


@register_attack(
    "stealing",
    "rda",
    config=RDAConfig,
    help="RDA (ECCV'24): P-view sample-wise prototypes once, then query-free training; N x P queries",
)
class RDAAttack(StealingAttack):
    """Sample-wise prototypes, then query-free multi-relational training (see module docstring)."""

    config: RDAConfig
    uses_views = True
    last_prototype_norms: torch.Tensor | None = None

    def query_cost(self, n: int) -> int:
        return n * self.config.prototype_views

    def views_per_image(self) -> int:
        return self.config.train_views

    def prepare(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c = self.config
        self._views = stealing_views(c.train_recipe)
        protos = build_prototypes(
            self.query,
            images,
            c.prototype_views,
            c.prototype_recipe,
            generator,
            crop=c.prototype_crop,
            how=c.aggregate,
            renormalize=c.renormalize,
        )
        self.last_prototype_norms = protos.norm(dim=1).cpu()  # 1 = every view answered the same direction
        return protos

    def batch_loss(
        self,
        net: EncoderNet,
        images: torch.Tensor,
        index: torch.Tensor,
        state: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        c = self.config
        q = c.train_views
        views = torch.cat([self._views(images.cpu(), generator) for _ in range(q)]).to(images.device)
        z = F.normalize(net(views), dim=1)
        p = state[index]
        loss = sum(rda_loss(zq, p, c.temperature, c.alpha, c.beta, eps=c.eps) for zq in z.split(images.shape[0]))
        return loss / q  # type: ignore[return-value]


def prototype_statistics(
    victim: object,
    images: torch.Tensor,
    views: int,
    recipe: str,
    *,
    crop: tuple[float, float] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """How much P prototype views carry beyond one clean query (an auditor-side measurement).

    Builds the prototypes of ``images`` as RDA does and compares each with the victim's normalised
    embedding of the clean image. A prototype norm near 1 means the P views answered the same
    direction (the views carry nothing a single query does not); a cosine to the clean query near 1
    means the prototype is that query.

    Args:
        victim: an :class:`~encoder_audit.victim.Encoder` (queried directly, not metered).
        images: (N, C, H, W) in [0, 1].
        views: P.
        recipe: prototype view recipe.
        crop: crop area range replacing the recipe's.
        seed: seed of the views.

    Returns:
        ``{"norm_median", "norm_mean", "cos_clean_median", "cos_clean_mean"}``.
    """
    embed = victim.embed  # type: ignore[attr-defined]
    with torch.no_grad():
        protos = build_prototypes(embed, images, views, recipe, torch.Generator().manual_seed(seed), crop=crop)
        clean = F.normalize(embed(images).float(), dim=1)
    norms = protos.norm(dim=1)
    cos = F.cosine_similarity(protos, clean, dim=1)
    return {
        "norm_median": float(norms.median()),
        "norm_mean": float(norms.mean()),
        "cos_clean_median": float(cos.median()),
        "cos_clean_mean": float(cos.mean()),
    }
