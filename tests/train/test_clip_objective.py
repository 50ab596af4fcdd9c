"""Symmetric InfoNCE against a naive reference, and the clip objective inside the shared loop."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from encoder_audit.data import create_dataset
from encoder_audit.data.captions import make_paired
from encoder_audit.models.clip import MAX_LOGIT_SCALE
from encoder_audit.train import TrainConfig, create_objective
from encoder_audit.train.clip import CLIPTrainConfig, clip_loss, train_clip


def naive_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-anchor softmax written with explicit loops."""
    n = img.shape[0]
    img = img / img.norm(dim=1, keepdim=True)
    txt = txt / txt.norm(dim=1, keepdim=True)
    total_i, total_t = 0.0, 0.0
    for a in range(n):
        num_i = math.exp(scale * float(img[a] @ txt[a]))
        den_i = sum(math.exp(scale * float(img[a] @ txt[b])) for b in range(n))
        num_t = math.exp(scale * float(txt[a] @ img[a]))
        den_t = sum(math.exp(scale * float(txt[a] @ img[b])) for b in range(n))
        total_i += -math.log(num_i / den_i)
        total_t += -math.log(num_t / den_t)
    return torch.tensor(0.5 * (total_i + total_t) / n)


def test_clip_loss_matches_naive_reference() -> None:
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    for scale in (1.0, 3.0, 14.3):
        got = clip_loss(img, txt, scale)
        assert torch.allclose(got, naive_clip_loss(img, txt, scale), atol=1e-5)


def test_clip_loss_is_low_for_aligned_pairs_and_has_grad() -> None:
    z = F.normalize(torch.randn(16, 8), dim=1)
    aligned = clip_loss(z, z, 20.0)
    shuffled = clip_loss(z, z[torch.randperm(16)], 20.0)
    assert aligned < shuffled
    s = torch.tensor(2.0, requires_grad=True)
    clip_loss(z, z, s.exp()).backward()
    assert s.grad is not None and s.grad < 0  # sharper logits help aligned pairs


def test_objective_uses_row_ids_and_clamps_temperature() -> None:
    ds = create_dataset("synthetic", "train", n=32)
    p = make_paired(ds, seed=0)
    enc_cfg = CLIPTrainConfig(image_width=8, embed_dim=16)
    from encoder_audit.models import create_encoder

    obj = create_objective("clip", create_encoder("cnn-small", 1, 28, width=8), enc_cfg, captions=p.captions)
    rows = torch.tensor([0, 5, 9, 31])
    loss = obj(ds.float_images(rows), rows, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():
        obj.model.logit_scale.fill_(9.0)
    obj.after_step()
    assert math.isclose(float(obj.model.logit_scale), MAX_LOGIT_SCALE, rel_tol=1e-6)


def test_train_clip_tiny_run_lowers_loss(tmp_path) -> None:
    from encoder_audit.runs import RunDir

    ds = create_dataset("synthetic", "train", n=256, classes=4)
    p = make_paired(ds, seed=0)
    run = RunDir.create("clip", out=tmp_path / "run")
    model, result = train_clip(
        p,
        config=CLIPTrainConfig(image_width=8, embed_dim=16),
        train=TrainConfig(epochs=4, batch_size=64, lr=3e-3, checkpoint_every=0),
        run=run,
        progress=False,
    )
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert (tmp_path / "run" / "clip.safetensors").is_file() and (tmp_path / "run" / "encoder.safetensors").is_file()
    assert not model.training
