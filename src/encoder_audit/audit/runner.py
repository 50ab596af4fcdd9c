"""Run the audit stage by stage, once per seed; a finished stage is stored and skipped when the run is resumed.

Stages (in order): ``victim`` (load the given encoder, or train the embedded default on the member
split), then one stage per audit section. Each stage's section is written to
``stages/<name>.json`` as soon as it finishes; ``results.json``, ``report.md`` and ``report.html`` are
rebuilt after every stage, so an interrupted audit still leaves a readable report of what it did.
A stage that raises is recorded as ``failed`` (with the error) and the audit goes on.

With one seed everything lives in the run directory itself. With several, seed ``s`` has its own
directory ``seeds/<s>/`` (its ``stages/``, splits, default victim, figures and error logs) and its
stages derive their seeds from ``s`` as a one-seed audit with seed ``s`` does; the seeds run one
after the other. A given
victim is the same encoder for every seed (evaluated once, with the first seed); the embedded default
is trained again per seed. A split manifest given with ``--splits`` (``RUN/splits.json``) is shared by
every seed; otherwise each seed draws its own. ``results.json`` keeps each seed's sections under
``per_seed`` and their mean ± std (:func:`~encoder_audit.report.aggregate.aggregate_sections`) under
``sections``.
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
from ..report import aggregate_sections, build_report, normalise_section
from ..runs import RunDir, derive_seed, environment, seed_everything
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
    run_seed: int = 0
    base: Path | None = None  # this seed's directory (the run directory itself with one seed)
    _victim: Encoder | None = None

    def stage_dir(self, name: str) -> Path:
        path = (self.base or self.run.path) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def seed(self, name: str) -> int:
        return derive_seed(self.run_seed, name) % (2**31)

    def victim(self) -> Encoder:
        """The encoder under audit (loaded once)."""
        if self._victim is None:
            spec = self.victim_spec or str((self.base or self.run.path) / "victim" / "encoder.safetensors")
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
    ev = EvalConfig(max_train=10_000 if c.preset == "quick" else None, seed=ctx.run_seed)
    rows = []
    for name, (train_ds, test_ds) in ctx.eval_sets().items():
        mine = evaluate_encoder(victim, train_ds, test_ds, ev)
        row = [name, mine["knn"], mine["linear"]]
        arch = getattr(victim, "meta", {}).get("architecture") if hasattr(victim, "meta") else None
        if arch:
            rand = evaluate_encoder(
                random_init_baseline(arch, victim.input_shape, seed=ctx.run_seed), train_ds, test_ds, ev
            )
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


def seed_dir(run: RunDir, config: AuditConfig, seed: int) -> Path:
    """Where seed ``seed`` keeps its stages and outputs: the run directory itself when it is the only seed."""
    return run.path if len(config.seeds) == 1 else run.file("seeds") / str(seed)


def _write_results(
    run: RunDir, config: AuditConfig, victim_spec: str | None, per_seed: dict[int, dict[str, Any]], t0: float
) -> None:
    seeds = [s for s in config.seeds if s in per_seed]
    if len(seeds) > 1:
        sections = aggregate_sections({s: per_seed[s]["sections"] for s in seeds})
    else:
        sections = per_seed[seeds[0]]["sections"] if seeds else {}
    stage_seconds: dict[str, float] = {}
    for s in seeds:
        for name, sec in per_seed[s]["stage_seconds"].items():
            stage_seconds[name] = round(stage_seconds.get(name, 0.0) + sec, 1)
    victim = sections.get("victim", {})
    results = {
        "title": "Encoder audit",
        "victim": {
            "name": victim_spec or f"default SimCLR {config.victim_encoder} on {config.dataset}",
            "description": victim.get("headline", ""),
        },
        "config": {**config_to_dict(config), "victim": victim_spec},
        "seeds": list(config.seeds),
        "splits": per_seed[seeds[0]]["splits"] if seeds else {},
        "stage_seconds": stage_seconds,
        "sections": sections,
        "per_seed": {
            str(s): {
                **per_seed[s],
                "wall_time_s": round(sum(per_seed[s]["stage_seconds"].values()), 1),
            }
            for s in seeds
        },
        "environment": {**environment(config.seeds[0]), "seeds": list(config.seeds)},
    }
    # wall time of the audit = its stages' time, so a resumed run reports the whole audit, not the last session
    results["wall_time_s"] = (
        round(sum(stage_seconds.values()), 1) if stage_seconds else round(time.perf_counter() - t0, 1)
    )
    run.save_results(results, kind="audit")  # results' wall_time_s overrides the RunDir's own
    build_report(run.path)


def _run_stage(ctx: AuditContext, name: str, cached: Path) -> tuple[dict[str, Any], float]:
    """Run one stage and store its section in ``cached``; a failure becomes a ``failed`` section (not stored)."""
    title, fn = STAGES[name]
    base = ctx.base or ctx.run.path
    log.info("seed %d, stage %s: started", ctx.run_seed, name)
    seed_everything(ctx.seed(name))
    start = time.perf_counter()
    try:
        section = normalise_section(fn(ctx), title=title, run_dir=ctx.run.path)
        elapsed = round(time.perf_counter() - start, 1)
        atomic_write_json(cached, {"section": section, "seconds": elapsed})
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failed audit must not hide the others
        elapsed = round(time.perf_counter() - start, 1)
        log.error("seed %d, stage %s failed: %s", ctx.run_seed, name, exc)
        error_log = base / f"{name}-error.log"
        error_log.write_text(traceback.format_exc())
        if name == "victim":
            raise
        rel = error_log.relative_to(ctx.run.path)
        section = normalise_section(
            {
                "verdict": "failed",
                "headline": f"{type(exc).__name__}: {exc}",
                "caveats": [f"traceback in {rel}; re-run the audit with --resume to retry this stage"],
            },
            title=title,
        )
    log.info("seed %d, stage %s: %s in %.0f s", ctx.run_seed, name, section["verdict"], elapsed)
    return section, elapsed


def run_audit(
    config: AuditConfig,
    run: RunDir,
    *,
    victim: str | None = None,
    api_key: str | None = None,
    data_root: Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage of the audit in ``run``, once per seed of ``config.seeds``.

    A stage whose ``stages/<name>.json`` exists (in the seed's directory) is not run again.

    Returns:
        The results dictionary (also in ``run/results.json``).
    """
    t0 = time.perf_counter()
    stage_names = ["victim", *[s for s in STAGES if s in config.sections]]
    shared_splits = len(config.seeds) == 1 or run.file("splits.json").is_file()
    per_seed: dict[int, dict[str, Any]] = {}
    shared_victim: Encoder | None = None
    bar = tqdm(
        total=len(stage_names) * len(config.seeds),
        desc="audit",
        unit="stage",
        disable=True if progress is False else None,
        position=0,
    )
    for seed in config.seeds:
        base = seed_dir(run, config, seed)
        stages_dir = base / "stages"
        stages_dir.mkdir(parents=True, exist_ok=True)
        manifest = run.file("splits.json") if shared_splits else base / "splits.json"
        data = prepare_data(config, root=data_root, manifest_path=manifest, seed=seed)
        ctx = AuditContext(config, run, data, victim, api_key, data_root, progress, seed, base, shared_victim)
        state: dict[str, Any] = {
            "sections": {},
            "stage_seconds": {},
            "splits": {k: len(v) for k, v in data.manifest.parts.items()} | {"sha256": data.manifest.hash()},
        }
        per_seed[seed] = state
        for name in stage_names:
            bar.set_description(f"audit: seed {seed} · {name}" if len(config.seeds) > 1 else f"audit: {name}")
            if name == "victim" and victim is not None and seed != config.seeds[0]:
                bar.update(1)  # a given victim is one encoder: evaluated once, with the first seed
                continue
            cached = stages_dir / f"{name}.json"
            if cached.is_file():
                stored = json.loads(cached.read_text())
                state["sections"][name], state["stage_seconds"][name] = stored["section"], stored["seconds"]
                log.info("seed %d, stage %s: already done (%.0f s), skipped", seed, name, stored["seconds"])
                bar.update(1)
                continue
            state["sections"][name], state["stage_seconds"][name] = _run_stage(ctx, name, cached)
            bar.update(1)
            _write_results(run, config, victim, per_seed, t0)
        if victim is not None:
            shared_victim = ctx._victim
    bar.close()
    _write_results(run, config, victim, per_seed, t0)
    return run.load_results()
