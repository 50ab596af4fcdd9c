"""``encoder-audit steal``: steal an encoder (local checkpoint or HTTP service) into a surrogate.

Only parses arguments; the work is :func:`encoder_audit.attacks.stealing.job.run_steal`.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    VICTIM_SPEC_HELP,
    HelpFormatter,
    add_common,
    add_victim_arguments,
    emit,
    progress,
    resolved_options,
    section,
    victim_options,
)

EPILOG = """examples:
  encoder-audit steal --victim runs/…-pretrain/encoder.safetensors --method rda --queries 2500
  encoder-audit steal --victim enc.safetensors --method rda --method conventional --method stolenencoder \\
      --method contsteal --arm images --budget 2500 --rule steps --compute 120
  encoder-audit steal --victim http://127.0.0.1:8000 --api-key $KEY --method rda --queries 500 --query-data digits
  encoder-audit steal --victim encoder.safetensors --defense noise:sigma=0.5 --set attack.aggregate=median

--queries is the number of distinct query images N (arm equal_n, the paper's comparison): the victim is
charged N (conventional, stolenencoder), N x P (rda, P = prototype views) or the images of its steps
(contsteal). --arm images instead gives every method at most --budget images charged. Several --method
flags run one comparison in which every method gets the same optimizer steps (--rule steps) or surrogate
forward passes (--rule forward_passes), --compute of them (or --epochs whole epochs of N); results.json
lists images charged, API calls, unique images, steps and forward passes per method.
--defense wraps a LOCAL victim in an output defense (to simulate a defended API). Attack options:
--set attack.KEY=VALUE (every method that has KEY) or --set attack.METHOD.KEY=VALUE.
"""


def registries() -> list[tuple[str, dict[str, str]]]:
    from ..attacks.stealing import STEALING_ATTACKS

    return [("stealing attacks (encoder-audit steal --method)", STEALING_ATTACKS.describe())]


def register(sub: argparse._SubParsersAction) -> None:
    from ..attacks.stealing import STEALING_ATTACKS
    from ..attacks.stealing.compute import ARMS, RULES
    from ..attacks.stealing.job import STEAL_PRESETS

    p = sub.add_parser(
        "steal",
        help="steal an encoder into a surrogate (RDA, Cont-Steal, StolenEncoder, Conventional)",
        description="Query a victim encoder (a checkpoint, or the URL of an embedding service) with images of a "
        "query dataset, train a surrogate from its answers, and report the exact query cost and the surrogate's "
        "fidelity and downstream accuracy beside the target's and a random-init encoder's. Several methods are "
        "compared under one equal-compute rule.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--victim", required=True, help=VICTIM_SPEC_HELP)
    add_victim_arguments(p)
    p.add_argument("--api-key", default=None, help="API key for a URL victim (default: $ENCODER_AUDIT_API_KEY)")
    p.add_argument(
        "--method", action="append", choices=STEALING_ATTACKS.names(), default=None, help="attack (repeatable)"
    )
    p.add_argument("--arm", choices=ARMS, default="equal_n", help="equal distinct images N, or equal images charged")
    p.add_argument("--queries", type=int, default=2_500, help="distinct query images N (RDA's default 2,500)")
    p.add_argument(
        "--budget", type=int, default=None, help="images charged per method (cap; the level of --arm images)"
    )
    p.add_argument("--rule", choices=RULES, default="steps", help="what every method gets the same amount of")
    p.add_argument("--compute", type=int, default=None, help="optimizer steps or forward passes per method")
    p.add_argument("--epochs", type=int, default=None, help="whole epochs of N images (turned into steps)")
    p.add_argument("--query-data", default="fashion-mnist", help="dataset the query images come from")
    p.add_argument("--query-split", default="train", help="split of the query dataset")
    p.add_argument("--preset", choices=sorted(STEAL_PRESETS), default="quick", help="surrogate and compute defaults")
    p.add_argument("--surrogate", default=None, help="surrogate architecture (default from preset)")
    p.add_argument(
        "--defense", action="append", default=[], metavar="SPEC", help="local output defense, e.g. noise:sigma=0.1"
    )
    p.add_argument(
        "--eval-dataset",
        action="append",
        default=None,
        help="downstream dataset (repeatable; default fashion-mnist, digits)",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation")
    add_common(p)
    p.set_defaults(func=run)


def open_victim(spec: str, api_key: str | None = None, *, device: str = "cpu") -> Any:
    """A checkpoint path or an ``http(s)://`` URL as an :class:`~encoder_audit.victim.Encoder`."""
    from ..attacks.stealing.job import open_victim as _open

    return _open(spec, api_key, device=device)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..attacks.stealing.job import StealJob, run_steal
    from ..runs import RunDir

    attack = section(resolved_options(args), "attack")
    methods = tuple(args.method or ["rda"])
    per_method = {m: dict(attack.pop(m)) for m in methods if isinstance(attack.get(m), dict)}
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    job = StealJob(
        victim=args.victim,
        victim_options=victim_options(args),
        methods=methods,
        arm=args.arm,
        queries=args.queries,
        budget=args.budget,
        rule=args.rule,
        compute=args.compute,
        epochs=args.epochs,
        preset=args.preset,
        surrogate=args.surrogate,
        options=per_method,
        common=attack,
        defenses=tuple(args.defense),
        query_data=args.query_data,
        query_split=args.query_split,
        eval_datasets=() if args.no_eval else tuple(args.eval_dataset or ["fashion-mnist", "digits"]),
        seed=args.seed,
        device=device,
        api_key=args.api_key,
        data_root=None if args.data_root is None else str(args.data_root),
        download=args.download,
    )
    run_dir = RunDir.create("steal", args.runs_dir, out=args.out)
    emit("\n".join(run_steal(job, run_dir, progress=progress(args), deterministic=args.deterministic)))
    return 0
