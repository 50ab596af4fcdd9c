"""Watermark: embedding makes the trigger point to the secret direction; verification is an exact
permutation test that flags the watermarked encoder and clears clean and independent ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.data import create_dataset
from encoder_audit.defenses.watermark import (
    WatermarkConfig,
    WatermarkKey,
    apply_trigger,
    embed_watermark,
    new_watermark_key,
    verify_watermark,
)
from encoder_audit.errors import CorruptFileError
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder


def _key(dim: int = 128, size: int = 8, seed: int = 0) -> WatermarkKey:
    g = torch.Generator().manual_seed(seed)  # test-only: real keys come from `secrets`
    patch = (torch.rand(1, 3, 3, generator=g) > 0.5).float()
    return WatermarkKey((1, size, size), patch, (size - 3, size - 3), F.normalize(torch.randn(dim, generator=g), dim=0))


def _net(seed: int, size: int = 8):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_encoder("cnn-small", 1, size)


def test_key_roundtrip_and_fresh_keys_differ(tmp_path) -> None:
    k = new_watermark_key((1, 8, 8), 16)
    assert k.patch.shape == (1, 3, 3) and abs(float(k.direction.norm()) - 1) < 1e-6
    path = k.save(tmp_path / "k.json")
    k2 = WatermarkKey.load(path)
    assert torch.equal(k2.patch, k.patch) and torch.allclose(k2.direction, k.direction) and k2.position == k.position
    assert not torch.allclose(new_watermark_key((1, 8, 8), 16).direction, k.direction)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(CorruptFileError):
        WatermarkKey.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        WatermarkKey.load(tmp_path / "missing.json")


def test_trigger_only_touches_patch() -> None:
    k = _key()
    x = torch.rand(4, 1, 8, 8)
    y = apply_trigger(x, k)
    assert torch.equal(y[:, :, :5, :], x[:, :, :5, :]) and torch.equal(y[:, :, 5:, 5:], k.patch.expand(4, 1, 3, 3))


def test_watermark_detected_on_owner_model_only() -> None:
    data = create_dataset("synthetic", n=256, size=8, seed=0)
    verify_images = create_dataset("synthetic", n=200, size=8, seed=5).float_images()
    key = _key()
    clean = _net(1)
    wm = embed_watermark(clean, key, data, WatermarkConfig(epochs=4, batch_size=64, lr=3e-3))
    v_wm = verify_watermark(LocalEncoder(wm), key, verify_images)
    v_clean = verify_watermark(LocalEncoder(clean), key, verify_images)
    v_other = verify_watermark(LocalEncoder(_net(2)), key, verify_images)
    assert v_wm.detected and v_wm.p_value <= 0.002 and v_wm.z > 5, v_wm
    assert not v_clean.detected and not v_other.detected, (v_clean, v_other)
    # watermarking kept clean behaviour close (utility term)
    with torch.no_grad():
        x = verify_images[:64]
        assert float(F.cosine_similarity(wm(x), clean(x), dim=1).mean()) > 0.65  # measured 0.75


def test_null_is_calibrated_for_independent_encoders() -> None:
    # 30 keys against an encoder that never saw them: the exact test rejects about alpha of the time.
    images = create_dataset("synthetic", n=32, size=8, seed=3).float_images()
    enc = LocalEncoder(_net(4))
    ps = [verify_watermark(enc, _key(seed=s), images, null_directions=99).p_value for s in range(30)]
    assert sum(p < 0.05 for p in ps) <= 5  # Binomial(30, 0.05): P(> 5) < 0.02
    assert 0.3 < sum(ps) / len(ps) < 0.7  # p-values roughly uniform
