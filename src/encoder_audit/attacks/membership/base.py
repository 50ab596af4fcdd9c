"""Base class of membership-inference attacks: one verb, ``infer(victim, members, nonmembers) -> MIAScores``.

An attack is *fitted* once on a :class:`~encoder_audit.attacks.membership.shadow.Shadow` (a shadow
encoder with known members and non-members, as in EncoderMI and Shokri et al.) and then *scores*
images queried from the victim. Scores are per sample and higher means "more likely a member"; the
decision threshold is chosen on the shadow, never on the evaluation labels.

Victims are reached only through the :class:`~encoder_audit.victim.Encoder` protocol, via a
:class:`~encoder_audit.attacks.membership.features.VictimProbe` that queries each image set once
and meters every image.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...data.base import ImageDataset
from ...io import atomic_write
from ...victim import Encoder
from .features import FeatureConfig, VictimProbe
from .metrics import evaluate_scores

if TYPE_CHECKING:
    from .shadow import Shadow

log = logging.getLogger(__name__)

__all__ = ["MIAScores", "MembershipAttack", "save_scores"]


@dataclass
class MIAScores:
    """Per-sample scores of one attack on a labelled member / non-member set.

    Attributes:
        attack: attack name.
        scores: (N,) membership scores, higher = member.
        labels: (N,) 1 for members, 0 for non-members.
        threshold: decision threshold chosen on the shadow (``score >= threshold`` = member).
        queries_per_image: victim images each scored input costs (per view draw).
        seconds: wall time of scoring (including queries not already cached).
        per_draw: (draws, N) scores of each independent draw of views (``scores`` is their mean);
            empty when the attack was scored once.
    """

    attack: str
    scores: np.ndarray
    labels: np.ndarray
    threshold: float
    queries_per_image: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    per_draw: list[np.ndarray] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """:func:`~encoder_audit.attacks.membership.metrics.evaluate_scores` at the shadow threshold."""
        return evaluate_scores(self.scores, self.labels, self.threshold)


def save_scores(results: list[MIAScores], path: str | Path) -> Path:
    """Write every attack's raw scores, labels and thresholds to one ``.npz`` (metrics can be recomputed).

    Keys: ``labels`` (shared), ``<attack>/scores``, ``<attack>/threshold``.
    """
    arrays: dict[str, np.ndarray] = {}
    for r in results:
        if "labels" in arrays and not np.array_equal(arrays["labels"], r.labels):
            arrays[f"{r.attack}/labels"] = np.asarray(r.labels, dtype=np.int8)
        arrays.setdefault("labels", np.asarray(r.labels, dtype=np.int8))
        arrays[f"{r.attack}/scores"] = np.asarray(r.scores, dtype=np.float64)
        arrays[f"{r.attack}/threshold"] = np.asarray(r.threshold, dtype=np.float64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]

    return atomic_write(Path(path), write)


class MembershipAttack(ABC):
    """A membership-inference attack against an encoder.

    Subclasses are registered with ``@register_attack("membership", name, config=...)`` (which sets
    ``name`` and ``config_class``), set ``source`` (the paper the method comes from) and implement
    :meth:`fit` and :meth:`score_probe`.

    Capabilities (class attributes, read by the audit instead of checking names):

    - ``needs_shadow``: it is fitted on a shadow encoder's members / non-members;
    - ``needs_labels``: it needs class labels of the queried images;
    - ``needs_reference``: it needs the shadow's labelled reference images;
    - ``uses_views``: it queries augmented views (and so takes ``n_views`` / ``views`` / ``similarity``);
    - ``white_box``: it needs the victim's weights (none of these does);
    - ``diagnostic``: it checks the split, not the encoder (the blind baseline), so it is never the
      strongest attack;
    - ``query_cost(n)``: victim images charged for scoring ``n`` images once.

    Args:
        features: how views are queried (shared with other attacks through a :class:`VictimProbe`).
        seed: seed of the attack's own randomness (classifier initialisation, batch order).
    """

    name: ClassVar[str] = ""
    source: ClassVar[str] = ""
    config_class: ClassVar[type | None] = None
    needs_shadow: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    needs_reference: ClassVar[bool] = False
    uses_views: ClassVar[bool] = False
    white_box: ClassVar[bool] = False
    diagnostic: ClassVar[bool] = False

    def __init__(self, features: FeatureConfig | None = None, *, seed: int = 0) -> None:
        self.features = features or FeatureConfig()
        self.seed = seed
        self.threshold: float | None = None

    @property
    def queries_per_image(self) -> int:
        """Victim images needed to score one input."""
        return self.features.n_views

    def query_cost(self, n: int) -> int:
        """Victim images charged for scoring ``n`` images once (one draw of views)."""
        return n * self.queries_per_image

    @abstractmethod
    def fit(self, shadow: Shadow) -> MembershipAttack:
        """Learn the classifier / threshold from the shadow encoder's members and non-members."""

    @abstractmethod
    def score_probe(self, probe: VictimProbe) -> np.ndarray:
        """(N,) scores of the probe's images (higher = member)."""

    def score(self, victim: Encoder, images: ImageDataset, *, seed: int = 0) -> np.ndarray:
        """Score ``images`` against ``victim`` (queries through a fresh probe)."""
        return self.score_probe(VictimProbe(victim, images, self.features, seed=seed))

    def infer(
        self,
        victim: Encoder | None = None,
        members: ImageDataset | None = None,
        nonmembers: ImageDataset | None = None,
        *,
        probes: tuple[VictimProbe, VictimProbe] | None = None,
        seed: int = 0,
    ) -> MIAScores:
        """Score members and non-members of ``victim``.

        Either pass ``victim, members, nonmembers`` or ready ``probes=(member_probe,
        nonmember_probe)`` shared with other attacks (queries are then made once for all).

        Returns:
            :class:`MIAScores` with labels 1 for members and 0 for non-members.

        Raises:
            RuntimeError: the attack was not fitted.
        """
        if self.threshold is None:
            raise RuntimeError(f"{self.name}: call fit(shadow) before infer()")
        if probes is None:
            if victim is None or members is None or nonmembers is None:
                raise ValueError("pass victim, members and nonmembers, or probes")
            probes = (
                VictimProbe(victim, members, self.features, seed=seed),
                VictimProbe(victim, nonmembers, self.features, seed=seed + 1),
            )
        t0 = time.perf_counter()
        s_in, s_out = self.score_probe(probes[0]), self.score_probe(probes[1])
        seconds = time.perf_counter() - t0
        scores = np.concatenate([s_in, s_out]).astype(np.float64)
        labels = np.concatenate([np.ones(len(s_in), np.int8), np.zeros(len(s_out), np.int8)])
        return MIAScores(self.name, scores, labels, float(self.threshold), self.queries_per_image, seconds)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "queries_per_image": self.queries_per_image}
