"""Run the audit stage by stage; a finished stage is stored and skipped when the run is resumed.

Stages (in order): ``victim`` (load the given encoder, or train the embedded default on the member
split), then one stage per audit section. Each stage's section is written to
``stages/<name>.json`` as soon as it finishes; ``results.json``, ``report.md`` and ``report.html`` are
rebuilt after every stage, so an interrupted audit still leaves a readable report of what it did.
A stage that raises is recorded as ``failed`` (with the error) and the audit goes on.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..config import config_to_dict
from ..data import create_dataset
from ..io import atomic_write_json
from ..report import build_report, normalise_section
from ..runs import RunDir, derive_seed, environment
from ..victim import Encoder, LocalEncoder, load_encoder
from .plan import AuditConfig, AuditData, prepare_data

log = logging.getLogger(__name__)


@dataclass
class AuditContext:
    """What every stage receives."""

    config: AuditConfig
    run: RunDir
    data: AuditData
    victim_spec: str | None
    api_key: str | None
    data_root: Path | None
    progress: bool | None
    _victim: Encoder | None = None

    def stage_dir(self, name: str) -> Path:
        path = self.run.file(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def seed(self, name: str) -> int:
        return derive_seed(self.config.seed, name) % (2**31)

    def victim(self) -> Encoder:
        """The encoder under audit (loaded once)."""
        if self._victim is None:
            spec = self.victim_spec or str(self.run.file("victim") / "encoder.safetensors")
            self._victim = open_victim(spec, self.api_key)
        return self._victim

    def eval_sets(self) -> dict[str, tuple[Any, Any]]:
        out = {}
        for name in self.config.eval_datasets:
            out[name] = (
                create_dataset(name, "train", root=self.data_root),
                create_dataset(name, "test", root=self.data_root),
            )
        return out


def open_victim(spec: str, api_key: str | None = None) -> Encoder:
    """A checkpoint path or an ``http(s)://`` URL of the embedding service, as an :class:`Encoder`."""
    if spec.startswith(("http://", "https://")):
        from ..service.client import RemoteEncoder

        if not api_key:
            raise ValueError("a victim URL needs --api-key (or $ENCODER_AUDIT_API_KEY)")
        return RemoteEncoder(spec, api_key)
    return load_encoder(spec)


# --------------------------------------------------------------------------------------------- stages


def stage_victim(ctx: AuditContext) -> dict[str, Any]:
    """Load the victim, or train the embedded default on the member split; evaluate it beside random init."""
    from ..evaluate import EvalConfig, evaluate_encoder, random_init_baseline
    from ..train import TrainConfig, pretrain

    c = ctx.config
    t0 = time.perf_counter()
    trained_here = ctx.victim_spec is None
    config: dict[str, Any] = {}
    if trained_here:
        out = ctx.stage_dir("victim")
        train = TrainConfig(
            epochs=c.victim_epochs,
            batch_size=min(c.victim_batch_size, len(ctx.data.members)),
            lr=2e-3,
            seed=ctx.seed("victim"),
            checkpoint_every=0,
        )
        pretrain(
            ctx.data.members,
            method="simclr",
            encoder=c.victim_encoder,
            train=train,
            run=RunDir(out),
            progress=ctx.progress,
        )
        config = {
            "method": "simclr",
            "encoder": c.victim_encoder,
            "members": len(ctx.data.members),
            **config_to_dict(train),
        }
    victim = ctx.victim()
    ev = EvalConfig(max_train=10_000 if c.preset == "quick" else None, seed=c.seed)
    rows = []
    for name, (train_ds, test_ds) in ctx.eval_sets().items():
        mine = evaluate_encoder(victim, train_ds, test_ds, ev)
        row = [name, mine["knn"], mine["linear"]]
        arch = getattr(victim, "meta", {}).get("architecture") if hasattr(victim, "meta") else None
        if arch:
            rand = evaluate_encoder(random_init_baseline(arch, victim.input_shape, seed=c.seed), train_ds, test_ds, ev)
            row += [rand["knn"], rand["linear"]]
        else:
            row += [None, None]
        rows.append(row)
    fm = rows[0]
    desc = (
        f"SimCLR {c.victim_encoder} trained here on {len(ctx.data.members):,} {c.dataset} images "
        f"for {c.victim_epochs} epochs"
        if trained_here
        else f"encoder at {ctx.victim_spec}"
    )
    return {
        "title": "Encoder under audit",
        "verdict": "info",
        "headline": f"{desc}: kNN {fm[1]:.1%} / linear {fm[2]:.1%} on {fm[0]}"
        + (f" (random init: {fm[3]:.1%} / {fm[4]:.1%})." if fm[3] is not None else "."),
        "tables": [
            {
                "title": "Downstream accuracy of the victim",
                "columns": ["dataset", "kNN", "linear probe", "random-init kNN", "random-init linear"],
                "rows": rows,
                "note": "kNN: cosine, k=200, T=0.1; linear: logistic regression on standardized frozen features. "
                "A random-init encoder of the same architecture is the floor: only the gap above it is learned.",
            }
        ],
        "costs": {"wall_seconds": round(time.perf_counter() - t0, 1)},
        "config": config,
        "caveats": []
        if not trained_here
        else [
            "The victim is trained on a small member set for many epochs, the setting in which the "
            "membership-inference literature finds leakage; it is weaker than a production encoder."
        ],
    }


def stage_stealing(ctx: AuditContext) -> dict[str, Any]:
    from ..attacks.stealing.audit import run_stealing_audit

    return run_stealing_audit(
        ctx.victim(),
        ctx.data.queries,
        ctx.eval_sets(),
        ctx.stage_dir("stealing"),
        preset=ctx.config.preset,
        seed=ctx.seed("stealing"),
        progress=ctx.progress,
    )


def stage_membership(ctx: AuditContext) -> dict[str, Any]:
    if ctx.victim_spec is not None and not ctx.config.members_known:
        return {
            "title": "Membership inference",
            "verdict": "skipped",
            "headline": "Not run: the victim's training members are unknown (pass --members MANIFEST).",
        }
    from ..attacks.membership.audit import run_membership_audit

    return run_membership_audit(
        ctx.victim(),
        ctx.data.members,
        ctx.data.nonmembers,
        ctx.data.shadow,
        ctx.stage_dir("membership"),
        preset=ctx.config.preset,
        seed=ctx.seed("membership"),
        progress=ctx.progress,
    )


def stage_poisoning(ctx: AuditContext) -> dict[str, Any]:
    from ..attacks.poisoning.audit import run_poisoning_audit

    return run_poisoning_audit(
        ctx.data.train,
        ctx.data.test,
        ctx.stage_dir("poisoning"),
        preset=ctx.config.preset,
        seed=ctx.seed("poisoning"),
        victim=ctx.victim(),
    )


def stage_protection(ctx: AuditContext) -> dict[str, Any]:
    """Unlearnable Clusters crafted with the victim as surrogate (a data owner's worst-case knowledge).

    Crafting needs gradients, so a victim behind an API is replaced by the data owner's own surrogate:
    a SimCLR encoder of the same kind pre-trained on the shadow split.
    """
    from ..attacks.unlearnable.audit import run_protection_audit
    from ..train import TrainConfig, pretrain

    victim = ctx.victim()
    surrogate: Encoder = victim
    note = None
    if not isinstance(victim, LocalEncoder):
        result = pretrain(
            ctx.data.shadow,
            method="simclr",
            encoder=ctx.config.victim_encoder,
            train=TrainConfig(epochs=5, batch_size=256, lr=2e-3, seed=ctx.seed("surrogate")),
            progress=ctx.progress,
        )
        surrogate = LocalEncoder(result.objective.encoder)
        note = (
            "The victim is not differentiable from here (remote); the surrogate is SimCLR trained on the shadow split."
        )
    section = run_protection_audit(
        ctx.data.train,
        ctx.data.test,
        ctx.stage_dir("protection"),
        surrogate=surrogate,
        preset=ctx.config.preset,
        seed=ctx.seed("protection"),
    )
    if note:
        section.setdefault("caveats", []).append(note)
    return section


STAGES: dict[str, tuple[str, Callable[[AuditContext], dict[str, Any]]]] = {
    "victim": ("Encoder under audit", stage_victim),
    "stealing": ("Encoder stealing", stage_stealing),
    "membership": ("Membership inference", stage_membership),
    "poisoning": ("Poisoning and backdoors", stage_poisoning),
    "protection": ("Data protection", stage_protection),
}


# --------------------------------------------------------------------------------------------- runner


def _write_results(
    ctx: AuditContext, sections: dict[str, dict[str, Any]], seconds: dict[str, float], t0: float
) -> None:
    victim = sections.get("victim", {})
    results = {
        "title": "Encoder audit",
        "victim": {
            "name": ctx.victim_spec or f"default SimCLR {ctx.config.victim_encoder} on {ctx.config.dataset}",
            "description": victim.get("headline", ""),
        },
        "config": {**config_to_dict(ctx.config), "victim": ctx.victim_spec},
        "splits": {k: len(v) for k, v in ctx.data.manifest.parts.items()} | {"sha256": ctx.data.manifest.hash()},
        "stage_seconds": seconds,
        "sections": sections,
        "environment": environment(ctx.config.seed),
    }
    # wall time of the audit = its stages' time, so a resumed run reports the whole audit, not the last session
    results["wall_time_s"] = round(sum(seconds.values()), 1) if seconds else round(time.perf_counter() - t0, 1)
    ctx.run.save_results(results, kind="audit")  # results' wall_time_s overrides the RunDir's own
    build_report(ctx.run.path)


def run_audit(
    config: AuditConfig,
    run: RunDir,
    *,
    victim: str | None = None,
    api_key: str | None = None,
    data_root: Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage of the audit in ``run``; returns the results dictionary.

    A stage whose ``stages/<name>.json`` exists is not run again.
    """
    t0 = time.perf_counter()
    data = prepare_data(config, root=data_root, manifest_path=run.file("splits.json"))
    ctx = AuditContext(config, run, data, victim, api_key, data_root, progress)
    stage_names = ["victim", *[s for s in STAGES if s in config.sections]]
    sections: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    stages_dir = run.file("stages")
    stages_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(stage_names, desc="audit", unit="stage", disable=True if progress is False else None, position=0)
    for name in bar:
        title, fn = STAGES[name]
        bar.set_description(f"audit: {name}")
        cached = stages_dir / f"{name}.json"
        if cached.is_file():
            stored = json.loads(cached.read_text())
            sections[name], seconds[name] = stored["section"], stored["seconds"]
            log.info("stage %s: already done (%.0f s), skipped", name, seconds[name])
            continue
        log.info("stage %s: started", name)
        start = time.perf_counter()
        try:
            raw = fn(ctx)
            section = normalise_section(raw, title=title, run_dir=run.path)
            elapsed = round(time.perf_counter() - start, 1)
            atomic_write_json(cached, {"section": section, "seconds": elapsed})
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a failed audit must not hide the others
            elapsed = round(time.perf_counter() - start, 1)
            log.error("stage %s failed: %s", name, exc)
            (run.file(f"{name}-error.log")).write_text(traceback.format_exc())
            if name == "victim":
                raise
            section = normalise_section(
                {
                    "verdict": "failed",
                    "headline": f"{type(exc).__name__}: {exc}",
                    "caveats": [f"traceback in {name}-error.log; re-run the audit with --resume to retry this stage"],
                },
                title=title,
            )
        sections[name], seconds[name] = section, elapsed
        log.info("stage %s: %s in %.0f s", name, section["verdict"], elapsed)
        _write_results(ctx, sections, seconds, t0)
    bar.close()
    _write_results(ctx, sections, seconds, t0)
    return run.load_results()
