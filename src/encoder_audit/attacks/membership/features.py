"""EncoderMI membership features: pairwise similarities of a victim's embeddings of augmented views.

Liu, Jia, Qu, Gong, "EncoderMI: Membership Inference against Pre-trained Encoders in Contrastive
Learning", ACM CCS 2021 (arXiv 2108.11023). For an input ``x`` the inferrer draws ``n`` augmented views
``x^1..x^n`` with the pre-training augmentations, embeds them with the encoder ``h`` and keeps

    M(x, h) = { S(h(x^i), h(x^j)) : 1 <= i < j <= n }

i.e. ``n (n - 1) / 2`` similarity scores (45 for the ``n = 10`` of the paper's CLIP experiment and of
the public replication). The paper compares cosine similarity (best, as it matches the contrastive
objective), Pearson correlation and a Euclidean-distance-based similarity; we use the negative
Euclidean distance for the latter (the paper's exact transform is not in our notes).

Querying costs exactly ``n`` images per input. :class:`VictimProbe` queries the victim once per
dataset and shares the answers among every attack that needs them, through one
:class:`~encoder_audit.victim.QueryCounter`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...augment import create_views
from ...data.base import ImageDataset
from ...runs import derive_seed
from ...victim import Encoder, QueryCounter
from ..base import metered

log = logging.getLogger(__name__)

__all__ = [
    "SIMILARITIES",
    "FeatureConfig",
    "VictimProbe",
    "num_pairs",
    "pairwise_similarities",
    "view_embeddings",
]

SIMILARITIES = ("cosine", "correlation", "euclidean")


@dataclass(frozen=True)
class FeatureConfig:
    """How membership features are queried.

    Attributes:
        n_views: augmented views per input (EncoderMI: n = 10, "45 cosine similarity scores").
        similarity: ``cosine`` (the paper's best), ``correlation`` (Pearson) or ``euclidean``
            (negative Euclidean distance).
        views: augmentation recipe of the queries (``encodermi``: the target's pre-training family,
            RandomResizedCrop scale 0.2-1, flip, jitter 0.4/0.4/0.4/0.1 p=0.8, grayscale 0.2).
        batch_size: images per victim call.
    """

    n_views: int = 10
    similarity: str = "cosine"
    views: str = "encodermi"
    batch_size: int = 500

    def __post_init__(self) -> None:
        if self.n_views < 2:
            raise ValueError(f"n_views must be >= 2 (pairs of views), got {self.n_views}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def num_pairs(n: int) -> int:
    """``n (n - 1) / 2``: similarity scores per input for ``n`` views."""
    return n * (n - 1) // 2


def pairwise_similarities(embeddings: torch.Tensor, similarity: str = "cosine") -> torch.Tensor:
    """All ``n (n - 1) / 2`` pairwise similarities of each input's ``n`` view embeddings.

    Args:
        embeddings: (N, n, D) view embeddings.
        similarity: ``cosine``, ``correlation`` or ``euclidean`` (negative distance).

    Returns:
        (N, n (n - 1) / 2) scores in the order of ``torch.triu_indices(n, n, 1)``.

    >>> e = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    >>> pairwise_similarities(e).round(decimals=4)
    tensor([[0.0000, 0.7071, 0.7071]])
    """
    if embeddings.ndim != 3:
        raise ValueError(f"embeddings must be (N, n, D), got shape {tuple(embeddings.shape)}")
    e = embeddings.double()
    n = e.shape[1]
    iu = torch.triu_indices(n, n, 1)
    if similarity == "euclidean":
        sim = -torch.cdist(e, e)
    elif similarity in ("cosine", "correlation"):
        if similarity == "correlation":
            e = e - e.mean(dim=2, keepdim=True)
        u = F.normalize(e, dim=2, eps=1e-12)
        sim = u @ u.transpose(1, 2)
    else:
        raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}")
    return sim[:, iu[0], iu[1]].float()


def view_embeddings(
    encoder: Encoder,
    images: torch.Tensor,
    n_views: int,
    *,
    views: str = "encodermi",
    seed: int = 0,
    batch_size: int = 500,
    progress: bool | None = False,
) -> torch.Tensor:
    """Embed ``n_views`` augmented views of every image: exactly ``N * n_views`` queries.

    Views are drawn at the encoder's input size with a generator seeded by ``seed``, so the same
    seed gives the same views whatever the batch size.

    Shape:
        images: (N, C, H, W) in [0, 1]; returns (N, n_views, D).
    """
    size = encoder.input_shape[-1]
    gen = create_views(views, size=size)
    outs = []
    starts = range(0, images.shape[0], batch_size)
    for start in tqdm(starts, disable=progress is False, desc="views", unit="batch", leave=False):
        x = images[start : start + batch_size]
        g = torch.Generator().manual_seed(derive_seed(seed, "views", start))
        batch = torch.cat([gen(x, g) for _ in range(n_views)])  # view-major: (n * b, C, H, W)
        emb = encoder.embed(batch).float()
        outs.append(emb.view(n_views, x.shape[0], -1).transpose(0, 1))
    if not outs:
        return torch.empty(0, n_views, encoder.embedding_dim)
    return torch.cat(outs)


class VictimProbe:
    """Queries one encoder about one dataset, once, and shares the answers among attacks.

    Args:
        encoder: the victim (or a shadow encoder); wrapped in a :class:`QueryCounter` if it is not one.
        dataset: the images asked about.
        config: view settings (number, recipe, batch size).
        seed: seed of the augmentations.
        progress: progress bars.

    Attributes:
        counter: the meter every query goes through.
    """

    def __init__(
        self,
        encoder: Encoder,
        dataset: ImageDataset,
        config: FeatureConfig | None = None,
        *,
        seed: int = 0,
        progress: bool | None = False,
    ) -> None:
        self.counter: QueryCounter = metered(encoder)
        self.dataset = dataset
        self.config = config or FeatureConfig()
        self.seed = seed
        self.progress = progress
        self._views: torch.Tensor | None = None
        self._clean: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def views(self, n: int | None = None) -> torch.Tensor:
        """(N, n, D) embeddings of ``n`` augmented views (default ``config.n_views``), queried once.

        Asking for fewer views than already queried reuses the first ``n``; asking for more queries
        the difference only.
        """
        n = n or self.config.n_views
        have = 0 if self._views is None else self._views.shape[1]
        if n > have:
            more = view_embeddings(
                self.counter,
                self.dataset.float_images(),
                n - have,
                views=self.config.views,
                seed=derive_seed(self.seed, "probe", have),
                batch_size=max(1, self.config.batch_size // max(1, n - have)),
                progress=self.progress,
            )
            self._views = more if self._views is None else torch.cat([self._views, more], dim=1)
        assert self._views is not None
        return self._views[:, :n]

    def similarities(self, n: int | None = None, similarity: str | None = None) -> torch.Tensor:
        """(N, n (n - 1) / 2) pairwise similarities of the view embeddings."""
        return pairwise_similarities(self.views(n), similarity or self.config.similarity)

    def clean(self) -> torch.Tensor:
        """(N, D) embeddings of the unaugmented images (one query each)."""
        if self._clean is None:
            outs = [self.counter.embed(x) for x, _, _ in self.dataset.batches(self.config.batch_size)]
            self._clean = torch.cat(outs).float() if outs else torch.empty(0, self.counter.embedding_dim)
        return self._clean
