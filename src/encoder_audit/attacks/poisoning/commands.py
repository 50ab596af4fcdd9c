"""The jobs behind ``encoder-audit poison``: poison a CLIP-style training, or backdoor an encoder with BadEncoder.

Each job takes its settings as dataclasses, writes everything into a run directory (config,
environment, manifests, model, ``results.json``) and returns the results. The command-line module
only parses arguments into these settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...runs import RunDir, derive_seed, seed_everything
from .badencoder import BadEncoderConfig, run_badencoder
from .experiment import ClipExperimentConfig, clean_pairs, run_defenses, run_poisoned_clip

log = logging.getLogger(__name__)

__all__ = ["BadEncoderJob", "ClipJob", "run_badencoder_job", "run_clip_job"]


def _plain(config: Any) -> dict[str, Any]:
    """A (nested) config dataclass as plain JSON/YAML types."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


@dataclass(frozen=True)
class ClipJob:
    """``encoder-audit poison clip``.

    Attributes:
        dataset: labelled dataset with class names (captions come from them).
        attack: ``targeted`` or ``backdoor``.
        counts: poison counts, one training each (k per target, or m).
        experiment: scale and attack settings.
        defenses: defenses applied to the last training (``cleanclip``, ``filter-similarity``,
            ``filter-density``).
        trusted_pairs: the defender's clean pairs, disjoint from the training pairs.
        remove_fraction: share of pairs a filter removes.
        cleanclip_epochs: CleanCLIP fine-tuning epochs.
        seed: training and attack seed.
    """

    dataset: str = "fashion-mnist"
    attack: str = "backdoor"
    counts: tuple[int, ...] = (100,)
    experiment: ClipExperimentConfig = field(default_factory=ClipExperimentConfig)
    defenses: tuple[str, ...] = ()
    trusted_pairs: int = 500
    remove_fraction: float = 0.1
    cleanclip_epochs: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.attack not in ("targeted", "backdoor"):
            raise ValueError(f"attack must be 'targeted' or 'backdoor', got {self.attack!r}")
        if not self.counts or any(v < 0 for v in self.counts):
            raise ValueError("poison counts must be given and >= 0")


@dataclass(frozen=True)
class BadEncoderJob:
    """``encoder-audit poison badencoder``.

    Attributes:
        victim: the encoder to backdoor (any white-box victim spec: a checkpoint, ``torchvision:NAME``, ...).
        victim_options: options of the spec (``weights``, ``input_shape``, ...; see ``load_encoder``).
        dataset: shadow and downstream dataset (labelled: references and the user's probe).
        config: BadEncoder's settings.
        max_train: downstream training images for the user's probe.
        max_test: downstream test images.
        seed: attack seed.
    """

    victim: str
    dataset: str = "fashion-mnist"
    config: BadEncoderConfig = field(default_factory=BadEncoderConfig)
    victim_options: dict[str, Any] = field(default_factory=dict)
    max_train: int = 5000
    max_test: int = 2000
    seed: int = 0


def _line(row: dict[str, Any], attack: str, n: int) -> str:
    if attack == "targeted":
        return (
            f"k={n:>4} per target ({100 * row['targeted_rate_per_target']:.3f}% of {row['train_pairs']} pairs, "
            f"{row['mode']}): success {row['targeted_success']:.2f}, mean rank of y' {row['targeted_mean_rank']:.2f}, "
            f"clean zero-shot {row['clean_zeroshot_top1']:.3f}"
        )
    return (
        f"m={n:>4} ({100 * row['backdoor_rate']:.3f}% of {row['train_pairs']} pairs, {row['mode']}): ASR "
        f"{row['backdoor_asr']:.3f} (no-trigger {row['backdoor_baseline_target_rate']:.3f}), z-score "
        f"{row['backdoor_zscore']:.2f}, clean zero-shot {row['clean_zeroshot_top1']:.3f}"
    )


def run_clip_job(
    job: ClipJob,
    run_dir: RunDir,
    *,
    data_root: Path | None = None,
    download: bool = False,
    deterministic: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Poison, train and evaluate at each count (plus defenses on the last one); writes ``results.json``.

    Raises:
        ValueError: the backdoor target is not a class of the dataset.
    """
    from ...data import create_dataset, subsample
    from ...data.captions import make_paired
    from .plots import plot_backdoor, plot_targeted

    cfg = job.experiment
    seed_everything(job.seed, deterministic=deterministic)
    train = create_dataset(job.dataset, "train", root=data_root, download=download)
    test = create_dataset(job.dataset, "test", root=data_root, download=download)
    if not 0 <= cfg.backdoor_target < train.info.num_classes:
        raise ValueError(f"the target label must be in [0, {train.info.num_classes})")
    run_dir.save_config({"command": "poison clip", **_plain(job)})
    run_dir.save_env(job.seed, deterministic)
    clean = clean_pairs(train, cfg)
    rows, last = [], None
    for n in job.counts:
        k, m = (n, 0) if job.attack == "targeted" else (0, n)
        last = run_poisoned_clip(
            clean,
            test,
            targeted_poisons=k,
            backdoor_poisons=m,
            config=cfg,
            seed=job.seed,
            out_dir=run_dir.path / f"poisons_{n}",
            save_model=len(job.counts) == 1,
            progress=progress,
        )
        rows.append(last.metrics)
        say(_line(last.metrics, job.attack, n))
    results: dict[str, Any] = {"attack": job.attack, "rows": rows}
    if len(job.counts) > 1:
        plot = plot_targeted if job.attack == "targeted" else plot_backdoor
        fig = plot(rows, run_dir.file(f"poisoning_{job.attack}.png"))
        results["figure"] = str(fig)
        say(f"figure: {fig}")
    if job.defenses and last is not None:
        used = set(clean.images.indices.tolist()) if clean.images.indices is not None else set()
        rest = train.subset(sorted(set(range(len(train))) - used))
        trusted = make_paired(subsample(rest, job.trusted_pairs, derive_seed(job.seed, "trusted")), seed=job.seed + 1)
        out = run_defenses(
            last,
            test,
            trusted,
            config=cfg,
            defenses=job.defenses,
            filter_fractions=(job.remove_fraction,),
            retrain_fractions=(job.remove_fraction,),
            cleanclip_epochs=(job.cleanclip_epochs,),
            seed=job.seed,
            progress=progress,
        )
        results["defenses"] = out
        metric = "targeted_success" if job.attack == "targeted" else "backdoor_asr"
        before = out["before"]
        for p in out["filters"]:
            say(
                f"{p['defense']}: flags {p['flagged']} pairs ({100 * p['fraction']:.1f}%): recall "
                f"{p['recall_at_flagged']:.2f}, precision {p['precision_at_flagged']:.2f}, AUROC {p['auroc']:.3f}"
            )
        for d in out["after"]:
            say(
                f"{d['defense']} ({d['setting']} {d['value']:g}): {metric} {before[metric]:.3f} -> {d[metric]:.3f}, "
                f"clean zero-shot {before['clean_zeroshot_top1']:.3f} -> {d['clean_zeroshot_top1']:.3f}"
            )
    run_dir.save_results(results, kind="poison-clip")
    return results


def run_badencoder_job(
    job: BadEncoderJob,
    run_dir: RunDir,
    *,
    data_root: Path | None = None,
    download: bool = False,
    deterministic: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Backdoor the victim, save the backdoored encoder and report CA / BA / ASR; writes ``results.json``.

    Raises:
        ValueError: the target label is not a class of the dataset.
    """
    from ...data import create_dataset
    from ...errors import UserError
    from ...models.checkpoint import save_encoder
    from ...victim import WhiteBox, load_encoder

    c = job.config
    encoder = load_encoder(job.victim, **job.victim_options)
    if not isinstance(encoder, WhiteBox):
        raise UserError(f"BadEncoder fine-tunes the victim's weights: {job.victim} is not a white-box encoder")
    net = encoder.net
    seed_everything(job.seed, deterministic=deterministic)
    train = create_dataset(job.dataset, "train", root=data_root, download=download)
    test = create_dataset(job.dataset, "test", root=data_root, download=download)
    if not 0 <= c.target_label < train.info.num_classes:
        raise ValueError(f"the target label must be in [0, {train.info.num_classes})")
    run_dir.save_config({"command": "poison badencoder", **_plain(job)})
    run_dir.save_env(job.seed, deterministic)
    run = run_badencoder(
        net, train, train, test, c, seed=job.seed, max_train=job.max_train, max_test=job.max_test, progress=progress
    )
    save_encoder(
        run_dir.file("encoder.safetensors"),
        run.backdoored,
        training={"method": "badencoder", "victim": str(job.victim), **_plain(c)},
        extra={
            "backdoor": {
                "trigger": c.trigger.to_dict(),
                "target_label": c.target_label,
                "reference_rows": run.reference_rows,
            }
        },
    )
    m = run.metrics
    results = {"metrics": m, "history": run.history, "steps": run.steps, "attack_seconds": round(run.seconds, 1)}
    run_dir.save_results(results, kind="poison-badencoder")
    say(
        f"CA {m['clean_accuracy']:.3f}  BA {m['backdoored_accuracy']:.3f}  ASR {m['asr']:.3f} (same trigger on the "
        f"clean encoder: {m['asr_clean_encoder']:.3f}; raw-feature probe: ASR {m['asr_raw']:.3f}); "
        f"backdoored encoder: {run_dir.file('encoder.safetensors')}"
    )
    return results
