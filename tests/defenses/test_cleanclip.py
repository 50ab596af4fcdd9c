"""CleanCLIP loss against a naive reference, EDA, fine-tuning; the poisoned-pair detector's scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder_audit.data import DatasetInfo, create_dataset
from encoder_audit.data.captions import make_paired, synonym_table
from encoder_audit.defenses.cleanclip import CleanCLIPConfig, cleanclip_finetune, cleanclip_loss, eda_variants
from encoder_audit.defenses.poison_detector import (
    DetectorConfig,
    detection_curve,
    detection_metrics,
    filter_pairs,
    score_pairs,
)
from encoder_audit.models.clip import CLIPConfig, build_clip
from encoder_audit.train import TrainConfig
from encoder_audit.train.clip import build_tokenizer


def naive_ce(anchor: torch.Tensor, keys: torch.Tensor, s: float) -> float:
    total = 0.0
    for a in range(len(anchor)):
        logits = [s * float(anchor[a] @ keys[b]) for b in range(len(keys))]
        total += -logits[a] + math.log(sum(math.exp(v) for v in logits))
    return total / len(anchor)


def test_cleanclip_loss_matches_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    i, t, ia, ta = (F.normalize(torch.randn(6, 5, generator=g), dim=1) for _ in range(4))
    s = 4.0
    clip = 0.5 * (naive_ce(i, t, s) + naive_ce(t, i, s))
    inmodal = 0.5 * (naive_ce(i, ia, s) + naive_ce(t, ta, s))
    assert float(cleanclip_loss(i, t, ia, ta, s, 1.0, 1.0)) == pytest.approx(clip + inmodal, abs=1e-5)
    assert float(cleanclip_loss(i, t, ia, ta, s, 0.3, 2.0)) == pytest.approx(0.3 * clip + 2 * inmodal, abs=1e-5)


def test_eda_variants_are_seeded_and_keep_content() -> None:
    rng = np.random.default_rng(0)
    v = eda_variants("a photo of a sneaker on a plain background.", 6, rng, 0.1)
    assert len(v) == 6 and len(set(v)) > 1
    assert v == eda_variants("a photo of a sneaker on a plain background.", 6, np.random.default_rng(0), 0.1)
    assert all(len(x.split()) >= 3 for x in v)


def test_cleanclip_finetune_changes_a_copy() -> None:
    ds = create_dataset("synthetic", "train", n=64, classes=4)
    pairs = make_paired(ds, seed=0)
    model = build_clip(
        build_tokenizer(pairs), in_channels=1, image_size=28, config=CLIPConfig(image_width=8, embed_dim=16)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = cleanclip_finetune(
        model,
        pairs,
        config=CleanCLIPConfig(),
        train=TrainConfig(epochs=1, batch_size=32, checkpoint_every=0),
        progress=False,
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert not tuned.training


def test_detector_metrics_and_filter() -> None:
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.05, 0.95, 0.4, 0.1, 0.2])
    poison = np.zeros(10, dtype=bool)
    poison[[1, 3, 6]] = True
    m = detection_metrics(scores, poison, remove_fraction=0.3)
    assert m["auroc"] == 1.0 and m["recall_at_flagged"] == 1.0 and m["precision_at_flagged"] == 1.0
    shuffled = detection_metrics(np.arange(10, dtype=float), poison, 0.3)
    assert shuffled["auroc"] < 1.0
    ds = create_dataset("synthetic", "train", n=10)
    kept, rows = filter_pairs(make_paired(ds), scores, 0.3)
    assert len(kept) == 7 and not set(rows) & {1, 3, 6}
    with pytest.raises(ValueError):
        DetectorConfig(method="magic")


def test_density_score_flags_duplicated_images() -> None:
    ds = create_dataset("synthetic", "train", n=60, classes=4)
    pairs = make_paired(ds, seed=0)
    dup = ds.images.clone()
    dup[50:] = dup[0]  # ten copies of one image: a targeted-poisoning signature
    from encoder_audit.data import ImageDataset
    from encoder_audit.data.captions import PairedDataset

    pairs = PairedDataset(ImageDataset(dup, ds.labels, ds.info), pairs.captions)
    model = build_clip(
        build_tokenizer(pairs), in_channels=1, image_size=28, config=CLIPConfig(image_width=8, embed_dim=16)
    )
    scores = score_pairs(model, pairs, DetectorConfig(method="density", k=5))
    truth = np.zeros(60, dtype=bool)
    truth[50:] = True
    assert detection_metrics(scores, truth, 10 / 60)["recall_at_flagged"] >= 0.9
    sim = score_pairs(model, pairs, DetectorConfig(method="similarity"))
    assert sim.shape == (60,) and np.isfinite(sim).all()


CIFAR = DatasetInfo(
    "cifar10", 3, 32, 10, ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
)
FASHION = DatasetInfo(
    "fashion-mnist",
    1,
    28,
    10,
    ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
)


def test_eda_replaces_whole_words_only() -> None:
    # the old substring replacement turned "catalogue" into "kittenalogue" in 8 of 200 draws
    rng = np.random.default_rng(0)
    table = synonym_table(CIFAR)
    variants = [v for _ in range(200) for v in eda_variants("the cat in the catalogue.", 1, rng, 0.3, table)]
    assert not any("kittenalogue" in v or "puppyalogue" in v for v in variants)
    assert sum("catalogue" in v for v in variants) > 100  # deletion may drop it, replacement never rewrites it
    assert any("kitten" in v or "house cat" in v for v in variants)  # the whole word "cat" is replaced


def test_eda_uses_the_current_datasets_table() -> None:
    rng = np.random.default_rng(0)
    table = synonym_table(FASHION)
    assert "cat" not in table and "sneaker" in table
    variants = eda_variants("a cat next to a sneaker", 100, rng, 0.2, table)
    assert not any("kitten" in v for v in variants)
    assert any(w in v for v in variants for w in ("trainer", "running shoe"))


def test_eda_p_is_honoured() -> None:
    caption = "a black and white picture of a sneaker on a plain background."
    table = synonym_table(FASHION)
    assert eda_variants(caption, 20, np.random.default_rng(0), 0.0, table) == [caption] * 20

    def mean_words(p: float) -> float:
        return float(np.mean([len(v.split()) for v in eda_variants(caption, 300, np.random.default_rng(1), p, table)]))

    assert mean_words(0.05) > mean_words(0.3) + 1.5  # deletion follows p: ~0.6 vs ~3.6 words of 12 dropped


def test_detection_curve_caps_recall_by_the_removal_budget() -> None:
    # a perfect detector: the 30 poisons score highest; flagging 10% of 200 pairs can recall 20 of 30 at most
    truth = np.zeros(200, dtype=bool)
    truth[:30] = True
    scores = truth.astype(float) + np.linspace(0, 0.5, 200)[::-1] * 0.1
    rows = {round(r["fraction"], 3): r for r in detection_curve(scores, truth, (0.1, 0.15, 0.3))}
    assert rows[0.1]["recall_at_flagged"] == pytest.approx(20 / 30) == rows[0.1]["max_recall"]
    assert rows[0.15]["recall_at_flagged"] == 1.0 and rows[0.15]["precision_at_flagged"] == 1.0
    assert rows[0.3]["recall_at_flagged"] == 1.0 and rows[0.3]["precision_at_flagged"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        detection_curve(scores, truth, (1.0,))
