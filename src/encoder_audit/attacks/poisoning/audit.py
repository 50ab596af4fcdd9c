"""The poisoning audit of ``encoder-audit audit``: how few poisoned pairs take over a CLIP-style model.

:func:`run_poisoning_audit` trains CPU-scale CLIP-style models on captioned copies of the given
training data at a few poison levels (targeted poisons per trial k, backdoor poisons m), measures
targeted success, backdoor ASR / z-score and clean zero-shot accuracy, and, when a white-box victim
encoder is given, runs BadEncoder on it. Figures go to ``out_dir``; the return value follows the
audit contract (headline, verdict, tables, figures, costs, config, caveats).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ...data.base import ImageDataset
from ...victim import Encoder, LocalEncoder
from .badencoder import BadEncoder, BadEncoderConfig, evaluate_badencoder, reference_images
from .experiment import ClipExperimentConfig, run_sweep
from .plots import aggregate, plot_backdoor, plot_targeted

log = logging.getLogger(__name__)

__all__ = ["PRESETS", "run_poisoning_audit"]

# quick: three trainings of ~500 Adam steps each (1000 pairs, batch 64, 30 epochs, cnn-small width 16); the
# long-training regime in which targeted poisoning succeeds with a handful of poisons (docs/benchmarks/poisoning.md).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "experiment": ClipExperimentConfig(train_size=1000, epochs=30),
        "levels": [(0, 0), (2, 10), (8, 30)],
        "badencoder": BadEncoderConfig(shadow_size=2000, epochs=8, batch_size=64),
    },
    "full": {
        "experiment": ClipExperimentConfig(train_size=2000, epochs=40),
        "levels": [(0, 0), (1, 10), (2, 25), (4, 50), (8, 100), (16, 200), (64, 400)],
        "badencoder": BadEncoderConfig(shadow_size=10000, epochs=20, batch_size=128),
    },
}


def _verdict(rows: list[dict[str, Any]]) -> str:
    poisoned = [r for r in rows if r["backdoor_poisons"] > 0 or r["targeted_poisons_per_target"] > 0]
    if not poisoned:
        return "low"
    base = next((r for r in rows if r["backdoor_poisons"] == 0), rows[0])
    gain_bd = max(r["backdoor_asr"] - base["backdoor_baseline_target_rate"] for r in poisoned)
    gain_t = max(r["targeted_success"] for r in poisoned)
    best = max(gain_bd, gain_t)
    return "high" if best >= 0.5 else ("medium" if best >= 0.15 else "low")


def run_poisoning_audit(
    train_data: ImageDataset,
    test_data: ImageDataset,
    out_dir: Path,
    *,
    preset: str = "quick",
    seed: int = 0,
    victim: Encoder | None = None,
) -> dict[str, Any]:
    """Targeted + backdoor poison-count curve on a CLIP-style model trained on ``train_data``; BadEncoder on ``victim``.

    Args:
        train_data: labelled training images (captions are generated from the class names).
        test_data: labelled held-out images (target pool and evaluation set).
        out_dir: where figures and manifests are written.
        preset: ``quick`` (three trainings, ~2 min on an idle 2-core CPU) or ``full``.
        seed: seed of the trainings and attacks.
        victim: a white-box encoder (``LocalEncoder``) to backdoor with BadEncoder; skipped if None or
            not white-box.

    Returns:
        The audit-contract dictionary (JSON-serialisable).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if train_data.labels is None or test_data.labels is None or not train_data.info.class_names:
        raise ValueError("the poisoning audit needs labelled data with class names (captions come from them)")
    p = PRESETS[preset]
    cfg: ClipExperimentConfig = p["experiment"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    caveats = [
        "CPU scale: a cnn-small (width 16) image tower and a 1-layer text tower trained from scratch on "
        f"{cfg.train_size} template-captioned pairs for {cfg.epochs} epochs, not CLIP on 3M web pairs.",
        f"{cfg.targets} targeted (image, label) trials share one training run per level (the paper trains one "
        "model per trial); targeted and backdoor poisons also share the run.",
        "Backdoor z-score divides by the std of clean pairwise cosines; the variance form (DECREE) is in the rows.",
    ]
    rows = run_sweep(train_data, test_data, levels=p["levels"], seeds=[seed], config=cfg, out_dir=out_dir / "manifests")
    figures = [
        {
            "path": str(plot_targeted(rows, out_dir / "poisoning_targeted.png")),
            "caption": "Targeted poisoning: success rate (y' top-1) and mean rank of y' vs poisons per target.",
        },
        {
            "path": str(plot_backdoor(rows, out_dir / "poisoning_backdoor.png")),
            "caption": "Patch backdoor: ASR, no-trigger rate into y', clean zero-shot accuracy and z-score vs poisons.",
        },
    ]
    table_rows = [
        [
            r["targeted_poisons_per_target"],
            r["backdoor_poisons"],
            r["train_pairs"],
            round(r["clean_zeroshot_top1"], 3),
            round(r["targeted_success"], 3),
            round(r["targeted_mean_rank"], 2),
            round(r["backdoor_asr"], 3),
            round(r["backdoor_baseline_target_rate"], 3),
            round(r["backdoor_zscore"], 2),
        ]
        for r in rows
    ]
    tables = [
        {
            "title": "Poisoned CLIP-style training (zero-shot)",
            "columns": [
                "k per target",
                "backdoor m",
                "pairs",
                "clean acc",
                "targeted success",
                "rank of y'",
                "backdoor ASR",
                "no-trigger rate",
                "z-score",
            ],
            "rows": table_rows,
            "note": f"seed {seed}; {cfg.targets} targeted trials per run; trigger {cfg.trigger.to_dict()}",
        }
    ]
    badencoder: dict[str, Any] | None = None
    if victim is not None and isinstance(victim, LocalEncoder):
        bcfg: BadEncoderConfig = p["badencoder"]
        refs, _ = reference_images(train_data, bcfg.target_label, bcfg.references, seed=seed)
        net = victim.net
        shadow = train_data
        if refs.shape[1:] != net.input_shape:
            caveats.append("BadEncoder skipped: the victim's input shape differs from the data's.")
        else:
            attack = BadEncoder(bcfg)
            bad = attack.attack(net, shadow, refs, seed=seed, progress=False)
            badencoder = evaluate_badencoder(
                net, bad, train_data, test_data, bcfg.trigger, bcfg.target_label, seed=seed
            )
            badencoder["attack_seconds"] = round(attack.seconds, 1)
            tables.append(
                {
                    "title": "BadEncoder on the victim (linear probe by an unsuspecting user)",
                    "columns": ["CA (clean encoder)", "BA (backdoored)", "ASR", "ASR on clean encoder"],
                    "rows": [
                        [
                            round(badencoder[k], 3)
                            for k in ("clean_accuracy", "backdoored_accuracy", "asr", "asr_clean_encoder")
                        ]
                    ],
                    "note": f"{bcfg.epochs} epochs on {bcfg.shadow_size} shadow images; "
                    f"trigger {bcfg.trigger.to_dict()}",
                }
            )
    elif victim is not None:
        caveats.append("BadEncoder skipped: it needs the victim's weights (a LocalEncoder), not a black-box API.")
    agg_bd = aggregate(rows, "backdoor_poisons", ["backdoor_asr", "backdoor_baseline_target_rate"])
    agg_t = aggregate(rows, "targeted_poisons_per_target", ["targeted_success"])
    win_bd = next((a for a in agg_bd if a["backdoor_poisons"] > 0 and a["backdoor_asr"] >= 0.5), None)
    win_t = next((a for a in agg_t if a["targeted_poisons_per_target"] > 0 and a["targeted_success"] >= 0.5), None)
    parts = []
    if win_bd:
        parts.append(
            f"{win_bd['backdoor_poisons']} backdoor poisons "
            f"({100 * win_bd['backdoor_poisons'] / win_bd['train_pairs']:.2f}% "
            f"of {win_bd['train_pairs']} pairs) reach {100 * win_bd['backdoor_asr']:.0f}% ASR"
        )
    else:
        top = agg_bd[-1]
        parts.append(
            f"no tested backdoor count reaches 50% ASR (best {100 * top['backdoor_asr']:.0f}% with "
            f"{top['backdoor_poisons']} poisons)"
        )
    if win_t:
        parts.append(f"{win_t['targeted_poisons_per_target']} poisons per target flip >= 50% of targeted trials")
    else:
        parts.append(
            f"targeted poisoning succeeds in at most {100 * max(a['targeted_success'] for a in agg_t):.0f}% of trials"
        )
    headline = "Poisoning a CPU-scale CLIP-style model: " + "; ".join(parts) + "."
    if badencoder:
        headline += (
            f" BadEncoder: ASR {100 * badencoder['asr']:.0f}% at BA {100 * badencoder['backdoored_accuracy']:.0f}%."
        )
    return {
        "headline": headline,
        "verdict": "high" if badencoder and badencoder["asr"] >= 0.5 else _verdict(rows),
        "tables": tables,
        "figures": figures,
        "costs": {
            "query_images": 0,
            "api_calls": 0,
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "trainings": len(rows),
            "torch_threads": threads,
        },
        "config": {
            "preset": preset,
            "seed": seed,
            "levels": p["levels"],
            "experiment": asdict(cfg),
            "badencoder": asdict(p["badencoder"]) if badencoder else None,
        },
        "rows": rows,
        "badencoder": badencoder,
        "caveats": caveats,
    }
