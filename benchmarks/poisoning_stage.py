"""The poisoning stage of ``encoder-audit audit`` on its own: one preset, one seed, the stage's result as JSON.

python benchmarks/poisoning_victim.py --seed 0 --out runs/poisoning-victim-s0
python benchmarks/poisoning_stage.py --victim runs/poisoning-victim-s0/encoder.safetensors --seed 0 --out stage_s0.json

Runs exactly what the audit runs for the poisoning section (splits of ``--seed``, the preset's
poison levels, positive control, BadEncoder on the victim and the defenses) and writes the stage's
result (``result``), the rendered headline and verdict, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from encoder_audit.audit.config import resolve_config
from encoder_audit.audit.family import result_to_json
from encoder_audit.audit.plan import prepare_data
from encoder_audit.audit.poisoning import run_poisoning
from encoder_audit.audit.runner import stage_context
from encoder_audit.audit.sections.poisoning import build_poisoning_section
from encoder_audit.victim import load_encoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--victim", required=True, help="encoder checkpoint (white-box: BadEncoder runs on it)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="config override, e.g. poisoning.levels=[[0,0]]")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    config = resolve_config(a.preset, overrides=["device=cpu", *a.set])
    data = prepare_data(config.data, seed=a.seed)
    victim = load_encoder(a.victim)
    run_dir = a.out.with_suffix("")
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = stage_context(config, run_dir, "poisoning", run_seed=a.seed, data=data, victim=lambda: victim)
    t0 = time.perf_counter()
    result = run_poisoning(ctx, config.poisoning)
    seconds = time.perf_counter() - t0
    section = build_poisoning_section(result)
    a.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(a).items()},
                "seconds": round(seconds, 1),
                "torch_threads": torch.get_num_threads(),
                "headline": section.headline.render(),
                "verdict": section.verdict.checked().level,
                "rule": section.verdict.rule,
                "controls": [c.to_dict() for c in section.verdict.controls],
                "result": result_to_json(result),
            },
            indent=1,
        )
    )
    print(f"{seconds:.0f} s: {section.verdict.checked().level}: {section.headline.render()}")


if __name__ == "__main__":
    main()
