"""Coverage-adaptive noise in the spirit of B4B (Dubinski et al., "Bucks for Buckets (B4B): Active
Defenses Against Stealing Encoders", NeurIPS 2023, arXiv 2310.08571).

B4B's observation: an attacker's queries "cover a significantly larger fraction of the embedding
space" than a legitimate user's. The defense therefore tracks, per account, which buckets of a
locality-sensitive hash its returned embeddings fall into, and adds Gaussian noise whose scale grows
exponentially with that coverage:

* **Coverage.** ``projections`` independent random-hyperplane hashes, each of ``hyperplanes``
  Gaussian hyperplanes (2^hyperplanes buckets). coverage(user) = mean over projections of
  100 * |buckets hit by all the user's outputs so far| / 2^hyperplanes, in percent. Official code
  (``end2end-stealing/buckets.py``): 20 projections of 12 hyperplanes.
* **Calibrated noise** (``steal_model.py: get_stdev``): sigma(c) = lambda * (exp(ln(alpha / lambda) * c / beta) - 1),
  so sigma(0) = 0 and sigma(beta) = alpha. The official scripts use lambda = 1e-7, alpha = 1, beta = 80.

Deviations, stated: the hyperplanes and the noise come from ``secrets`` (an attacker who knew them
could plan queries that avoid new buckets, or subtract the noise); ``relative=True`` scales sigma by the
embedding scale of the batch (mean L2 norm / sqrt(D)) so one setting fits encoders of any output scale,
whereas B4B adds it in absolute units; coverage lives in memory, so a server restart resets it. B4B's
per-user output transforms (affine, pad+shuffle) against sybil accounts are not implemented here.
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass

import torch

from .output import register_defense

DEFAULT_USER = "default"


@dataclass(frozen=True)
class B4BConfig:
    """Attributes:
    projections: independent LSH tables (20 in the official ``buckets.py``).
    hyperplanes: random hyperplanes per table, 2^hyperplanes buckets (12 -> 4,096 buckets, official).
    lam: lambda, the noise scale at low coverage (1e-7 in the official scripts).
    alpha: the noise standard deviation reached at coverage ``beta`` (1.0, official scripts).
    beta: coverage in percent at which sigma = alpha (80, official scripts).
    relative: multiply sigma by the batch's mean L2 norm / sqrt(D) (our deviation; see module doc).
    """

    projections: int = 20
    hyperplanes: int = 12
    lam: float = 1e-7
    alpha: float = 1.0
    beta: float = 80.0
    relative: bool = True

    def __post_init__(self) -> None:
        if self.projections < 1:
            raise ValueError(f"projections must be >= 1, got {self.projections}")
        if not 1 <= self.hyperplanes <= 24:
            raise ValueError(f"hyperplanes must be in [1, 24], got {self.hyperplanes}")
        if not 0 < self.lam < self.alpha:
            raise ValueError(f"need 0 < lam < alpha, got lam={self.lam}, alpha={self.alpha}")
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")


def b4b_sigma(coverage: float, lam: float, alpha: float, beta: float) -> float:
    """sigma(c) = lam * (exp(ln(alpha / lam) * c / beta) - 1), c in percent (B4B ``get_stdev``).

    >>> b4b_sigma(0.0, 1e-7, 1.0, 80.0), round(b4b_sigma(80.0, 1e-7, 1.0, 80.0), 6)
    (0.0, 1.0)
    """
    return lam * (math.exp(math.log(alpha / lam) * coverage / beta) - 1.0)


class B4BNoise:
    """Per-account LSH coverage tracking plus coverage-calibrated Gaussian noise.

    Call as ``defense(embeddings, images, user=account)``; the service passes the account name
    (``per_user = True``), an in-process :class:`~encoder_audit.defenses.DefendedEncoder` uses one
    account, ``"default"``. Thread-safe.
    """

    name = "b4b"
    per_user = True

    def __init__(self, config: B4BConfig) -> None:
        self.config = config
        self._seed = secrets.randbits(63)
        self.generator = torch.Generator().manual_seed(secrets.randbits(63))
        self._planes: torch.Tensor | None = None
        self._buckets: dict[str, torch.Tensor] = {}
        self._queries: dict[str, int] = {}
        self._lock = threading.Lock()
        self._weights = 2 ** torch.arange(config.hyperplanes, dtype=torch.int64)

    def _hyperplanes(self, dim: int) -> torch.Tensor:
        if self._planes is None or self._planes.shape[0] != dim:
            g = torch.Generator().manual_seed(self._seed)
            c = self.config
            self._planes = torch.randn(dim, c.projections * c.hyperplanes, generator=g)
        return self._planes

    def bucket_ids(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, projections) bucket index of every embedding in every table."""
        c = self.config
        bits = (embeddings.float() @ self._hyperplanes(embeddings.shape[1])) > 0
        bits = bits.view(-1, c.projections, c.hyperplanes).long()
        return (bits * self._weights).sum(dim=2)

    def coverage(self, user: str = DEFAULT_USER) -> float:
        """The account's coverage in percent (0 for an unseen account)."""
        with self._lock:
            occupied = self._buckets.get(user)
            return 0.0 if occupied is None else self._coverage(occupied)

    def _coverage(self, occupied: torch.Tensor) -> float:
        return 100.0 * float(occupied.float().sum(dim=1).mean()) / (2**self.config.hyperplanes)

    def sigma(self, user: str = DEFAULT_USER) -> float:
        """The noise level the account's next answer gets (before the relative scaling)."""
        c = self.config
        return b4b_sigma(self.coverage(user), c.lam, c.alpha, c.beta)

    def accounts(self) -> dict[str, dict[str, float]]:
        """Per account: queries seen, coverage (%) and current sigma."""
        c = self.config
        with self._lock:
            covs = {u: self._coverage(b) for u, b in self._buckets.items()}
            return {
                u: {"queries": self._queries[u], "coverage": cov, "sigma": b4b_sigma(cov, c.lam, c.alpha, c.beta)}
                for u, cov in covs.items()
            }

    def __call__(self, embeddings: torch.Tensor, images: torch.Tensor, user: str = DEFAULT_USER) -> torch.Tensor:
        if embeddings.numel() == 0:
            return embeddings
        c = self.config
        ids = self.bucket_ids(embeddings)
        with self._lock:
            occupied = self._buckets.get(user)
            if occupied is None:
                occupied = self._buckets[user] = torch.zeros(c.projections, 2**c.hyperplanes, dtype=torch.bool)
                self._queries[user] = 0
            occupied[torch.arange(c.projections).expand_as(ids), ids] = True
            self._queries[user] += int(embeddings.shape[0])
            sigma = b4b_sigma(self._coverage(occupied), c.lam, c.alpha, c.beta)
            noise = torch.randn(embeddings.shape, generator=self.generator)
        if c.relative:
            sigma *= float(embeddings.norm(dim=1).mean()) / embeddings.shape[1] ** 0.5
        return embeddings + (noise * sigma).to(embeddings.dtype)


@register_defense(
    "b4b", config=B4BConfig, help="B4B-style noise growing with each account's LSH coverage of the embedding space"
)
def _b4b(config: B4BConfig) -> B4BNoise:
    return B4BNoise(config)
