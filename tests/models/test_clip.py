"""The CLIP-style dual encoder: shapes, logit-scale clamp, Encoder adaptor, safetensors round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch

from encoder_audit.data.captions import WordTokenizer
from encoder_audit.errors import CheckpointError
from encoder_audit.models.clip import CLIPConfig, build_clip, load_clip, save_clip
from encoder_audit.models.text import TextConfig, TextEncoder
from encoder_audit.victim import Encoder


@pytest.fixture
def model():
    tok = WordTokenizer.build(["a photo of a bag.", "a small coat"])
    return build_clip(tok, in_channels=1, image_size=28, config=CLIPConfig(image_width=8, embed_dim=16))


def test_shapes_normalisation_and_scale(model) -> None:
    model.eval()
    zi = model.encode_image(torch.rand(3, 1, 28, 28))
    zt = model.encode_text(["a bag", "a coat"])
    assert zi.shape == (3, 16) and zt.shape == (2, 16)
    assert torch.allclose(zi.norm(dim=1), torch.ones(3), atol=1e-5)
    assert model.encode_image(torch.rand(3, 1, 28, 28), normalize=False).norm(dim=1).ne(1).any()
    assert math.isclose(float(model.scale().detach()), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert math.isclose(float(model.scale().detach()), 100.0, rel_tol=1e-5)
    model.clamp_logit_scale()
    assert math.isclose(float(model.logit_scale), math.log(100), rel_tol=1e-6)


def test_image_encoder_protocol(model) -> None:
    enc = model.image_encoder()
    assert isinstance(enc, Encoder)
    out = enc.embed(torch.rand(5, 3, 32, 32))  # adapted to (1, 28, 28)
    assert out.shape == (5, 16)
    raw = model.image_encoder(projected=False)
    assert raw.embed(torch.rand(2, 1, 28, 28)).shape == (2, model.visual.feature_dim)


def test_text_tower_padding_is_ignored() -> None:
    tower = TextEncoder(TextConfig(vocab_size=10, context_length=6, width=8, heads=2)).eval()
    a = torch.tensor([[2, 5, 6, 3, 0, 0]])
    b = torch.tensor([[2, 5, 6, 3, 0, 0]])
    b_more_pad = torch.tensor([[2, 5, 6, 3, 0, 0]])
    assert torch.allclose(tower(a), tower(b)) and torch.allclose(tower(a), tower(b_more_pad))
    assert torch.isfinite(tower(torch.zeros(1, 6, dtype=torch.long))).all()
    with pytest.raises(ValueError):
        tower(torch.zeros(1, 7, dtype=torch.long))


def test_save_load_round_trip_and_tamper(model, tmp_path) -> None:
    model.eval()
    path = save_clip(tmp_path / "m", model, training={"note": "t"})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded, meta = load_clip(path)
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(loaded.encode_image(x), model.encode_image(x))
    assert torch.allclose(loaded.encode_text(["a bag"]), model.encode_text(["a bag"]))
    assert loaded.tokenizer.vocab == model.tokenizer.vocab and meta["training"]["note"] == "t"
    meta["weights_sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="sha256"):
        load_clip(path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_clip(tmp_path / "m.pt")
