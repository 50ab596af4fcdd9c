"""The membership attack runs unchanged through the HTTP embedding service."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from encoder_audit.attacks.membership import Shadow, create_attack
from encoder_audit.data import create_dataset
from encoder_audit.models import create_encoder
from encoder_audit.victim import LocalEncoder

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")


def test_remote_scores_equal_local_scores_and_queries_are_charged() -> None:
    from encoder_audit.service.client import RemoteEncoder
    from encoder_audit.service.testing import serve_in_background

    torch.manual_seed(0)
    local = LocalEncoder(create_encoder("cnn-small", 1, 16))
    ds = create_dataset("synthetic", "train", n=40, size=16)
    members, nonmembers = ds.subset(range(10)), ds.subset(range(10, 20))
    shadow = Shadow(local, ds.subset(range(20, 30)), ds.subset(range(30, 40)))
    attack = create_attack("encodermi-t", n_views=4).fit(shadow)
    expected = attack.infer(local, members, nonmembers, seed=3)
    with serve_in_background(local) as (url, key):
        remote = RemoteEncoder(url, key)
        got = attack.infer(remote, members, nonmembers, seed=3)
        assert remote.images == 20 * 4
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5, atol=1e-6)
