"""``encoder-audit steal``: steal an encoder (local checkpoint or HTTP service) into a surrogate."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import HelpFormatter, add_common, emit, progress, resolved_options, section

EPILOG = """examples:
  encoder-audit steal --victim runs/…-pretrain/encoder.safetensors --method rda --queries 2500
  encoder-audit steal --victim http://127.0.0.1:8000 --api-key $KEY --method rda --queries 500 --query-data digits
  encoder-audit steal --victim encoder.safetensors --method contsteal --queries 250 --epochs 10
  encoder-audit steal --victim encoder.safetensors --defense noise:sigma=0.5 --set attack.aggregate=median

--queries is the number of distinct query images N; the victim is charged N (conventional,
stolenencoder), N x P (rda, P = prototype views) or N x epochs (contsteal) images; --budget caps it.
--defense wraps a LOCAL victim in an output defense (to simulate a defended API); a remote service
applies its own. Attack options go through --set attack.KEY=VALUE (see `encoder-audit info`).
"""


def registries() -> list[tuple[str, dict[str, str]]]:
    from ..attacks.stealing import STEALING_ATTACKS

    return [("stealing attacks (encoder-audit steal --method)", STEALING_ATTACKS.describe())]


def register(sub: argparse._SubParsersAction) -> None:
    from ..attacks.stealing import STEALING_ATTACKS

    p = sub.add_parser(
        "steal",
        help="steal an encoder into a surrogate (RDA, Cont-Steal, StolenEncoder, Conventional)",
        description="Query a victim encoder (a checkpoint, or the URL of an embedding service) with images of a "
        "query dataset, train a surrogate from its answers, and report the exact query cost and the surrogate's "
        "fidelity and downstream accuracy beside the target's and a random-init encoder's.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--victim", required=True, help="encoder .safetensors checkpoint or http(s):// URL of the service")
    p.add_argument("--api-key", default=None, help="API key for a URL victim (default: $ENCODER_AUDIT_API_KEY)")
    p.add_argument("--method", choices=STEALING_ATTACKS.names(), default="rda", help="stealing attack")
    p.add_argument("--queries", type=int, default=2_500, help="distinct query images N (RDA's default 2,500)")
    p.add_argument("--budget", type=int, default=None, help="cap on query images charged (refused up front if short)")
    p.add_argument("--query-data", default="fashion-mnist", help="dataset the query images come from")
    p.add_argument("--query-split", default="train", help="split of the query dataset")
    p.add_argument("--preset", choices=["quick", "paper"], default="quick", help="surrogate and epoch defaults")
    p.add_argument("--surrogate", default=None, help="surrogate architecture (default from preset)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: from preset)")
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
    if spec.startswith(("http://", "https://")):
        from ..service.client import RemoteEncoder  # lazy: only URL victims need the HTTP client

        key = api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
        if not key:
            raise ValueError("a URL victim needs --api-key or $ENCODER_AUDIT_API_KEY")
        return RemoteEncoder(spec, key)
    from ..victim import load_encoder

    return load_encoder(spec, device=device)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..attacks.stealing import attack_config, create_attack
    from ..attacks.stealing.evaluate import StealEvalConfig, evaluate_stealing
    from ..attacks.stealing.presets import STEALING_PRESETS, epochs_for
    from ..attacks.stealing.sweep import _subset
    from ..config import config_to_dict
    from ..data import create_dataset
    from ..defenses import DefendedEncoder, parse_defense_spec
    from ..runs import RunDir, seed_everything
    from ..victim import QueryCounter

    if args.queries < 2:
        raise ValueError(f"--queries must be >= 2, got {args.queries}")
    values = resolved_options(args)
    preset = STEALING_PRESETS[args.preset]
    device = (
        "cpu"
        if args.device == "auto" and not torch.cuda.is_available()
        else ("cuda" if args.device == "auto" else args.device)
    )
    opts: dict[str, Any] = {"surrogate": args.surrogate or preset.surrogate, "seed": args.seed, "device": device}
    opts.update(preset.options.get(args.method, {}))
    opts.update(section(values, "attack"))
    probe = create_attack(args.method, **{**opts, "epochs": preset.epochs})
    if args.epochs is not None:
        opts["epochs"] = args.epochs
    elif "epochs" not in section(values, "attack"):
        opts["epochs"] = epochs_for(preset, args.method, args.queries, probe.views_per_image())
    config = attack_config(args.method, **opts)
    attack = create_attack(args.method, config)
    defenses = [parse_defense_spec(s) for s in args.defense]

    seed_everything(args.seed, deterministic=args.deterministic)
    pool = create_dataset(args.query_data, args.query_split, root=args.data_root, download=args.download)
    queries = _subset(pool, args.queries, args.seed)
    raw_victim = open_victim(args.victim, args.api_key, device="cpu")
    remote = args.victim.startswith(("http://", "https://"))
    if defenses and remote:
        raise ValueError("--defense simulates a defended API around a local checkpoint; a service applies its own")
    victim: Any = DefendedEncoder(raw_victim, defenses) if defenses else raw_victim
    counter = QueryCounter(victim, budget=args.budget)

    run_dir = RunDir.create("steal", args.runs_dir, out=args.out)
    run_dir.save_config(
        {
            "command": "steal",
            "victim": args.victim if not remote else args.victim.split("?")[0],
            "method": args.method,
            "attack": config_to_dict(config),
            "queries": args.queries,
            "budget": args.budget,
            "query_data": {"name": args.query_data, "split": args.query_split, "fingerprint": queries.fingerprint()},
            "defenses": args.defense,
            "preset": args.preset,
        }
    )
    run_dir.save_env(args.seed, args.deterministic)
    emit(f"run directory: {run_dir.path}")
    emit(
        f"{args.method}: N={len(queries)} query images -> {attack.expected_queries(len(queries)):,} images charged "
        f"to the victim, {config.epochs} epochs of a {config.surrogate} surrogate"
    )
    result = attack.extract(counter, queries, progress=progress(args))
    checkpoint = result.save(run_dir.file("surrogate.safetensors"))
    server_usage = None
    if remote and hasattr(raw_victim, "usage"):
        server_usage = raw_victim.usage()
    results: dict[str, Any] = {"attack": result.summary(), "usage": result.usage, "checkpoint": str(checkpoint)}
    if server_usage is not None:
        results["server_usage"] = server_usage
    for record in result.history:
        run_dir.log_metrics(record)
    lines = [
        f"charged {result.usage['query_images']:,} query images in {result.usage['api_calls']:,} calls "
        f"({result.unique_images:,} unique); trained in {result.train_seconds:.0f}s "
        f"({result.images_per_second:.0f} img/s); surrogate: {checkpoint}"
    ]
    if not args.no_eval:
        names = args.eval_dataset or ["fashion-mnist", "digits"]
        eval_sets = {
            n: (
                create_dataset(n, "train", root=args.data_root, download=args.download),
                create_dataset(n, "test", root=args.data_root, download=args.download),
            )
            for n in names
        }
        ec = StealEvalConfig(max_train=preset.eval_max_train, max_test=preset.eval_max_test, seed=args.seed)
        ev = evaluate_stealing(result.encoder(), raw_victim, eval_sets, ec)
        results["evaluation"] = ev
        lines.append(f"{'dataset':<15}{'encoder':<13}{'kNN':>8}{'linear':>9}{'cos':>8}{'c-cos':>8}{'agree':>8}")
        for n in names:
            d = ev[n]
            lines.append(
                f"{n:<15}{'surrogate':<13}{d['surrogate']['knn']:>8.2%}{d['surrogate']['linear']:>9.2%}"
                f"{d['cosine']:>8.3f}{d['cosine_centered']:>8.3f}{d['agreement']:>8.2%}"
            )
            for who in ("target", "random_init"):
                if who in d:
                    lines.append(f"{'':<15}{who.replace('_', ' '):<13}{d[who]['knn']:>8.2%}{d[who]['linear']:>9.2%}")
    _plot_history(result.history, run_dir.file("loss.png"), args.method)
    results["figures"] = [str(run_dir.file("loss.png"))]
    run_dir.save_results(results, kind="steal")
    emit("\n".join(lines))
    return 0


def _plot_history(history: list[dict[str, float]], path: Any, method: str) -> None:
    from matplotlib.figure import Figure

    from ..io import atomic_write

    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.subplots()
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{method} loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
