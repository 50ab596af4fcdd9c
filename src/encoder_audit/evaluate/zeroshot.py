"""Zero-shot classification with prompt-template ensembling (CLIP, Radford et al. 2021, Sec. 3.1.4).

For each class k, embed every prompt ``t.format(name_k)``, L2-normalise each, average, and
re-normalise: ``w_k``. An image is classified as ``argmax_k <f(x)/|f(x)|, w_k>``. This is the recipe of
CLIP's notebook and of the CleanCLIP and RoCLIP evaluators (research notes, poisoning.md Sec. 1.2).

The classifier is built from any ``encode_text(list[str]) -> (N, D)`` callable, so it can be tested
on a hand-built embedding and applied to any image embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.base import ImageDataset
from ..data.captions import ZEROSHOT_TEMPLATES
from ..models.clip import CLIPModel

__all__ = ["ZeroShotClassifier", "build_zeroshot_classifier", "clip_zeroshot_classifier", "zeroshot_accuracy"]


@dataclass
class ZeroShotClassifier:
    """Class weights ``w`` (K, D), unit rows, and the class names they stand for."""

    weights: torch.Tensor
    class_names: tuple[str, ...]

    def logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """Cosine similarity (N, K) of normalised image features to every class weight."""
        return F.normalize(image_features.float(), dim=-1) @ self.weights.T

    def predict(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.logits(image_features).argmax(dim=1)

    def rank_of(self, image_features: torch.Tensor, label: int | torch.Tensor) -> torch.Tensor:
        """1-based rank of ``label`` among the classes for every image (1 = top-1)."""
        logits = self.logits(image_features)
        lab = torch.as_tensor(label).expand(logits.shape[0]) if torch.as_tensor(label).ndim == 0 else label
        own = logits.gather(1, torch.as_tensor(lab).long().view(-1, 1))
        return (logits > own).sum(1) + 1

    def accuracy(self, image_features: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.predict(image_features) == labels).float().mean())


@torch.no_grad()
def build_zeroshot_classifier(
    encode_text: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str] = ZEROSHOT_TEMPLATES,
) -> ZeroShotClassifier:
    """Ensemble ``templates`` per class into one unit weight vector per class.

    Raises:
        ValueError: no classes or no templates, or a template without ``{}``.
    """
    if not class_names or not templates:
        raise ValueError("zero-shot classification needs at least one class name and one template")
    if any("{}" not in t for t in templates):
        raise ValueError("every zero-shot template needs one '{}' for the class name")
    rows = []
    for name in class_names:
        emb = F.normalize(encode_text([t.format(name) for t in templates]).float(), dim=-1)
        rows.append(F.normalize(emb.mean(0), dim=-1))
    return ZeroShotClassifier(torch.stack(rows).cpu(), tuple(class_names))


def clip_zeroshot_classifier(
    model: CLIPModel, class_names: Sequence[str], templates: Sequence[str] = ZEROSHOT_TEMPLATES
) -> ZeroShotClassifier:
    """A :class:`ZeroShotClassifier` from a CLIP model's text tower (model left in its previous mode)."""
    was = model.training
    model.eval()
    try:
        return build_zeroshot_classifier(lambda t: model.encode_text(t).cpu(), class_names, templates)
    finally:
        model.train(was)


@torch.no_grad()
def zeroshot_accuracy(
    classifier: ZeroShotClassifier,
    embed: Callable[[torch.Tensor], torch.Tensor],
    dataset: ImageDataset,
    *,
    batch_size: int = 1024,
) -> dict[str, float | list[list[int]]]:
    """Top-1 / top-3 accuracy and confusion matrix of zero-shot predictions on a labelled dataset."""
    if dataset.labels is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels")
    feats = torch.cat([embed(x) for x, _, _ in dataset.batches(batch_size)])
    logits = classifier.logits(feats)
    pred = logits.argmax(1)
    top3 = logits.topk(min(3, logits.shape[1]), dim=1).indices
    y = dataset.labels
    k = len(classifier.class_names)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (y.numpy(), pred.numpy()), 1)
    return {
        "top1": float((pred == y).float().mean()),
        "top3": float((top3 == y.view(-1, 1)).any(1).float().mean()),
        "confusion": conf.tolist(),
    }
