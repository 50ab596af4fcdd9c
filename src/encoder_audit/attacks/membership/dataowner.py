"""Data-owner audit: "was my folder of images used to pre-train this encoder?", with a calibrated answer.

EncoderMI's first use case (Liu et al., CCS 2021, abstract): "a data owner [can] audit whether its
(public) data was used to pre-train an image encoder without its authorization". A bare member /
non-member guess per image is not evidence, so the audit is a hypothesis test:

* statistic: a membership score per image, by default EncoderMI-T's mean pairwise view similarity
  (needs no shadow encoder); any fitted :class:`MembershipAttack` can be used instead;
* null hypothesis: the owner's images are exchangeable with a *reference set of non-members* from the
  same distribution (images the owner knows were not used, e.g. created after the encoder's release);
* set-level test: one-sided Mann-Whitney U test that the owner's scores are stochastically larger. Its
  p-value is the false-positive rate of the verdict: the probability of evidence at least this strong
  if the folder had not been used;
* per image: the empirical p-value ``(1 + #{reference >= s}) / (1 + n_ref)``; images with p <= alpha
  are flagged, and ``alpha * n`` of them are expected by chance alone.

The calibration holds only if the reference images come from the same distribution as the owner's
(otherwise a distribution shift reads as membership; Das et al., arXiv 2406.16201).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from ...data.base import DatasetInfo, ImageDataset
from ...errors import UserError
from ...victim import Encoder
from ..base import metered, query_usage
from .base import MembershipAttack
from .encodermi_t import mean_similarity
from .features import FeatureConfig, VictimProbe
from .metrics import evaluate_scores

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "OwnerAuditConfig", "audit_images", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class OwnerAuditConfig:
    """Attributes:
    alpha: false-positive rate of the set-level verdict (default 1%).
    image_alpha: per-image flagging level.
    n_views, similarity, views: EncoderMI-T features (10 cosine views of the encodermi recipe).
    """

    alpha: float = 0.01
    image_alpha: float = 0.01
    n_views: int = 10
    similarity: str = "cosine"
    views: str = "encodermi"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.image_alpha < 1:
            raise ValueError("alpha and image_alpha must be in (0, 1)")
        FeatureConfig(self.n_views, self.similarity, self.views)


def load_image_folder(path: str | Path, input_shape: tuple[int, int, int], *, limit: int | None = None) -> ImageDataset:
    """Every image file under ``path`` (recursively, sorted), converted to ``input_shape`` as uint8.

    Raises:
        UserError: not a folder, or no readable image in it.
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise UserError(f"audit folder {root} does not exist or is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if limit is not None:
        files = files[:limit]
    c, h, w = input_shape
    arrays, names = [], []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable image %s: %s", f, exc)
            continue
        arrays.append(a[None] if c == 1 else a.transpose(2, 0, 1))
        names.append(str(f.relative_to(root)))
    if not arrays:
        raise UserError(f"no readable images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    images = torch.from_numpy(np.stack(arrays))
    info = DatasetInfo(name=f"imagefolder:{root}", channels=c, image_size=h, num_classes=0)
    ds = ImageDataset(images=images, labels=None, info=info, split="audit")
    ds.file_names = names  # type: ignore[attr-defined]
    return ds


def audit_images(
    victim: Encoder,
    owner: ImageDataset,
    reference: ImageDataset,
    config: OwnerAuditConfig | None = None,
    *,
    attack: MembershipAttack | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Test whether ``owner``'s images were in ``victim``'s pre-training set.

    Args:
        victim: the encoder.
        owner: the data owner's images.
        reference: known non-members from the same distribution (at least 20; hundreds are better).
        config: levels and features.
        attack: a fitted attack whose scores replace the EncoderMI-T statistic.
        seed: seed of the augmented views.

    Returns:
        ``verdict`` ("used" / "no evidence"), ``p_value`` (= the false-positive rate the verdict implies),
        per-image scores / p-values / flags, ``auc`` of owner vs. reference, and query usage.
    """
    c = config or OwnerAuditConfig()
    if len(reference) < 20:
        raise ValueError(f"need at least 20 reference non-members for a calibrated verdict, got {len(reference)}")
    counter = metered(victim)
    before = counter.usage()
    feats = FeatureConfig(c.n_views, c.similarity, c.views)
    p_owner = VictimProbe(counter, owner, feats, seed=seed)
    p_ref = VictimProbe(counter, reference, feats, seed=seed + 1)
    if attack is None:
        s_owner = mean_similarity(p_owner.similarities())
        s_ref = mean_similarity(p_ref.similarities())
        statistic = f"EncoderMI-T mean pairwise {c.similarity} similarity of {c.n_views} views"
    else:
        s_owner, s_ref = attack.score_probe(p_owner), attack.score_probe(p_ref)
        statistic = f"{attack.name} score"
    n_ref = len(s_ref)
    p_img = (1 + (s_ref[None, :] >= s_owner[:, None]).sum(axis=1)) / (1 + n_ref)
    flagged = p_img <= c.image_alpha
    test = stats.mannwhitneyu(s_owner, s_ref, alternative="greater")
    p_set = float(test.pvalue)
    labels = np.r_[np.ones(len(s_owner)), np.zeros(n_ref)]
    auc = evaluate_scores(np.r_[s_owner, s_ref], labels)["auc"]
    verdict = "used" if p_set <= c.alpha else "no evidence"
    expected = c.image_alpha * len(s_owner)
    explanation = (
        f"{verdict.upper()}: the {len(s_owner)} images score higher than {n_ref} reference non-members "
        f"with one-sided Mann-Whitney p = {p_set:.3g} (AUC {auc:.3f}); "
        + (
            f"a folder of non-members would get evidence this strong with probability {p_set:.3g} "
            f"(verdict threshold alpha = {c.alpha})."
            if verdict == "used"
            else f"not significant at the {c.alpha:.0%} false-positive rate."
        )
        + f" {int(flagged.sum())} images individually flagged at p <= {c.image_alpha} "
        f"({expected:.1f} expected by chance)."
    )
    return {
        "verdict": verdict,
        "p_value": p_set,
        "false_positive_rate": p_set,
        "alpha": c.alpha,
        "auc_vs_reference": auc,
        "statistic": statistic,
        "n_images": len(s_owner),
        "n_reference": n_ref,
        "flagged": int(flagged.sum()),
        "flagged_expected_by_chance": expected,
        "image_scores": s_owner.tolist(),
        "image_p_values": p_img.tolist(),
        "image_names": list(getattr(owner, "file_names", [str(i) for i in owner.indices])),  # type: ignore[union-attr]
        "reference_scores": s_ref.tolist(),
        "usage": query_usage(counter, before=before),
        "explanation": explanation,
        "assumption": "reference images are non-members drawn from the same distribution as the audited images",
    }
