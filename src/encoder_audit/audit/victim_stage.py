"""The first stage of the audit: the encoder under audit, trained here or loaded, evaluated beside random init."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import config_to_dict
from ..runs import RunDir
from ..victim import HasMetadata
from .family import StageContext

log = logging.getLogger(__name__)

__all__ = ["DownstreamRow", "VictimResult", "run_victim_stage", "train_default_victim"]


@dataclass
class DownstreamRow:
    """Downstream accuracy (fractions) of the victim and of a random-init encoder of its architecture."""

    dataset: str
    knn: float
    linear: float
    random_knn: float | None = None
    random_linear: float | None = None


@dataclass
class VictimResult:
    """What the audit knows about the encoder under audit.

    Attributes:
        label: how the report names it.
        trained_here: the audit trained it (the embedded default) on the member split.
        architecture: its architecture, when its checkpoint says.
        input_shape: (C, H, W) it works at.
        embedding_dim: D.
        members: size of its training set when trained here.
        training: the training recipe when trained here.
        downstream: one row per evaluation dataset.
        knn_k: neighbours of the kNN probe.
        adaptation: how the audit's images were adapted to the victim's input ("" if they fit).
        train_seconds: time spent training it here.
        data_notes: how the audit's data was fitted to what the dataset holds.
    """

    label: str
    trained_here: bool
    architecture: str | None
    input_shape: tuple[int, int, int]
    embedding_dim: int
    members: int
    training: dict[str, Any] = field(default_factory=dict)
    downstream: list[DownstreamRow] = field(default_factory=list)
    knn_k: int = 200
    adaptation: str = ""
    train_seconds: float = 0.0
    data_notes: list[str] = field(default_factory=list)


def train_default_victim(ctx: StageContext) -> dict[str, Any]:
    """Pre-train the embedded default victim on the member split into ``ctx.out_dir``; returns its recipe."""
    from ..train import TrainConfig, pretrain

    c = ctx.config.default_victim
    train = TrainConfig(
        epochs=c.epochs,
        batch_size=min(c.batch_size, len(ctx.data.members)),
        lr=c.lr,
        seed=ctx.seed,
        checkpoint_every=0,
        device=ctx.device,
    )
    result = pretrain(
        ctx.data.members,
        method=c.method,
        encoder=c.encoder,
        train=train,
        run=RunDir(ctx.out_dir),
        progress=ctx.progress,
    )
    head = getattr(result.objective, "head", None)
    if isinstance(head, torch.nn.Module):  # kept beside the encoder: membership attacks the head's output too
        from ..attacks.membership.targets import save_head

        cfg = result.objective.config
        kind = cfg.head_kind if hasattr(cfg, "head_kind") else cfg.head
        save_head(ctx.out_dir / "encoder.safetensors", head, str(kind), result.objective.encoder.feature_dim)
    return {"method": c.method, "encoder": c.encoder, **config_to_dict(train)}


def _adaptation(data_shape: tuple[int, ...], input_shape: tuple[int, int, int]) -> str:
    c, h, w = (int(x) for x in data_shape)
    vc, vh, vw = input_shape
    if (c, h, w) == (vc, vh, vw):
        return ""
    text = f"the audit's {c}x{h}x{w} images are adapted to the victim's {vc}x{vh}x{vw} input"
    factor = max(vh / h, vw / w)
    if factor > 2:
        text += f" (upsampled {factor:.1f}x: results on such images say little about the victim's own domain)"
    return text


def run_victim_stage(ctx: StageContext, config: Any = None) -> VictimResult:
    """Train (when no victim is given) and evaluate the victim beside a random-init encoder."""
    from ..evaluate import EvalConfig, evaluate_encoder, random_init_baseline

    t0 = time.perf_counter()
    training = train_default_victim(ctx) if ctx.victim_trained_here else {}
    train_seconds = time.perf_counter() - t0
    victim = ctx.victim()
    arch = victim.meta.get("architecture") if isinstance(victim, HasMetadata) else None
    ev = EvalConfig(max_train=ctx.config.data.eval_max_train, max_test=ctx.config.data.eval_max_test, seed=ctx.run_seed)
    rows = []
    adaptation = ""
    for name, (train_ds, test_ds) in ctx.eval_sets().items():
        adaptation = adaptation or _adaptation(tuple(train_ds.images.shape[1:]), victim.input_shape)
        mine = evaluate_encoder(victim, train_ds, test_ds, ev)
        row = DownstreamRow(name, mine["knn"], mine["linear"])
        if arch:
            rand = evaluate_encoder(
                random_init_baseline(arch, victim.input_shape, seed=ctx.run_seed), train_ds, test_ds, ev
            )
            row.random_knn, row.random_linear = rand["knn"], rand["linear"]
        rows.append(row)
    if adaptation:
        log.warning("%s", adaptation)
    return VictimResult(
        label=ctx.victim_label,
        trained_here=ctx.victim_trained_here,
        architecture=arch,
        input_shape=victim.input_shape,
        embedding_dim=int(victim.embedding_dim),
        members=len(ctx.data.members) if ctx.victim_trained_here else 0,
        training=training,
        downstream=rows,
        knn_k=ev.knn_k,
        adaptation=adaptation,
        train_seconds=round(train_seconds, 1),
        data_notes=list(ctx.data.notes),
    )
