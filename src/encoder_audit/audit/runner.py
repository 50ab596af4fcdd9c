"""Run the audit stage by stage, once per seed; a finished stage is stored and skipped when the run is resumed.

Stages (in order): ``victim`` (load the given encoder, or train the embedded default on the member
split, and evaluate it), then one stage per audit family (:mod:`.family`). Each stage stores its
*result* (numbers) in ``stages/<name>.json`` as soon as it finishes; ``results.json``, ``report.md``
and ``report.html`` are rebuilt after every stage, so an interrupted audit still leaves a readable
report. A stage that raises is recorded as ``failed`` (with the error) and the audit goes on.

With one seed everything lives in the run directory itself. With several, seed ``s`` has its own
directory ``seeds/<s>/`` (stages, splits, default victim, figures, error logs); ``results.json``
keeps each seed's sections and results under ``per_seed`` and their aggregate
(:func:`~encoder_audit.report.aggregate.aggregate_sections`) under ``sections``. A given victim is
the same encoder for every seed (evaluated once, with the first seed); the embedded default is
trained again per seed.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data import create_dataset
from ..data.base import ImageDataset
from ..errors import UserError
from ..io import atomic_write_json
from ..report import aggregate_sections, build_report
from ..report.model import SCHEMA_VERSION, Section, status_section
from ..runs import RunDir, derive_seed, environment, seed_everything
from ..victim import Encoder, HasMetadata
from .config import AuditConfig
from .family import StageContext, families, result_from_json, result_to_json
from .plan import hold_out, prepare_data, same_images
from .sections.victim import build_victim_section
from .victim_stage import VictimResult, run_victim_stage

log = logging.getLogger(__name__)

__all__ = ["load_run_config", "open_victim", "resolve_device", "run_audit", "stage_context", "start_run"]


def resolve_device(name: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``.

    Raises:
        ValueError: CUDA was asked for but is not available.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for, but torch sees no CUDA device here")
    return name


def open_victim(spec: str, *, api_key: str | None = None, device: str = "cpu", **options: Any) -> Encoder:
    """A victim spec (checkpoint, ``torchvision:NAME``, URL, ...) as an :class:`Encoder` (``load_encoder``)."""
    from ..victim import load_encoder

    return load_encoder(spec, device=device, api_key=api_key, **options)


@dataclass
class _Victim:
    """The encoder under audit, loaded lazily once and shared by every stage (and seed, when given)."""

    given: Encoder | None
    spec: str | None
    api_key: str | None
    device: str
    options: dict[str, Any]
    _loaded: Encoder | None = None

    @property
    def trained_here(self) -> bool:
        return self.given is None and self.spec is None

    def label(self, config: AuditConfig) -> str:
        if self.given is not None:
            meta = self.given.meta if isinstance(self.given, HasMetadata) else {}
            name = meta.get("spec") or meta.get("model_class") or meta.get("architecture")
            return f"encoder {name}" if name else f"encoder {self.given!r}"
        if self.spec is not None:
            return f"encoder at {self.spec}"
        c = config.default_victim
        return (
            f"{c.method.upper() if c.method != 'simclr' else 'SimCLR'} {c.encoder} trained here on "
            f"{config.data.members:,} {config.data.dataset} images for {c.epochs} epochs"
        )

    def get(self, base: Path) -> Encoder:
        if self.given is not None:
            return self.given
        if self._loaded is None:
            spec = self.spec or str(base / "victim" / "encoder.safetensors")
            self._loaded = open_victim(spec, api_key=self.api_key, device=self.device, **self.options)
        return self._loaded


def stage_context(
    config: AuditConfig,
    run_dir: Path,
    name: str,
    *,
    run_seed: int,
    data: Any,
    victim: Callable[[], Encoder],
    victim_label: str = "the encoder under audit",
    victim_trained_here: bool = False,
    base: Path | None = None,
    data_root: Path | None = None,
    progress: bool | None = False,
) -> StageContext:
    """The :class:`StageContext` of stage ``name`` (also the way tests build one)."""
    base = base or run_dir
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    cache: dict[str, dict[str, tuple[ImageDataset, ImageDataset]]] = {}

    def eval_sets() -> dict[str, tuple[ImageDataset, ImageDataset]]:
        if "sets" not in cache:
            sets = {}
            for ds in config.data.eval_datasets:
                train, test = create_dataset(ds, "train", root=data_root), create_dataset(ds, "test", root=data_root)
                if same_images(train, test):  # a folder without train/test sub-folders
                    train, test = hold_out(train, seed=0)
                if train.labels is None:
                    raise UserError(f"evaluation dataset {ds} has no labels (it needs one sub-folder per class)")
                sets[ds] = (train, test)
            cache["sets"] = sets
        return cache["sets"]

    return StageContext(
        config=config,
        data=data,
        out_dir=out,
        run_dir=run_dir,
        seed=derive_seed(run_seed, name) % (2**31),
        run_seed=run_seed,
        device=resolve_device(config.device),
        progress=progress,
        victim_label=victim_label,
        victim_trained_here=victim_trained_here,
        _victim=victim,
        _eval_sets=eval_sets,
    )


# --------------------------------------------------------------------------------------------- stages


def _stage_title(name: str) -> str:
    return "Encoder under audit" if name == "victim" else families()[name].title


def _build(name: str, result: Any) -> Section:
    if name == "victim":
        return build_victim_section(result)
    section = families()[name].build(result)
    section.verdict = section.verdict.checked()
    return section


def _load_result(name: str, data: Any) -> Any:
    cls = VictimResult if name == "victim" else families()[name].result_type
    return result_from_json(cls, data)


def _skip_reason(ctx: StageContext, name: str) -> str | None:
    if name == "victim":
        return None
    fam = families()[name]
    return fam.skip(ctx) if fam.skip is not None else None


def _run_stage(ctx: StageContext, name: str) -> Any:
    if name == "victim":
        return run_victim_stage(ctx)
    fam = families()[name]
    return fam.run(ctx, getattr(ctx.config, fam.config_attr))


def seed_dir(run: RunDir, config: AuditConfig, seed: int) -> Path:
    """Where seed ``seed`` keeps its stages and outputs: the run directory itself when it is the only seed."""
    return run.path if len(config.seeds) == 1 else run.file("seeds") / str(seed)


@dataclass
class _SeedState:
    sections: dict[str, Section]
    results: dict[str, Any]
    stage_seconds: dict[str, float]
    splits: dict[str, Any]
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def _write_results(run: RunDir, config: AuditConfig, victim_label: str, per_seed: dict[int, _SeedState]) -> None:
    seeds = [s for s in config.seeds if s in per_seed]
    if len(seeds) > 1:
        sections = aggregate_sections({s: per_seed[s].sections for s in seeds})
    else:
        sections = per_seed[seeds[0]].sections if seeds else {}
    stage_seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    for s in seeds:
        for name, sec in per_seed[s].stage_seconds.items():
            stage_seconds[name] = round(stage_seconds.get(name, 0.0) + sec, 1)
        for name, sec in per_seed[s].cpu_seconds.items():
            cpu_seconds[name] = round(cpu_seconds.get(name, 0.0) + sec, 1)
    victim = sections.get("victim")
    results = {
        "title": "Encoder audit",
        "victim": {"name": victim_label, "description": victim.headline.render() if victim else ""},
        "config": config.to_dict(),
        "seeds": list(config.seeds),
        "splits": per_seed[seeds[0]].splits if seeds else {},
        "stage_seconds": stage_seconds,
        "stage_cpu_seconds": cpu_seconds,
        "sections": {k: s.to_dict() for k, s in sections.items()},
        "per_seed": {
            str(s): {
                "sections": {k: v.to_dict() for k, v in per_seed[s].sections.items()},
                "results": per_seed[s].results,
                "stage_seconds": per_seed[s].stage_seconds,
                "splits": per_seed[s].splits,
                "wall_time_s": round(sum(per_seed[s].stage_seconds.values()), 1),
            }
            for s in seeds
        },
        "environment": {**environment(config.seeds[0]), "seeds": list(config.seeds)},
        # the audit's wall time is its stages' time, so a resumed run reports the whole audit
        "wall_time_s": round(sum(stage_seconds.values()), 1),
    }
    run.save_results(results, kind="audit", schema_version=SCHEMA_VERSION)
    build_report(run.path)


def _one_stage(
    ctx: StageContext, name: str, cached: Path, base: Path, run: RunDir
) -> tuple[Section, Any, float, float]:
    """Run one stage and store its result in ``cached``; a failure becomes a ``failed`` section (not stored)."""
    log.info("seed %d, stage %s: started", ctx.run_seed, name)
    seed_everything(ctx.seed)
    start, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = _run_stage(ctx, name)
        section = _build(name, result)
        elapsed = round(time.perf_counter() - start, 1)
        cpu = round(time.process_time() - cpu0, 1)
        data = result_to_json(result)
        atomic_write_json(
            cached, {"schema_version": SCHEMA_VERSION, "result": data, "seconds": elapsed, "cpu_seconds": cpu}
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failed audit must not hide the others
        elapsed = round(time.perf_counter() - start, 1)
        log.error("seed %d, stage %s failed: %s", ctx.run_seed, name, exc)
        error_log = base / f"{name}-error.log"
        error_log.write_text(traceback.format_exc())
        if name == "victim":
            raise
        rel = error_log.resolve().relative_to(run.path.resolve()).as_posix()
        section = status_section(
            name,
            _stage_title(name),
            "failed",
            f"{type(exc).__name__}: {exc}",
            [f"traceback in {rel}; re-run the audit with --resume to retry this stage"],
        )
        data, cpu = None, round(time.process_time() - cpu0, 1)
    log.info("seed %d, stage %s: %s in %.0f s (%.0f s CPU)", ctx.run_seed, name, section.verdict.level, elapsed, cpu)
    return section, data, elapsed, cpu


def run_audit(
    config: AuditConfig | None = None,
    run: RunDir | str | Path | None = None,
    *,
    victim: Encoder | str | None = None,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    runs_dir: str | Path = "runs",
    api_key: str | None = None,
    data_root: Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage of the audit in ``run``, once per seed of ``config.seeds``.

    Args:
        config: the resolved config (:func:`~encoder_audit.audit.config.resolve_config`); None
            resolves ``preset`` (default quick) with ``overrides`` (``["stealing.budgets=[500]"]``).
        run: the run directory (created if missing); None creates ``runs_dir/<UTC time>-audit/``
            with the config saved in it.
        victim: the encoder under audit: an :class:`Encoder` object (e.g. from
            :func:`encoder_audit.victim.wrap_encoder`), a spec string, or None for ``config.victim``
            (None there too: the embedded default is trained).
        api_key: key of a victim URL.
        data_root: folder holding datasets.
        progress: progress bars (None: automatic).

    A stage whose ``stages/<name>.json`` exists (in the seed's directory) is not run again.

    Returns:
        The results dictionary (also in ``run/results.json``); ``results["run_dir"]`` is where it is.

    Example:
        >>> from encoder_audit import run_audit, wrap_encoder  # doctest: +SKIP
        >>> results = run_audit(victim=wrap_encoder(my_module, input_shape=(3, 224, 224)), preset="smoke")
    """
    if config is None:
        from .config import resolve_config

        config = resolve_config(preset, overrides=overrides)
    elif preset is not None or overrides:
        raise ValueError("pass either a config or preset/overrides, not both")
    if run is None:
        run = start_run(config, runs_dir=Path(runs_dir))
    if not isinstance(run, RunDir):
        path = Path(run)
        path.mkdir(parents=True, exist_ok=True)
        run = RunDir.open(path)
    device = resolve_device(config.device)
    v = _Victim(
        given=victim if victim is not None and not isinstance(victim, str) else None,
        spec=victim if isinstance(victim, str) else config.victim,
        api_key=api_key,
        device=device,
        options=dict(config.victim_options),
    )
    label = v.label(config)
    fams = families()
    stage_names = ["victim", *[s for s in fams if s in config.sections]]
    shared_splits = len(config.seeds) == 1 or run.file("splits.json").is_file()
    per_seed: dict[int, _SeedState] = {}
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
        data = prepare_data(config.data, root=data_root, manifest_path=manifest, seed=seed)
        state = _SeedState(
            {}, {}, {}, {k: len(p) for k, p in data.manifest.parts.items()} | {"sha256": data.manifest.hash()}
        )
        per_seed[seed] = state
        for name in stage_names:
            bar.set_description(f"audit: seed {seed} · {name}" if len(config.seeds) > 1 else f"audit: {name}")
            if name == "victim" and not v.trained_here and seed != config.seeds[0]:
                bar.update(1)  # a given victim is one encoder: evaluated once, with the first seed
                continue
            cached = stages_dir / f"{name}.json"
            if cached.is_file():
                stored = json.loads(cached.read_text())
                try:
                    result = _load_result(name, stored["result"])
                    state.sections[name] = _build(name, result)
                    state.results[name] = stored["result"]
                    state.stage_seconds[name] = stored["seconds"]
                    state.cpu_seconds[name] = stored.get("cpu_seconds", 0.0)
                    log.info("seed %d, stage %s: already done (%.0f s), skipped", seed, name, stored["seconds"])
                    bar.update(1)
                    continue
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("seed %d, stage %s: stored result unreadable (%s); running it again", seed, name, exc)
            ctx = stage_context(
                config,
                run.path,
                name,
                run_seed=seed,
                data=data,
                victim=functools.partial(v.get, base),
                victim_label=label,
                victim_trained_here=v.trained_here,
                base=base,
                data_root=data_root,
                progress=progress,
            )
            reason = _skip_reason(ctx, name)
            if reason is not None:
                state.sections[name] = status_section(name, _stage_title(name), "skipped", reason)
                log.info("seed %d, stage %s: skipped (%s)", seed, name, reason)
                bar.update(1)
                continue
            section, raw, seconds, cpu = _one_stage(ctx, name, cached, base, run)
            state.sections[name], state.stage_seconds[name], state.cpu_seconds[name] = section, seconds, cpu
            if raw is not None:
                state.results[name] = raw
            bar.update(1)
            _write_results(run, config, label, per_seed)
        if v.trained_here:
            v._loaded = None  # the next seed trains its own default victim
    bar.close()
    _write_results(run, config, label, per_seed)
    return {**run.load_results(), "run_dir": str(run.path)}


def start_run(
    config: AuditConfig,
    *,
    runs_dir: Path = Path("runs"),
    out: Path | None = None,
    splits: Path | None = None,
) -> RunDir:
    """Create the run directory of a new audit and save its resolved ``config.yaml`` and ``env.json``.

    Args:
        config: the resolved config (saved whole, victim included, so ``--config RUN/config.yaml``
            repeats the run).
        runs_dir: where ``<UTC time>-audit/`` is created.
        out: the exact directory instead.
        splits: a split manifest naming a given victim's real members (copied to ``RUN/splits.json``).

    Raises:
        UserError: the split manifest does not exist.
    """
    if splits is not None and not Path(splits).is_file():
        raise UserError(f"split manifest {splits} not found")
    run = RunDir.create("audit", runs_dir, out=out)
    if splits is not None:
        shutil.copyfile(splits, run.file("splits.json"))
    run.save_config(config.to_dict())
    run.save_env(config.seed)
    return run


def load_run_config(run_dir: Path) -> AuditConfig:
    """The config an audit run was started with (its ``config.yaml``), for ``--resume``.

    Raises:
        UserError: not an audit run directory.
    """
    from ..config import load_yaml
    from .config import resolve_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not an audit run directory (no config.yaml)")
    return resolve_config(file_values=load_yaml(path))
