"""evaluate_encoder, extract_features and the random-init baseline on tiny synthetic data."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.data import create_dataset
from encoder_audit.evaluate import EvalConfig, evaluate_encoder, extract_features, random_init_baseline
from encoder_audit.victim import LocalEncoder, QueryCounter


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    train = create_dataset("synthetic", "train", n=120, size=16, channels=1, classes=3, seed=0)
    test = create_dataset("synthetic", "test", n=60, size=16, channels=1, classes=3, seed=0)
    return train, test


def test_extract_features_keeps_order_and_counts(data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    enc = QueryCounter(random_init_baseline("cnn-small", (1, 16, 16), seed=0))
    feats = extract_features(enc, train, batch_size=50)
    assert feats.shape == (120, 128)
    torch.testing.assert_close(feats[57:60], enc.encoder.embed(train.float_images(slice(57, 60))))
    assert enc.images == 120 and enc.calls == 3  # batches of 50, 50, 20
    empty = train.subset([])
    assert extract_features(enc, empty).shape == (0, 128)


def test_evaluate_encoder_keys_and_caps(data) -> None:  # type: ignore[no-untyped-def]
    train, test = data
    enc = random_init_baseline("cnn-small", (1, 16, 16), seed=0)
    res = evaluate_encoder(enc, train, test, EvalConfig(knn_k=20, max_train=100, max_test=40))
    assert set(res) == {"knn", "linear", "n_train", "n_test", "seconds"}
    assert res["n_train"] == 100 and res["n_test"] == 40
    assert 0 <= res["knn"] <= 1 and 0 <= res["linear"] <= 1 and res["seconds"] >= 0
    # synthetic classes are easy: even a random encoder is far above chance (1/3)
    assert res["linear"] > 0.6 and res["knn"] > 0.6
    again = evaluate_encoder(enc, train, test, EvalConfig(knn_k=20, max_train=100, max_test=40))
    assert (again["knn"], again["linear"]) == (res["knn"], res["linear"])


def test_evaluate_encoder_needs_labels(data) -> None:  # type: ignore[no-untyped-def]
    train, test = data
    unlabeled = type(train)(images=train.images, labels=None, info=train.info)
    enc = random_init_baseline("cnn-small", (1, 16, 16))
    with pytest.raises(ValueError, match="labelled"):
        evaluate_encoder(enc, unlabeled, test)


def test_random_init_baseline_is_seeded_and_leaves_global_rng_alone() -> None:
    x = torch.rand(3, 1, 16, 16)
    torch.manual_seed(123)
    expected = torch.rand(2)
    torch.manual_seed(123)
    a = random_init_baseline("cnn-small", (1, 16, 16), seed=1)
    assert torch.equal(torch.rand(2), expected)
    b = random_init_baseline("cnn-small", (1, 16, 16), seed=1)
    c = random_init_baseline("cnn-small", (1, 16, 16), seed=2)
    assert isinstance(a, LocalEncoder) and a.input_shape == (1, 16, 16)
    assert torch.equal(a.embed(x), b.embed(x))
    assert not torch.allclose(a.embed(x), c.embed(x))
    norm = random_init_baseline("cnn-small", (1, 16, 16), seed=1, mean=(0.2,), std=(0.3,))
    assert norm.net.normalization()["mean"] == pytest.approx([0.2])
    assert norm.net.normalization()["std"] == pytest.approx([0.3])


@pytest.mark.parametrize("kwargs", [{"knn_k": 0}, {"knn_temperature": 0.0}, {"max_train": 5}, {"max_test": 0}])
def test_eval_config_validation(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        EvalConfig(**kwargs)
