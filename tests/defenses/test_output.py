"""Output defenses: noise, rounding, top-k, chaining, and the spec parser."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.defenses import DEFENSES, DefendedEncoder, create_defense, parse_defense_spec
from encoder_audit.registry import UnknownNameError
from encoder_audit.victim import Encoder, QueryCounter

IMAGES = torch.zeros(1, 1, 2, 2)


def images(n: int) -> torch.Tensor:
    return torch.zeros(n, 1, 2, 2)


def test_noise_is_relative_to_the_embedding_scale() -> None:
    d = create_defense("noise", sigma=0.1)
    g = torch.Generator().manual_seed(0)
    e = torch.randn(400, 64, generator=g) * 5.0
    scale = (e.norm(dim=1).mean() / 8.0).item()  # mean L2 norm / sqrt(D), about 5
    out = d(e, images(400))
    assert out.shape == e.shape and out.dtype == e.dtype
    assert (out - e).std().item() == pytest.approx(0.1 * scale, rel=0.05)
    assert (out - e).mean().abs().item() < 0.01 * scale
    # ten times larger embeddings get ten times larger noise
    assert (d(10 * e, images(400)) - 10 * e).std().item() == pytest.approx(scale, rel=0.05)


def test_absolute_noise_and_zero_sigma() -> None:
    e = torch.randn(400, 64) * 5.0
    absolute = create_defense("noise", sigma=0.3, relative=False)
    assert (absolute(e, images(400)) - e).std().item() == pytest.approx(0.3, rel=0.05)
    assert torch.equal(create_defense("noise", sigma=0.0)(e, images(400)), e)
    empty = torch.empty(0, 8)
    assert create_defense("noise")(empty, images(0)).shape == (0, 8)


def test_noise_differs_every_call_and_ignores_the_global_seed() -> None:
    e = torch.randn(4, 16)
    d = create_defense("noise", sigma=0.1)
    assert not torch.equal(d(e, images(4)), d(e, images(4)))
    torch.manual_seed(0)
    a = create_defense("noise", sigma=0.1)(e, images(4))
    torch.manual_seed(0)
    b = create_defense("noise", sigma=0.1)(e, images(4))
    assert not torch.equal(a, b)  # knowing the run's seed does not reveal the noise
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    d(e, images(4))
    assert torch.equal(torch.rand(3), expected)  # and the defense does not consume the global stream


def test_rounding() -> None:
    e = torch.tensor([[0.12345, -0.98765, 3.14159, 0.005]])
    torch.testing.assert_close(create_defense("round", decimals=2)(e, IMAGES), torch.tensor([[0.12, -0.99, 3.14, 0.0]]))
    torch.testing.assert_close(create_defense("round", decimals=0)(e, IMAGES), torch.tensor([[0.0, -1.0, 3.0, 0.0]]))
    out = create_defense("round")(torch.randn(50, 7), images(50))
    torch.testing.assert_close(out * 100, (out * 100).round(), atol=1e-4, rtol=0)  # default: 2 decimals


def naive_topk(e: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.zeros_like(e)
    for i, row in enumerate(e):
        order = sorted(range(row.shape[0]), key=lambda j: -abs(row[j].item()))
        for j in order[:k]:
            out[i, j] = row[j]
    return out


@pytest.mark.parametrize("k", [1, 3, 8, 100])
def test_topk_matches_naive_reference(k: int) -> None:
    e = torch.randn(20, 8, generator=torch.Generator().manual_seed(k))
    out = create_defense("topk", k=k)(e, images(20))
    assert torch.equal(out, naive_topk(e, k))
    assert ((out != 0).sum(dim=1) == min(k, 8)).all()


def test_defended_encoder_chains_in_order() -> None:
    class Fixed:
        input_shape = (1, 2, 2)
        embedding_dim = 4

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[0.26, -0.04, 0.031, 0.5]]).expand(x.shape[0], -1)

    seen: list[torch.Tensor] = []

    class Spy:
        name = "spy"

        def __call__(self, e: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return e

    inner = QueryCounter(Fixed())
    round_then_topk = DefendedEncoder(inner, [create_defense("round", decimals=1), create_defense("topk", k=2), Spy()])
    topk_then_round = DefendedEncoder(inner, [create_defense("topk", k=2), create_defense("round", decimals=1)])
    assert isinstance(round_then_topk, Encoder)
    assert round_then_topk.input_shape == (1, 2, 2) and round_then_topk.embedding_dim == 4
    x = images(3)
    a = round_then_topk.embed(x)  # [0.3, -0.0, 0.0, 0.5] -> keeps 0.3 and 0.5
    b = topk_then_round.embed(x)  # keeps 0.26 and 0.5 -> [0.3, 0, 0, 0.5]
    torch.testing.assert_close(a, torch.tensor([[0.3, 0.0, 0.0, 0.5]]).expand(3, -1))
    torch.testing.assert_close(b, a)
    c = DefendedEncoder(inner, [create_defense("topk", k=1), create_defense("round", decimals=0)]).embed(x)
    d = DefendedEncoder(inner, [create_defense("round", decimals=0), create_defense("topk", k=1)]).embed(x)
    torch.testing.assert_close(c, torch.tensor([[0.0, 0.0, 0.0, 0.0]]).expand(3, -1))  # 0.5 rounds to 0 (half to even)
    assert seen and seen[0] is x  # defenses see the queried images
    assert inner.images == 12 and inner.calls == 4  # the victim is queried once per call, whatever the chain
    assert d.shape == (3, 4)
    assert "round" in repr(round_then_topk)


@pytest.mark.parametrize(
    ("spec", "cls_name", "fields"),
    [
        ("noise:sigma=0.05", "GaussianNoise", {"sigma": 0.05, "relative": True}),
        ("noise:sigma=1/255, relative=false", "GaussianNoise", {"sigma": 1 / 255, "relative": False}),
        ("round", "Rounding", {"decimals": 2}),
        ("round:decimals=3", "Rounding", {"decimals": 3}),
        (" topk : k=16 ", "TopK", {"k": 16}),
    ],
)
def test_parse_defense_spec(spec: str, cls_name: str, fields: dict) -> None:  # type: ignore[type-arg]
    d = parse_defense_spec(spec)
    assert type(d).__name__ == cls_name
    for key, value in fields.items():
        assert getattr(d.config, key) == pytest.approx(value)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("noise:sigma", ValueError, "key=value"),
        ("noise:sigma=-1", ValueError, "sigma must be >= 0"),
        ("noise:sigma=abc", ValueError, "sigma must be a number"),
        ("noise:temperature=1", ValueError, "unknown option"),
        ("round:decimals=11", ValueError, "decimals"),
        ("round:decimals=1.5", ValueError, "integer"),
        ("topk:k=0", ValueError, "k must be >= 1"),
        ("blur:sigma=1", UnknownNameError, "noise"),
        ("", UnknownNameError, "choose one of"),
    ],
)
def test_parse_defense_spec_errors(spec: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_defense_spec(spec)


def test_registered_output_defenses() -> None:
    assert {"noise", "round", "topk"} <= set(DEFENSES.names())
