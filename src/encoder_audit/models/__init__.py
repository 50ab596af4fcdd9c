"""Encoder registry, projection heads and safe checkpoint I/O."""

from __future__ import annotations

from . import cnn, resnet, vgg  # noqa: F401  (registers the architectures)
from .base import ENCODERS, EncoderNet, create_encoder, register_encoder
from .checkpoint import load_encoder_net, load_state, read_sidecar, save_encoder, save_state
from .heads import ProjectionHead

__all__ = [
    "ENCODERS",
    "EncoderNet",
    "ProjectionHead",
    "create_encoder",
    "load_encoder_net",
    "load_state",
    "read_sidecar",
    "register_encoder",
    "save_encoder",
    "save_state",
]
