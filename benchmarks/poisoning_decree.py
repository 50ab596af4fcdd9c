"""DECREE on the quick audit victim and its BadEncoder-backdoored copies: PL1-norm, similarity, decision.

python benchmarks/poisoning_victim.py --seed 0 --out runs/poisoning-victim-s0
python benchmarks/poisoning_badencoder.py --victim runs/poisoning-victim-s0/encoder.safetensors --seed 0 \\
    --out runs/decree/badencoder-s0.json --save runs/decree/badencoder-s0
python benchmarks/poisoning_decree.py --clean runs/poisoning-victim-s0 \\
    --suspect runs/decree/badencoder-s0 runs/decree/badencoder-s1 --out runs/decree/decree.json

Every encoder is scanned with the same ``--images`` clean test images of the victim's dataset (the
official code inverts on clean test images of the pre-training distribution) and the same seeds. The
``--reference`` encoders (clean, same recipe; e.g. ``poisoning_victim.py --seed 1``) give one PL1-norm
each (median over ``--seeds``), the calibration of
:func:`encoder_audit.defenses.decree.detect_backdoor` with ``reference``; the clean victim is scanned
as a suspect too (the false-positive side). Without ``--reference`` the clean victim is its own
reference, which says nothing about false positives. ``threshold`` in the output is the threshold used
(calibrated when there is a reference).

Two diagnostics use the trigger the BadEncoder sidecar records (not available to a real defender):
``trigger_mass`` (fraction of the inverted mask's L1 mass on the planted trigger's square) and
``planted_similarity`` (mean pairwise cosine of the images stamped with the planted trigger itself,
whose PL1-norm is ``planted_pl1``): if the planted trigger does not reach ``success_similarity``, or a
clean encoder has a smaller trigger of its own, DECREE cannot tell the two apart.

Measured (quick victim seeds 0 and 1, BadEncoder seeds 0-2 on victim 0, DECREE seeds 0-2, defaults):
DECREE does **not** separate them on this recipe. PL1-norms: reference victim-s1 0.090-0.096, clean
victim-s0 0.065-0.073, backdoored 0.065-0.079, although the planted 9x9 trigger (PL1 0.103) collapses the
backdoored encoders (pairwise cosine 0.993-0.995 vs 0.77 on the clean ones). The clean cnn-small has
triggers of its own that are smaller than the planted one: scattered single white pixels on the
stride-2 grid of its stem (Fashion-MNIST backgrounds are black), which saturate a few channels of its
non-negative pooled features. The same holds with a 0.995 success level (``--success-similarity 0.995``:
clean 0.086-0.119 with the reference, backdoored 0.094-0.107) and a 2x2-pixel mask (``--mask-cells 14``:
clean 0.118-0.172, backdoored 0.113-0.159); rows in docs/benchmarks/data/poisoning/. The inverted
masks of backdoored encoders do lie more on the planted square (``trigger_mass`` 0.17-0.27 vs
0.09-0.16), a signal a defender cannot read without knowing where the trigger is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from encoder_audit.attacks.poisoning.trigger import Trigger
from encoder_audit.audit.config import preset_config
from encoder_audit.data import ImageDataset, create_dataset
from encoder_audit.defenses.decree import DecreeConfig, DecreeResult, detect_backdoor, mean_pairwise_cosine
from encoder_audit.models import load_encoder_net
from encoder_audit.models.base import EncoderNet
from encoder_audit.models.checkpoint import read_sidecar


def _trigger_of(path: Path) -> Trigger:
    """The planted trigger from a BadEncoder sidecar (default: the attack's default trigger)."""
    try:
        t = read_sidecar(path)["training"]["config"]["trigger"]
        return Trigger(**{**t, "position": tuple(t["position"])})
    except (KeyError, TypeError, FileNotFoundError):
        from encoder_audit.attacks.poisoning.badencoder import BadEncoderConfig

        return BadEncoderConfig().trigger


def _square(trigger: Trigger, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    r, c = trigger.positions(1, size)[0].tolist()
    return (r, r + trigger.size), (c, c + trigger.size)


@torch.no_grad()
def _planted_similarity(net: EncoderNet, x: torch.Tensor, trigger: Trigger) -> float:
    xt = trigger.paste((x * 255).round().to(torch.uint8))[0].float() / 255.0
    return float(mean_pairwise_cosine(net(xt)))


def _scan(
    name: str,
    path: Path,
    data: ImageDataset,
    cfg: DecreeConfig,
    seeds: list[int],
    trigger: Trigger,
    reference: tuple[float, ...] | None,
) -> dict[str, Any]:
    net, _ = load_encoder_net(path)
    rows, (tr, tc) = [], _square(trigger, net.image_size)
    for seed in seeds:
        r: DecreeResult = detect_backdoor(net, data, cfg, seed=seed, reference=reference)
        rows.append({**r.to_dict(), "seed": seed, "trigger_mass": round(r.mask_mass_in(tr, tc), 4)})
    g = torch.Generator().manual_seed(seeds[0])
    x = data.float_images(torch.randperm(len(data), generator=g)[: cfg.images])
    pl1 = [row["pl1_norm"] for row in rows]
    return {
        "encoder": name,
        "path": str(path),
        "pl1_norm_median": statistics.median(pl1),
        "pl1_norm": pl1,
        "similarity": [row["similarity"] for row in rows],
        "clean_similarity": rows[0]["clean_similarity"],
        "trojaned": [row["trojaned"] for row in rows],
        "threshold": rows[0]["threshold"],
        "trigger_mass": [row["trigger_mass"] for row in rows],
        "steps": [row["steps"] for row in rows],
        "seconds": [round(row["seconds"], 2) for row in rows],
        "planted_pl1": trigger.size**2 / (net.image_size * net.image_width),
        "planted_similarity": _planted_similarity(net, x, trigger),
        "runs": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", type=Path, required=True, help="clean victim checkpoint (file or folder)")
    p.add_argument("--suspect", type=Path, nargs="+", required=True, help="encoders to scan (BadEncoder --save)")
    p.add_argument(
        "--reference",
        type=Path,
        nargs="*",
        default=None,
        help="clean encoders of the same recipe to calibrate on (default: the --clean victim itself)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="DECREE seeds (images, init)")
    p.add_argument("--images", type=int, default=DecreeConfig.images)
    p.add_argument("--max-epochs", type=int, default=DecreeConfig.max_epochs)
    p.add_argument("--success-similarity", type=float, default=DecreeConfig.success_similarity)
    p.add_argument("--early-stop-patience", type=int, default=DecreeConfig.early_stop_patience)
    p.add_argument("--mask-cells", type=int, default=None, help="coarse mask (cells per side); default per pixel")
    p.add_argument("--preset", default="quick", help="audit preset whose dataset supplies the clean images")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = DecreeConfig(
        images=a.images,
        max_epochs=a.max_epochs,
        success_similarity=a.success_similarity,
        early_stop_patience=a.early_stop_patience,
        mask_cells=a.mask_cells,
    )
    data = create_dataset(preset_config(a.preset).data.dataset, "test")
    t0 = time.perf_counter()
    trigger = _trigger_of(a.suspect[0])
    refs = a.reference or [a.clean]
    ref_scans = [_scan(f"reference:{path}", path, data, cfg, a.seeds, trigger, None) for path in refs]
    # one PL1-norm per reference encoder: the median over the seeds
    reference = tuple(r["pl1_norm_median"] for r in ref_scans)
    scans = [_scan("clean", a.clean, data, cfg, a.seeds, trigger, reference)]
    scans += [_scan(path.name, path, data, cfg, a.seeds, _trigger_of(path), reference) for path in a.suspect]
    out = {
        "config": asdict(cfg),
        "dataset": data.name,
        "seeds": a.seeds,
        "reference": [str(r) for r in refs],
        "reference_pl1": list(reference),
        "calibrated_threshold": cfg.reference_ratio * min(reference),
        "self_reference": a.reference is None,
        "encoders": [*ref_scans, *scans] if a.reference else scans,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    for e in out["encoders"]:
        print(json.dumps({k: v for k, v in e.items() if k not in ("runs", "path")}))
    print(json.dumps({k: out[k] for k in ("reference_pl1", "calibrated_threshold", "seconds")} | {"out": str(a.out)}))


if __name__ == "__main__":
    main()
