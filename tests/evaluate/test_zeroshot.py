"""Zero-shot classification with template ensembling, on a hand-built embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.data import DatasetInfo, ImageDataset
from encoder_audit.evaluate.zeroshot import build_zeroshot_classifier, zeroshot_accuracy

CLASSES = ["cat", "dog", "bag"]


def hand_text(texts: list[str]) -> torch.Tensor:
    """Class word -> its basis vector; the template word 'blurry' adds a shared nuisance direction."""
    out = torch.zeros(len(texts), 4)
    for i, t in enumerate(texts):
        for k, c in enumerate(CLASSES):
            if c in t:
                out[i, k] = 1.0
        if "blurry" in t:
            out[i, 3] = 3.0
    return out


def test_ensembling_normalises_each_template_then_the_mean() -> None:
    clf = build_zeroshot_classifier(hand_text, CLASSES, ["a {}", "a blurry {}"])
    # template 1 -> e_k, template 2 -> (e_k + 3 e_3)/sqrt(10); mean then re-normalised.
    for k in range(3):
        e = torch.zeros(4)
        e[k] = 1
        b = e.clone()
        b[3] = 3
        expected = F.normalize((e + b / b.norm()) / 2, dim=0)
        assert torch.allclose(clf.weights[k], expected, atol=1e-6)
    assert torch.allclose(clf.weights.norm(dim=1), torch.ones(3))


def test_predict_rank_and_accuracy() -> None:
    clf = build_zeroshot_classifier(hand_text, CLASSES, ["a photo of a {}."])
    feats = torch.tensor([[5.0, 0, 0.1, 0], [0, 0.2, 0.9, 0], [0.1, 2.0, 1.5, 0]])
    assert clf.predict(feats).tolist() == [0, 2, 1]
    assert clf.rank_of(feats, 2).tolist() == [2, 1, 2]
    assert clf.rank_of(feats, torch.tensor([0, 1, 1])).tolist() == [1, 2, 1]
    assert clf.accuracy(feats, torch.tensor([0, 2, 2])) == pytest.approx(2 / 3)

    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    ds = ImageDataset(images, torch.tensor([0, 2, 2]), DatasetInfo("t", 1, 2, 3, tuple(CLASSES)))
    res = zeroshot_accuracy(clf, lambda x: feats[: len(x)], ds)
    assert res["top1"] == pytest.approx(2 / 3) and res["top3"] == 1.0
    assert res["confusion"][2] == [0, 1, 1]


def test_rejects_bad_templates() -> None:
    with pytest.raises(ValueError):
        build_zeroshot_classifier(hand_text, CLASSES, ["no slot"])
    with pytest.raises(ValueError):
        build_zeroshot_classifier(hand_text, [], ["a {}"])
