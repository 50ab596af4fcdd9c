"""Poisoned-pair detection for image-text training sets, scored against the poison manifest.

Two scores per (image, caption) pair, higher = more suspicious:

* ``similarity`` -- the pre-filter of Yang et al. (ICML 2023; research notes, poisoning.md Sec. 2.5):
  1 - cos(image, caption) under a *reference* CLIP model the defender trusts (theirs: a different
  pre-trained CLIP; here a small model trained on a trusted clean subset). Poisons pair an image with a
  caption that does not describe it.
* ``density`` -- a k-nearest-neighbour density score in the image-embedding space of the model trained
  on the (poisoned) data itself (in the spirit of Huang et al., ICLR 2025, who score local density with
  k = 16): the mean cosine similarity to the k nearest other images. Targeted poisons are repeated
  copies of one image and backdoor poisons collapse onto the trigger, so both sit in abnormally tight
  clusters. Needs no trusted data.

:func:`detection_metrics` scores either against the manifest (AUROC, recall and precision among the
top-q flagged pairs); :func:`detection_curve` does so over a sweep of removal fractions (a filter that
flags q of N pairs cannot recall more than qN / poisons of them, so a fixed q below the poisoned
fraction caps recall by construction); :func:`filter_pairs` drops the flagged pairs before retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.captions import PairedDataset
from ..models.clip import CLIPModel

__all__ = ["DetectorConfig", "detection_curve", "detection_metrics", "filter_pairs", "score_pairs"]


@dataclass(frozen=True)
class DetectorConfig:
    """Detector settings.

    Attributes:
        method: ``similarity`` (reference-model image-caption cosine) or ``density`` (kNN density).
        k: neighbours for ``density`` (Huang et al.: 16).
        remove_fraction: fraction of pairs flagged and removed (CleanCLIP's progressive filter: 0.02).
    """

    method: str = "similarity"
    k: int = 16
    remove_fraction: float = 0.02

    def __post_init__(self) -> None:
        if self.method not in ("similarity", "density"):
            raise ValueError(f"method must be 'similarity' or 'density', got {self.method!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not 0 < self.remove_fraction < 1:
            raise ValueError(f"remove_fraction must be in (0, 1), got {self.remove_fraction}")


@torch.no_grad()
def _embed_pairs(model: CLIPModel, paired: PairedDataset, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    imgs, txts = [], []
    for s in range(0, len(paired), batch):
        x = paired.images.float_images(slice(s, s + batch))
        imgs.append(model.encode_image(x).cpu())
        txts.append(model.encode_text(paired.captions[s : s + batch]).cpu())
    return torch.cat(imgs), torch.cat(txts)


@torch.no_grad()
def score_pairs(model: CLIPModel, paired: PairedDataset, config: DetectorConfig | None = None) -> np.ndarray:
    """Suspicion score per pair (higher = more likely poisoned).

    Args:
        model: the reference model (``similarity``) or the model trained on ``paired`` (``density``).
        paired: the training pairs to screen.
        config: method and k.
    """
    c = config or DetectorConfig()
    img, txt = _embed_pairs(model, paired)
    if c.method == "similarity":
        return (1.0 - (img * txt).sum(1)).numpy()
    z = F.normalize(img, dim=1)
    k = min(c.k, len(z) - 1)
    scores = torch.empty(len(z))
    for s in range(0, len(z), 2048):
        sim = z[s : s + 2048] @ z.T
        sim[torch.arange(sim.shape[0]), torch.arange(s, s + sim.shape[0])] = -2.0  # drop self
        scores[s : s + 2048] = sim.topk(k, dim=1).values.mean(1)
    return scores.numpy()


def detection_metrics(scores: np.ndarray, is_poison: np.ndarray, remove_fraction: float = 0.02) -> dict[str, float]:
    """AUROC and, among the top ``remove_fraction`` flagged pairs, recall and precision of the poisons."""
    from sklearn.metrics import roc_auc_score

    is_poison = np.asarray(is_poison, dtype=bool)
    n_flag = max(1, round(remove_fraction * len(scores)))
    flagged = np.argsort(-scores, kind="stable")[:n_flag]
    hits = int(is_poison[flagged].sum())
    npos = int(is_poison.sum())
    auroc = float(roc_auc_score(is_poison, scores)) if 0 < npos < len(scores) else float("nan")
    return {
        "auroc": auroc,
        "flagged": n_flag,
        "poisons": npos,
        "recall_at_flagged": hits / npos if npos else float("nan"),
        "precision_at_flagged": hits / n_flag,
    }


def detection_curve(
    scores: np.ndarray, is_poison: np.ndarray, fractions: list[float] | tuple[float, ...]
) -> list[dict[str, float]]:
    """Precision and recall of the poisons among the top-``q`` flagged pairs, for each removal fraction ``q``.

    Each row: ``fraction``, ``flagged``, ``poisons``, ``recall_at_flagged``, ``precision_at_flagged``,
    ``max_recall`` (``min(1, flagged / poisons)``: the most a perfect detector could recall at ``q``).
    """
    rows = []
    npos = int(np.asarray(is_poison, dtype=bool).sum())
    for q in sorted(set(float(f) for f in fractions)):
        if not 0 < q < 1:
            raise ValueError(f"removal fractions must be in (0, 1), got {q}")
        m = detection_metrics(scores, is_poison, q)
        m["fraction"] = q
        m["max_recall"] = min(1.0, m["flagged"] / npos) if npos else float("nan")
        rows.append(m)
    return rows


def filter_pairs(paired: PairedDataset, scores: np.ndarray, remove_fraction: float) -> tuple[PairedDataset, np.ndarray]:
    """Drop the top ``remove_fraction`` most suspicious pairs; returns (kept pairs, kept row indices)."""
    n_flag = round(remove_fraction * len(scores))
    order = np.argsort(-scores, kind="stable")
    keep = np.sort(order[n_flag:])
    return paired.subset(keep), keep
