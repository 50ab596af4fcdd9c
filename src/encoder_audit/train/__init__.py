"""One training loop (:func:`fit`) and the objectives it drives."""

from __future__ import annotations

from . import moco, simclr, supervised  # noqa: F401  (registers the objectives)
from .loop import TrainConfig, TrainingInterrupted, TrainResult, fit
from .moco import MoCo, MoCoConfig
from .objective import OBJECTIVES, Objective, create_objective, register_objective
from .pretrain import PRESETS, Preset, method_config, pretrain
from .simclr import SimCLR, SimCLRConfig, nt_xent_loss
from .supervised import Supervised, SupervisedConfig

__all__ = [
    "OBJECTIVES",
    "PRESETS",
    "MoCo",
    "MoCoConfig",
    "Objective",
    "Preset",
    "SimCLR",
    "SimCLRConfig",
    "Supervised",
    "SupervisedConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "create_objective",
    "fit",
    "method_config",
    "nt_xent_loss",
    "pretrain",
    "register_objective",
]
