"""Encoder registry: shapes for every architecture, normalization inside the net, heads, validation."""

from __future__ import annotations

import pytest
import torch

from encoder_audit.models import ENCODERS, EncoderNet, ProjectionHead, create_encoder
from encoder_audit.registry import UnknownNameError

DIMS = {"cnn-small": 128, "resnet18": 512, "resnet34": 512, "resnet50": 2048, "vgg11": 512, "vgg11-small": 128}
FAST = {("cnn-small", c, s) for c in (1, 3) for s in (28, 32)} | {
    ("resnet18", 1, 28),
    ("vgg11", 3, 32),
    ("vgg11-small", 1, 28),
}
CASES = [
    pytest.param(name, c, s, marks=() if (name, c, s) in FAST else pytest.mark.slow, id=f"{name}-{c}ch-{s}px")
    for name in sorted(DIMS)
    for c in (1, 3)
    for s in (28, 32)
]


def test_registry_holds_the_documented_architectures() -> None:
    assert set(DIMS) <= set(ENCODERS.names())


@pytest.mark.parametrize(("name", "channels", "size"), CASES)
def test_encoder_gives_flat_features(name: str, channels: int, size: int) -> None:
    torch.set_num_threads(1)
    net = create_encoder(name, in_channels=channels, image_size=size).eval()
    assert isinstance(net, EncoderNet)
    assert net.feature_dim == DIMS[name] and net.arch == name
    assert net.input_shape == (channels, size, size)
    with torch.no_grad():
        out = net(torch.rand(2, channels, size, size))
    assert out.shape == (2, DIMS[name]) and torch.isfinite(out).all()


def test_cnn_small_trains_in_train_mode() -> None:
    net = create_encoder("cnn-small", in_channels=1, image_size=28)
    out = net(torch.rand(4, 1, 28, 28))
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_normalization_happens_inside() -> None:
    torch.manual_seed(0)
    a = create_encoder("cnn-small", in_channels=3, image_size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    b = create_encoder("cnn-small", in_channels=3, image_size=16, mean=(0.2, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    b.load_state_dict({k: v for k, v in a.state_dict().items() if k not in {"mean", "std"}}, strict=False)
    a.eval(), b.eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x), atol=1e-4)  # changing the mean changes the output
        # and the backbone sees exactly (x - mean) / std
        torch.testing.assert_close(a(x), a.backbone((x - 0.5) / 0.25))
    assert a.normalization() == {"mean": [0.5] * 3, "std": [0.25] * 3}
    assert "mean" in a.state_dict() and "std" in a.state_dict()  # saved with the weights


def test_single_value_normalization_broadcasts_and_defaults() -> None:
    net = create_encoder("cnn-small", in_channels=3, image_size=16, mean=(0.3,), std=(0.2,))
    norm = net.normalization()
    assert norm["mean"] == pytest.approx([0.3] * 3) and norm["std"] == pytest.approx([0.2] * 3)
    default = create_encoder("cnn-small", in_channels=1, image_size=16)
    assert default.normalization() == {"mean": [0.5], "std": [0.5]}
    with pytest.raises(ValueError, match="mean/std"):
        create_encoder("cnn-small", in_channels=3, image_size=16, mean=(0.1, 0.2), std=(0.2, 0.2))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"in_channels": 2}, ValueError),
        ({"in_channels": 0}, ValueError),
        ({"in_channels": 4}, ValueError),
        ({"image_size": 4}, ValueError),
        ({"image_size": 0}, ValueError),
    ],
)
def test_create_encoder_rejects_bad_shapes(kwargs: dict, error: type) -> None:  # type: ignore[type-arg]
    with pytest.raises(error):
        create_encoder("cnn-small", **{"in_channels": 1, "image_size": 28, **kwargs})


def test_unknown_encoder_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match=r"cnn-small.*resnet18"):
        create_encoder("resnet9000")


@pytest.mark.parametrize(("hidden", "batch_norm"), [(0, True), (64, True), (64, False)])
def test_projection_head_shapes(hidden: int, batch_norm: bool) -> None:
    head = ProjectionHead(32, hidden, 16, batch_norm=batch_norm)
    assert head(torch.rand(5, 32)).shape == (5, 16)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in head.modules())
    assert n_linear == (1 if hidden == 0 else 2)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules()) == (hidden > 0 and batch_norm)


@pytest.mark.parametrize("dims", [(0, 8, 4), (8, 8, 0), (8, -1, 4)])
def test_projection_head_rejects_bad_dims(dims: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        ProjectionHead(*dims)
