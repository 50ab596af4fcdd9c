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

from ...victim import Encoder, adapt_images

__all__ = ["DifferentiableSurrogate", "differentiable_surrogate"]


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
            return DifferentiableSurrogate(tower, tuple(seen.input_shape))  # type: ignore[attr-defined]
        if hasattr(seen, "net") and isinstance(seen.net, nn.Module):  # LocalEncoder
            return DifferentiableSurrogate(seen.net, tuple(seen.input_shape))  # type: ignore[attr-defined]
        inner = getattr(seen, "encoder", None)  # QueryCounter, DefendedEncoder
        if inner is None:
            break
        seen = inner
    raise ValueError(
        f"{type(encoder).__name__} is a black box: crafting a perturbation needs a differentiable surrogate "
        "(an EncoderNet, a LocalEncoder or a torch module with input_shape)"
    )
