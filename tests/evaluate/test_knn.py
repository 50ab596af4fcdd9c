"""Weighted cosine kNN (Wu et al., 2018) against a naive per-query reference."""

from __future__ import annotations

import math

import pytest
import torch

from encoder_audit.evaluate import knn_accuracy, knn_predict


def naive_knn_scores(
    train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, k: int, temperature: float, classes: int
) -> torch.Tensor:
    """For each query: cosine similarity to every training point, the k most similar vote exp(s / T)."""
    scores = torch.zeros(test.shape[0], classes, dtype=torch.float64)
    for i, q in enumerate(test.double()):
        sims = []
        for j, t in enumerate(train.double()):
            cos = torch.dot(q, t) / (q.norm() * t.norm())
            sims.append((cos.item(), j))
        sims.sort(key=lambda s: -s[0])
        for cos, j in sims[:k]:
            scores[i, int(labels[j])] += math.exp(cos / temperature)
    return scores


@pytest.mark.parametrize(("k", "temperature", "chunk"), [(1, 0.1, 1024), (5, 0.1, 3), (7, 0.5, 4), (50, 0.07, 2)])
def test_knn_scores_match_naive_reference(k: int, temperature: float, chunk: int) -> None:
    g = torch.Generator().manual_seed(k)
    train = torch.randn(30, 6, generator=g) * torch.rand(30, 1, generator=g) * 4  # norms must not matter
    labels = torch.randint(0, 4, (30,), generator=g)
    test = torch.randn(11, 6, generator=g)
    ours = knn_predict(train, labels, test, k=k, temperature=temperature, num_classes=4, chunk=chunk)
    ref = naive_knn_scores(train, labels, test, min(k, 30), temperature, 4)
    assert ours.shape == (11, 4)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4)


def test_num_classes_defaults_to_the_largest_label() -> None:
    train = torch.randn(10, 3)
    labels = torch.tensor([0, 2] * 5)
    assert knn_predict(train, labels, torch.randn(2, 3), k=3).shape == (2, 3)


def test_knn_accuracy_on_clusters_and_shuffled_control() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 5
    ytr, yte = torch.randint(0, 5, (200,), generator=g), torch.randint(0, 5, (100,), generator=g)
    xtr = centres[ytr] + torch.randn(200, 16, generator=g)
    xte = centres[yte] + torch.randn(100, 16, generator=g)
    assert knn_accuracy(xtr, ytr, xte, yte, k=20) == 1.0
    shuffled = ytr[torch.randperm(200, generator=g)]
    assert knn_accuracy(xtr, shuffled, xte, yte, k=20) < 0.45  # chance is 0.2


def test_test_labels_beyond_training_classes() -> None:
    # a test class never seen in training cannot be predicted, but must not crash the accuracy
    acc = knn_accuracy(torch.eye(2), torch.tensor([0, 1]), torch.eye(3)[:, :2], torch.tensor([0, 1, 2]), k=1)
    assert acc == pytest.approx(2 / 3)


@pytest.mark.parametrize(("k", "temperature"), [(0, 0.1), (5, 0.0), (5, -1.0)])
def test_knn_rejects_bad_parameters(k: int, temperature: float) -> None:
    with pytest.raises(ValueError):
        knn_predict(
            torch.randn(4, 2), torch.zeros(4, dtype=torch.long), torch.randn(1, 2), k=k, temperature=temperature
        )
