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
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
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


def through_loader(ds: ImageDataset, input_shape: tuple[int, int, int]) -> ImageDataset:
    """``ds`` passed through the path an owner's image files take in :func:`load_image_folder`.

    Each image is encoded as PNG, decoded with PIL, converted to the victim's channels and resized with
    the same filter, so reference and owner images differ only in content (exchangeability), not in
    the decode / resize pipeline.
    """
    import io

    from PIL import Image

    c, h, w = input_shape
    arrays = []
    for img in ds.images:
        a = img.numpy()
        pil = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        buf.seek(0)
        with Image.open(buf) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
            b = np.asarray(im, dtype=np.uint8)
        arrays.append(b[None] if c == 1 else b.transpose(2, 0, 1))
    info = DatasetInfo(name=f"{ds.name} (through the folder loader)", channels=c, image_size=h, num_classes=0)
    return ImageDataset(images=torch.from_numpy(np.stack(arrays)), labels=None, info=info, split="reference")


def domain_shift(
    owner: torch.Tensor, reference: torch.Tensor, *, permutations: int = 200, seed: int = 0
) -> dict[str, float]:
    """Permutation test that owner and reference embeddings come from one distribution.

    Statistic: the mean over dimensions of the squared difference of the two sets' means, in units of
    the pooled per-dimension standard deviation. Its permutation p-value is small when the owner's images
    are from another domain than the references (then a "used" verdict may only be a domain shift).

    Returns:
        ``{"statistic", "p_value"}``.
    """
    x = torch.cat([owner, reference]).double()
    sd = x.std(0).clamp(min=1e-8)
    z = (x / sd).numpy()
    n = len(owner)

    def stat(idx: np.ndarray) -> float:
        return float(np.mean((z[idx[:n]].mean(0) - z[idx[n:]].mean(0)) ** 2))

    base = np.arange(len(z))
    observed = stat(base)
    rng = np.random.default_rng(seed)
    null = np.array([stat(rng.permutation(len(z))) for _ in range(permutations)])
    return {"statistic": observed, "p_value": float((1 + (null >= observed).sum()) / (1 + permutations))}


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
        reference: known non-members from the same distribution, ideally loaded the same way as the
            owner's images (:func:`through_loader`); at least 20, hundreds are better.
        config: levels and features.
        attack: a fitted attack whose scores replace the EncoderMI-T statistic.
        seed: seed of the augmented views.

    Returns:
        ``verdict`` ("used" / "no evidence"), ``p_value`` of the set-level test, ``alpha`` (the
        false-positive rate the verdict is held to), the direction of the difference, per-image scores /
        p-values / flags with the smallest attainable per-image p, ``auc`` of owner vs. reference, a
        domain-shift check and query usage.
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
    min_p = 1.0 / (1 + n_ref)
    needed = int(np.ceil(1.0 / c.image_alpha - 1 - 1e-9))
    flagged = p_img <= c.image_alpha
    test = stats.mannwhitneyu(s_owner, s_ref, alternative="greater")
    p_set = float(test.pvalue)
    labels = np.r_[np.ones(len(s_owner)), np.zeros(n_ref)]
    auc = evaluate_scores(np.r_[s_owner, s_ref], labels)["auc"]
    direction = "higher" if auc > 0.5 else ("lower" if auc < 0.5 else "neither higher nor lower")
    verdict = "used" if p_set <= c.alpha else "no evidence"
    expected = c.image_alpha * len(s_owner)
    shift = domain_shift(p_owner.clean(), p_ref.clean(), seed=seed)
    warnings_: list[str] = []
    if min_p > c.image_alpha:
        warnings_.append(
            f"with {n_ref} reference images the smallest attainable per-image p-value is {min_p:.3g} > "
            f"{c.image_alpha}: no single image can be flagged; at least {needed} references are needed"
        )
    if shift["p_value"] <= 0.01:
        warnings_.append(
            f"the owner's images and the references differ in embedding distribution (permutation p = "
            f"{shift['p_value']:.3g}): they may come from different domains, and then a difference in scores "
            "measures the domain, not membership"
        )
    explanation = (
        f"{verdict.upper()}: the {len(s_owner)} images score {direction} than {n_ref} reference non-members "
        f"(AUC {auc:.3f}); one-sided Mann-Whitney p-value {p_set:.3g} against the level alpha = {c.alpha} "
        + ("(significant: " if verdict == "used" else "(not significant: ")
        + f"a folder of non-members is called 'used' with probability at most alpha). "
        f"{int(flagged.sum())} images individually flagged at p <= {c.image_alpha} ({expected:.1f} expected by "
        f"chance; smallest attainable per-image p {min_p:.3g})." + "".join(f" Warning: {w}." for w in warnings_)
    )
    return {
        "verdict": verdict,
        "p_value": p_set,
        "alpha": c.alpha,
        "direction": direction,
        "auc_vs_reference": auc,
        "statistic": statistic,
        "n_images": len(s_owner),
        "n_reference": n_ref,
        "flagged": int(flagged.sum()),
        "flagged_expected_by_chance": expected,
        "image_alpha": c.image_alpha,
        "min_image_p_value": min_p,
        "references_needed_for_image_alpha": needed,
        "domain_shift": shift,
        "warnings": warnings_,
        "image_scores": s_owner.tolist(),
        "image_p_values": p_img.tolist(),
        "image_names": list(getattr(owner, "file_names", [str(i) for i in owner.indices])),  # type: ignore[union-attr]
        "reference_scores": s_ref.tolist(),
        "usage": query_usage(counter, before=before),
        "explanation": explanation,
        "assumption": "reference images are non-members drawn from the same distribution as the audited "
        "images and loaded through the same decode / resize path",
    }


def plot_scores(result: dict[str, Any], path: str | Path) -> Path:
    """Histogram of the owner's and the references' scores (the data-owner audit's figure)."""
    from matplotlib.figure import Figure

    from ...io import atomic_write

    fig = Figure(figsize=(5.0, 3.4), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    owner, ref = np.asarray(result["image_scores"]), np.asarray(result["reference_scores"])
    bins = np.histogram_bin_edges(np.r_[owner, ref], bins=30).tolist()
    ax.hist(ref, bins=bins, alpha=0.6, density=True, label=f"reference non-members ({len(ref)})")
    ax.hist(owner, bins=bins, alpha=0.6, density=True, label=f"owner's images ({len(owner)})")
    ax.set_xlabel(result["statistic"], fontsize=8)
    ax.set_ylabel("density")
    ax.set_title(f"{result['verdict']}: p-value {result['p_value']:.3g} (alpha {result['alpha']})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


def owner_audit_job(
    victim: Encoder,
    folder: str | Path,
    reference: ImageDataset,
    run: Any,
    config: OwnerAuditConfig | None = None,
    *,
    attack: MembershipAttack | None = None,
    seed: int = 0,
    max_reference: int | None = None,
) -> dict[str, Any]:
    """``encoder-audit membership --audit FOLDER``: load, test, write ``results.json``, ``env.json``, the plot.

    The references go through the same loader as the owner's files (:func:`through_loader`).
    """
    from ...data.base import subsample

    owner = load_image_folder(folder, victim.input_shape)
    ref = through_loader(subsample(reference, max_reference, seed), victim.input_shape)
    result = audit_images(victim, owner, ref, config, attack=attack, seed=seed)
    run.save_config({"command": "membership --audit", "folder": str(folder), "reference": reference.name})
    run.save_env(seed)
    plot = plot_scores(result, run.file("owner_scores.png"))
    result["figure"] = str(plot)
    run.save_results(result, kind="membership-owner-audit")
    return result
