"""The protector's own surrogate as a differentiable function of pixels.

Crafting a perturbation needs gradients through a surrogate. Clustering needs only embeddings and
works with any :class:`~encoder_audit.victim.Encoder`; the generator step needs the network itself,
so the encoder must be (or wrap) a torch module: an :class:`~encoder_audit.models.EncoderNet`, a
:class:`~encoder_audit.victim.LocalEncoder`, a :class:`~encoder_audit.victim.QueryCounter` around one,
or any module exposing ``input_shape`` and mapping [0, 1] images to embeddings (e.g. a CLIP image tower).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...data.base import ImageDataset
from ...victim import Encoder, LocalEncoder, adapt_images

__all__ = ["DifferentiableSurrogate", "differentiable_surrogate", "train_surrogate"]


class DifferentiableSurrogate(nn.Module):
    """A frozen copy of a surrogate network that adapts any [0, 1] batch to its input shape.

    Gradients flow to the input only; the caller's network is never modified.

    Shape:
        input: (N, C, H, W) float in [0, 1] (any size/channels); output: (N, D).
    """

    def __init__(self, net: nn.Module, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.input_shape = tuple(input_shape)

    def train(self, mode: bool = True) -> DifferentiableSurrogate:  # always eval (batch-norm statistics frozen)
        super().train(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(adapt_images(x, self.input_shape)).float()  # type: ignore[arg-type]


class _ImageTower(nn.Module):
    """``encode_image`` (or the raw tower) of a CLIP-style dual encoder as a module."""

    def __init__(self, model: nn.Module, projected: bool) -> None:
        super().__init__()
        self.model, self.projected = model, projected

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x) if self.projected else self.model.visual(x)  # type: ignore[operator]


def _shape(obj: object) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in getattr(obj, "input_shape"))  # noqa: B009
    return (c, h, w)


def differentiable_surrogate(encoder: Encoder | nn.Module) -> DifferentiableSurrogate:
    """Unwrap ``encoder`` to a differentiable, frozen module.

    Raises:
        ValueError: a black-box encoder (e.g. a remote API) that offers no gradients.
    """
    seen = encoder
    for _ in range(8):
        if isinstance(seen, DifferentiableSurrogate):
            return seen
        if isinstance(seen, nn.Module) and hasattr(seen, "input_shape"):
            return DifferentiableSurrogate(seen, tuple(seen.input_shape))  # type: ignore[arg-type]
        model = getattr(seen, "model", None)
        if isinstance(model, nn.Module) and hasattr(model, "encode_image"):  # CLIP image tower (UC-CLIP)
            tower = _ImageTower(model, bool(getattr(seen, "projected", True)))
            return DifferentiableSurrogate(tower, _shape(seen))
        if hasattr(seen, "net") and isinstance(seen.net, nn.Module):  # LocalEncoder
            return DifferentiableSurrogate(seen.net, _shape(seen))
        inner = getattr(seen, "encoder", None)  # QueryCounter, DefendedEncoder
        if inner is None:
            break
        seen = inner
    raise ValueError(
        f"{type(encoder).__name__} is a black box: crafting a perturbation needs a differentiable surrogate "
        "(an EncoderNet, a LocalEncoder or a torch module with input_shape)"
    )


def train_surrogate(
    data: ImageDataset,
    method: str = "supervised",
    *,
    arch: str = "cnn-small",
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    image_size: int | None = None,
) -> LocalEncoder:
    """Train the protector's own surrogate on ``data``.

    ``supervised``: cross entropy on ``data``'s labels. This is the paper's cross-dataset setting: UC's
    surrogate is an ImageNet-supervised ResNet-50 trained on *other labelled data* than the images it
    protects, whose features follow semantics. ``simclr``: contrastive pre-training without labels
    (for a folder with no labelled data; its clusters follow the classes less).

    Raises:
        ValueError: ``supervised`` on unlabeled data, or an unknown method.
    """
    from ...train import TrainConfig, pretrain

    if method not in ("supervised", "simclr", "moco"):
        raise ValueError(f"surrogate method must be supervised, simclr or moco, got {method!r}")
    if method == "supervised" and data.labels is None:
        raise ValueError("a supervised surrogate needs labelled data")
    options = None
    if method == "supervised":
        assert data.labels is not None
        options = {"num_classes": max(int(data.labels.max()) + 1, 2)}
    train = TrainConfig(
        epochs=epochs,
        batch_size=max(2, min(batch_size, len(data))),
        lr=lr,
        weight_decay=5e-4 if method == "supervised" else 1e-6,
        seed=seed,
        checkpoint_every=0,
        device=device,
    )
    result = pretrain(
        data, method=method, encoder=arch, train=train, method_options=options, progress=False, image_size=image_size
    )
    net = result.objective.encoder
    net.eval()
    return LocalEncoder(net, meta={"architecture": arch, "surrogate_method": method, "epochs": epochs})
