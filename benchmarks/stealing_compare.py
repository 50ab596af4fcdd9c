"""Stealing benchmark: methods x levels x seeds of one arm under one equal-compute rule (JSONL rows).

    python benchmarks/stealing_compare.py --victim runs/victim-quick/encoder.safetensors --arm images \
        --levels 100 500 2500 25000 --methods rda conventional stolenencoder contsteal --rule steps --compute 100 \
        --seeds 0 --out rows.jsonl

Each line of ``--out`` is one ``RunRecord`` (``"kind": "run"``: images charged, API calls, unique images,
optimizer steps, forward passes, per-dataset scores) or, once per process, the target's and random
init's reference scores (``"kind": "reference"``); with ``--defense`` the victim answers through that
output defense (fresh per run) and the defense's honest-user cost is written once (``"kind": "cost"``).
``--tag`` labels an ablation and ``--set method.key=value`` sets attack options; ``--variant`` names one
of the page's ablations (:data:`VARIANTS`).

Victim: the quick-preset SimCLR cnn-small (`encoder-audit pretrain --preset quick`), trained on a
seeded 20,000-image subset of the Fashion-MNIST train split; the attacker's query pool is the other
40,000 train images. Downstream: Fashion-MNIST and digits (2,000-image banks, 1,000 test images).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch
import yaml
from stealing_common import QUICK_COMMON, QUICK_OPTIONS, query_pool

from encoder_audit.attacks.stealing.compare import references, run_comparison
from encoder_audit.attacks.stealing.compute import ComputeRule
from encoder_audit.attacks.stealing.evaluate import FeatureCache, StealEvalConfig
from encoder_audit.audit.family import result_to_json
from encoder_audit.data import create_dataset
from encoder_audit.defenses import DefendedEncoder, parse_defense_spec
from encoder_audit.defenses.cost import defense_cost
from encoder_audit.evaluate import EvalConfig
from encoder_audit.victim import Encoder, load_encoder


class FreshDefense:
    """The victim behind a defense that starts from zero for every attack run (stateful B4B coverage)."""

    def __init__(self, victim: Encoder, spec: str) -> None:
        self.victim, self.spec = victim, spec
        self.input_shape, self.embedding_dim = victim.input_shape, victim.embedding_dim
        self._current: DefendedEncoder | None = None

    def reset(self) -> None:
        self._current = DefendedEncoder(self.victim, [parse_defense_spec(self.spec)])

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if self._current is None:
            self.reset()
        assert self._current is not None
        return self._current.embed(images)


# Named RDA ablations of docs/benchmarks/stealing.md ("Prototype views"): tag -> attack options.
_GRAY = ["rda.prototype_recipe=rda-gray-prototype", "rda.train_recipe=rda-gray-train"]
VARIANTS: dict[str, list[str]] = {
    "rda-prototype P=1 crop 0.9": ["rda.prototype_views=1"],
    "rda-prototype P=3 crop 0.9": ["rda.prototype_views=3"],
    "rda-prototype P=10 crop 0.75": ["rda.prototype_crop=[0.75,0.75]"],
    "rda-prototype P=10 crop 0.5": ["rda.prototype_crop=[0.5,0.5]"],
    "rda-gray P=1": ["rda.prototype_views=1", *_GRAY],
    "rda-gray P=3": ["rda.prototype_views=3", *_GRAY],
    "rda-gray P=10": _GRAY,
    "rda-gray prototypes P=10, rda-train views": ["rda.prototype_recipe=rda-gray-prototype"],
}


def _options(sets: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {m: dict(o) for m, o in QUICK_OPTIONS.items()}
    for item in sets:
        k, _, v = item.partition("=")
        method, _, field = k.partition(".")
        out.setdefault(method, {})[field] = yaml.safe_load(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--arm", choices=["images", "equal_n"], default="images")
    ap.add_argument("--levels", type=int, nargs="+", required=True)
    ap.add_argument("--methods", nargs="+", default=["rda", "conventional", "stolenencoder", "contsteal"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--rule", choices=["steps", "forward_passes"], default="steps")
    ap.add_argument("--compute", type=int, default=100)
    ap.add_argument("--defense", default="none")
    ap.add_argument("--tag", default="")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="METHOD.KEY=VALUE attack option")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default=None, help="a named ablation (sets --tag, --set)")
    ap.add_argument("--eval-train", type=int, default=2000)
    ap.add_argument("--eval-test", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.variant is not None:
        args.tag, args.sets = args.variant, [*VARIANTS[args.variant], *args.sets]
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    victim = load_encoder(args.victim)
    pool = query_pool()
    sets = {n: (create_dataset(n, "train"), create_dataset(n, "test")) for n in ("fashion-mnist", "digits")}
    ec = StealEvalConfig(max_train=args.eval_train, max_test=args.eval_test)
    cache = FeatureCache()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write(obj: dict[str, Any]) -> None:
        with args.out.open("a") as f:
            f.write(json.dumps(obj) + "\n")

    for ref in references(victim, sets, ec, cache, QUICK_COMMON["surrogate"], pool):
        write({"kind": "reference", **result_to_json(ref)})
    attacked: Encoder = victim
    if args.defense != "none":
        attacked = FreshDefense(victim, args.defense)
        train, test = sets["fashion-mnist"]
        cost = defense_cost(
            victim, [args.defense], train, test, EvalConfig(knn_k=ec.k_for(ec.max_train), max_train=ec.max_train,
                                                            max_test=ec.max_test)
        )  # fmt: skip
        write({"kind": "cost", "defense": args.defense, "clean": cost["clean"], "rows": cost["rows"]})

    def on_record(rec: Any) -> None:
        write({"kind": "run", "tag": args.tag, **result_to_json(rec)})
        if isinstance(attacked, FreshDefense):
            attacked.reset()

    skipped: list[str] = []
    run_comparison(
        attacked,
        pool,
        sets,
        methods=args.methods,
        levels=args.levels,
        arm=args.arm,
        rule=ComputeRule(args.rule, args.compute),
        seeds=args.seeds,
        options=_options(args.sets),
        common=dict(QUICK_COMMON),
        eval_config=ec,
        cache=cache,
        target=victim,
        defense=args.defense,
        on_record=on_record,
        skipped=skipped,
    )
    for msg in skipped:
        write({"kind": "skipped", "tag": args.tag, "message": msg})


if __name__ == "__main__":
    main()
