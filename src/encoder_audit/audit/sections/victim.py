"""The "Encoder under audit" section: downstream accuracy of the victim beside random init."""

from __future__ import annotations

from ...report.model import Cell, Column, Section, Table, Text, Verdict, WhatToDo, key, pct
from ..victim_stage import VictimResult

__all__ = ["build_victim_section"]


def build_victim_section(result: VictimResult) -> Section:
    """Table of kNN / linear accuracy per dataset and a headline on the first one."""
    table = Table(
        "Downstream accuracy of the victim",
        [
            key("dataset"),
            pct("kNN"),
            pct("linear probe"),
            pct("random-init kNN"),
            pct("random-init linear"),
        ],
        note=f"kNN: cosine, k={result.knn_k}, T=0.1; linear: logistic regression on standardized frozen features. "
        "A random-init encoder of the same architecture is the floor: only the gap above it is learned.",
    )
    for r in result.downstream:
        table.add(r.dataset, r.knn, r.linear, r.random_knn, r.random_linear)
    first = result.downstream[0]
    values: dict[str, Cell] = {
        "dataset": first.dataset,
        "knn": first.knn,
        "linear": first.linear,
    }
    template = "kNN {knn:.1%} / linear {linear:.1%} on {dataset}"
    if first.random_knn is not None:
        values |= {"rknn": first.random_knn, "rlin": first.random_linear}
        template += " (random init: {rknn:.1%} / {rlin:.1%})"
    shape = Table(
        "Interface",
        [key("property"), Column("value")],
        [
            ["input shape (C, H, W)", " x ".join(str(x) for x in result.input_shape)],
            ["embedding dimension", result.embedding_dim],
            ["architecture", result.architecture or "unknown (black box)"],
        ],
    )
    caveats = []
    if result.trained_here:
        caveats.append(
            f"The victim was trained by this audit on {result.members:,} member images "
            f"({result.training.get('method', '?')}, {result.training.get('epochs', '?')} epochs): its members "
            "are known exactly, and it is smaller than a production encoder."
        )
    if result.adaptation:
        caveats.append(result.adaptation[0].upper() + result.adaptation[1:] + ".")
    caveats += result.data_notes
    return Section(
        key="victim",
        title="Encoder under audit",
        headline=Text(template + ".", values),
        verdict=Verdict("info", "the victim's own accuracy is context, not a risk"),
        tables=[table, shape],
        costs={"wall_seconds": result.train_seconds} if result.trained_here else {},
        config=dict(result.training),
        caveats=caveats,
        todo=WhatToDo(),
    )
