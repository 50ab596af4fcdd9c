"""``encoder-audit membership``: EncoderMI membership inference against an encoder, and the data-owner audit."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from .common import HelpFormatter, add_common, emit, progress

EPILOG = """examples:
  # 1. train a target that overfits its 32 members (saves encoder + splits.json with members/nonmembers/shadow)
  encoder-audit membership make-target --recipe overfit --out runs/mi-target
  # 2. attack it: EncoderMI-V/S/T and every baseline, shadow mirrors the target's recipe (read from its sidecar)
  encoder-audit membership --victim runs/mi-target/encoder.safetensors --splits runs/mi-target/splits.json
  # the same through the embedding service, one method
  encoder-audit membership --victim http://127.0.0.1:8000 --api-key $KEY --splits runs/mi-target/splits.json \\
      --method encodermi-t --shadow-recipe overfit
  # explicit sets: DATASET[:SPLIT], imagefolder:PATH, or MANIFEST.json[:PART]
  encoder-audit membership --victim enc.safetensors --members runs/mi-target/splits.json:members \\
      --nonmembers fashion-mnist:test --shadow-data runs/mi-target/splits.json:shadow --method all
  # data owner: was my folder used? (reference non-members from the same distribution)
  encoder-audit membership --victim enc.safetensors --audit my_photos/ --nonmembers runs/mi-target/splits.json
"""

METHOD_CHOICES = ["encodermi-v", "encodermi-s", "encodermi-t", "all", "encodermi"]


def register(sub: argparse._SubParsersAction) -> None:
    from ..attacks.membership import MEMBERSHIP_ATTACKS
    from ..attacks.membership.targets import RECIPES

    p = sub.add_parser(
        "membership",
        help="membership inference (EncoderMI) and the data-owner audit",
        description="Infer whether images were in an encoder's pre-training set with EncoderMI-V/S/T "
        "(Liu et al., CCS 2021) and baselines, trained on a shadow encoder; report accuracy, precision, "
        "recall, AUC and TPR at 1%/0.1% FPR with a log-log ROC. With --audit FOLDER, test a data owner's "
        "images against reference non-members and give a verdict with its false-positive rate.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--victim", default=None, help="encoder checkpoint (.safetensors) or http(s):// URL of the service")
    p.add_argument("--api-key", default=None, help="API key for a URL victim (default $ENCODER_AUDIT_API_KEY)")
    p.add_argument("--splits", default=None, help="manifest with parts members / nonmembers / shadow (make-target)")
    p.add_argument("--members", default=None, help="members: DATASET[:SPLIT], imagefolder:PATH or MANIFEST.json[:PART]")
    p.add_argument("--nonmembers", default=None, help="non-members (same distribution as the members)")
    p.add_argument("--shadow-data", default=None, help="the inferrer's own images for the shadow encoder")
    p.add_argument(
        "--method",
        action="append",
        default=None,
        help=f"attack (repeatable): all (EncoderMI-V/S/T + baselines), encodermi (V/S/T), or one of "
        f"{', '.join(MEMBERSHIP_ATTACKS.names())}; default all",
    )
    p.add_argument("--audit", type=Path, default=None, metavar="FOLDER", help="data-owner audit of a folder of images")
    p.add_argument("--alpha", type=float, default=0.01, help="false-positive rate of the --audit verdict")
    p.add_argument("--max-samples", type=int, default=500, help="cap on members and on non-members scored (0 = all)")
    p.add_argument("--n-views", type=int, default=10, help="augmented views per image (queries per image)")
    p.add_argument("--similarity", choices=["cosine", "correlation", "euclidean"], default="cosine")
    p.add_argument(
        "--shadow-recipe",
        default="auto",
        help=f"shadow training recipe: auto (the victim's own recipe if its sidecar records one, else overfit) "
        f"or one of {', '.join(RECIPES)}; the flags below override its fields",
    )
    p.add_argument("--shadow-arch", default=None, help="shadow architecture (resnet18, vgg11, cnn-small)")
    p.add_argument("--shadow-method", choices=["simclr", "moco"], default=None, help="shadow algorithm")
    p.add_argument("--shadow-members", type=int, default=None, help="shadow members (= shadow non-members)")
    p.add_argument("--shadow-epochs", type=int, default=None, help="shadow training epochs")
    p.add_argument("--reference", type=int, default=300, help="labelled shadow images for the baselines' heads")
    add_common(p)
    p.set_defaults(func=run)

    sp = p.add_subparsers(dest="action", metavar="{make-target}")
    t = sp.add_parser(
        "make-target",
        help="train a target encoder with known members (overfit or generalizing recipe)",
        description="Draw members / non-members / shadow images i.i.d. from one dataset split, pre-train a "
        "target encoder on the members and save encoder.safetensors + splits.json in --out.",
        formatter_class=HelpFormatter,
    )
    t.add_argument("--recipe", choices=sorted(RECIPES), default="overfit", help="training recipe")
    t.add_argument("--dataset", default="fashion-mnist", help="source dataset (train split)")
    t.add_argument("--members", type=int, default=None, help="members (default from the recipe)")
    t.add_argument("--nonmembers", type=int, default=None, help="non-members (default = members)")
    t.add_argument("--shadow-images", type=int, default=None, help="shadow images (default 2 x members + 500)")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default from the recipe)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size (default from the recipe)")
    t.add_argument("--method", choices=["simclr", "moco"], default=None, help="algorithm (default simclr)")
    t.add_argument("--encoder", default=None, help="architecture (default cnn-small)")
    add_common(t)
    t.set_defaults(func=run_make_target)


def registries() -> list[tuple[str, dict[str, str]]]:
    from ..attacks.membership import MEMBERSHIP_ATTACKS

    return [("membership attacks", MEMBERSHIP_ATTACKS.describe())]


def open_victim(spec: str, api_key: str | None) -> Any:
    """A checkpoint path -> LocalEncoder; an http(s) URL -> RemoteEncoder (imported lazily)."""
    if spec.startswith(("http://", "https://")):
        from ..service.client import RemoteEncoder

        key = api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
        if not key:
            raise ValueError("a URL victim needs --api-key or $ENCODER_AUDIT_API_KEY")
        return RemoteEncoder(spec, key)
    from ..victim import load_encoder

    return load_encoder(spec)


def load_images(spec: str, default_part: str, args: argparse.Namespace) -> Any:
    """``MANIFEST.json[:PART]``, ``imagefolder:PATH`` or ``DATASET[:SPLIT]`` -> ImageDataset."""
    from ..data import SplitManifest, create_dataset

    root, download = getattr(args, "data_root", None), getattr(args, "download", False)
    path, _, part = spec.partition(".json")
    if _ == ".json":
        manifest = SplitManifest.load(path + ".json")
        part = part.lstrip(":") or default_part
        full = create_dataset(manifest.dataset, manifest.split, root=root, download=download)
        return manifest.select(full, part)
    if spec.startswith("imagefolder:"):
        return create_dataset(spec, "train", root=root, download=download)
    name, _, split = spec.partition(":")
    return create_dataset(name, split or "train", root=root, download=download)


def _methods(values: list[str] | None) -> list[str]:
    from ..attacks.membership import ENCODERMI, MEMBERSHIP_ATTACKS
    from ..attacks.membership.audit import DEFAULT_ATTACKS

    out: list[str] = []
    for v in values or ["all"]:
        for name in v.split(","):
            name = name.strip()
            if name == "all":
                out += list(DEFAULT_ATTACKS)
            elif name == "encodermi":
                out += list(ENCODERMI)
            else:
                MEMBERSHIP_ATTACKS.get(name)  # UnknownNameError lists the choices
                out.append(name)
    return list(dict.fromkeys(out))


def _shadow_recipe(args: argparse.Namespace, victim: Any) -> Any:
    from dataclasses import replace

    from ..attacks.membership.targets import TargetRecipe, recipe

    base = None
    if args.shadow_recipe == "auto":
        rec = (getattr(victim, "meta", None) or {}).get("training", {}).get("recipe")
        if isinstance(rec, dict):
            base = TargetRecipe(**{k: v for k, v in rec.items() if k in TargetRecipe.__dataclass_fields__})
        else:
            base = recipe("overfit")
    else:
        base = recipe(args.shadow_recipe)
    changes: dict[str, Any] = {}
    for key, flag in (
        ("arch", args.shadow_arch),
        ("method", args.shadow_method),
        ("members", args.shadow_members),
        ("epochs", args.shadow_epochs),
    ):
        if flag is not None:
            changes[key] = flag
    if "members" in changes:
        changes["batch_size"] = min(base.batch_size, changes["members"])
    return replace(base, **changes)


def run(args: argparse.Namespace) -> int:
    from ..attacks.membership import ShadowConfig, save_scores, train_shadow
    from ..attacks.membership.audit import results_table, run_attacks
    from ..attacks.membership.features import FeatureConfig
    from ..attacks.membership.metrics import plot_roc
    from ..io import atomic_write_json
    from ..runs import RunDir, derive_seed, seed_everything
    from ..victim import QueryCounter

    if args.victim is None:
        raise ValueError("--victim is required (a checkpoint or a service URL); see --help for examples")
    members_spec = args.members or (f"{args.splits}:members" if args.splits else None)
    nonmembers_spec = args.nonmembers or (f"{args.splits}:nonmembers" if args.splits else None)
    shadow_spec = args.shadow_data or (f"{args.splits}:shadow" if args.splits else None)
    if args.n_views < 2:
        raise ValueError("--n-views must be >= 2")
    seed_everything(args.seed)
    victim = QueryCounter(open_victim(args.victim, args.api_key))
    features = FeatureConfig(n_views=args.n_views, similarity=args.similarity)
    run_dir = RunDir.create("membership", args.runs_dir, out=args.out)
    emit(f"run directory: {run_dir.path}")
    t0 = time.perf_counter()

    if args.audit is not None:
        return _run_owner_audit(args, victim, nonmembers_spec, shadow_spec, run_dir)

    if not (members_spec and nonmembers_spec and shadow_spec):
        raise ValueError("give --splits, or all of --members, --nonmembers and --shadow-data")
    cap = args.max_samples or None
    members = _cap(load_images(members_spec, "members", args), cap, derive_seed(args.seed, "cap-in"))
    nonmembers = _cap(load_images(nonmembers_spec, "nonmembers", args), cap, derive_seed(args.seed, "cap-out"))
    shadow_data = load_images(shadow_spec, "shadow", args)
    methods = _methods(args.method)
    if members.labels is None or shadow_data.labels is None:
        methods = [m for m in methods if m != "downstream-loss"]
    recipe = _shadow_recipe(args, victim.encoder)
    reference = args.reference if any(m in ("downstream-loss", "embedding-norm") for m in methods) else 0
    sconf = ShadowConfig(recipe=recipe, reference=reference)
    config = {
        "command": "membership",
        "victim": args.victim,
        "members": members_spec,
        "nonmembers": nonmembers_spec,
        "shadow_data": shadow_spec,
        "methods": methods,
        "features": features.__dict__,
        "shadow_recipe": recipe.__dict__,
        "reference": reference,
        "max_samples": cap,
        "seed": args.seed,
    }
    run_dir.save_config(config)
    run_dir.save_env(args.seed)
    emit(f"training shadow encoder ({recipe.arch}, {recipe.method}, {recipe.members} members, {recipe.epochs} epochs)")
    shadow, _ = train_shadow(shadow_data, sconf, seed=args.seed, progress=progress(args))
    t_shadow = time.perf_counter() - t0
    results, usage = run_attacks(
        victim, members, nonmembers, shadow, methods, features=features, seed=args.seed, progress=progress(args)
    )
    save_scores(results, run_dir.file("scores.npz"))
    plot_roc({r.attack: (r.scores, r.labels) for r in results}, run_dir.file("roc.png"), title="membership ROC")
    table = results_table(results)
    metrics = {r.attack: r.metrics() for r in results}
    n_eval = len(members) + len(nonmembers)
    out = {
        "table": table,
        "metrics": metrics,
        "sources": {r.attack: r.extra.get("source", "") for r in results},
        "usage": usage,
        "query_images_per_audited_image": usage["query_images"] / max(n_eval, 1),
        "shadow": shadow.describe(),
        "shadow_seconds": round(t_shadow, 1),
        "split_note": "members and non-members must be drawn i.i.d. from one distribution (make-target does); "
        "see the blind baseline's AUC",
    }
    run_dir.save_results(out, kind="membership")
    atomic_write_json(run_dir.file("metrics.json"), metrics)
    lines = [f"{'attack':<18}" + "".join(f"{c:>14}" for c in table["columns"][1:])]
    for row in table["rows"]:
        lines.append(f"{row[0]:<18}" + "".join(f"{v:>14}" for v in row[1:]))
    summary = "\n".join(lines)
    run_dir.save_summary("# Membership inference\n\n```\n" + summary + "\n```\n\n" + table["note"])
    emit(summary)
    emit(table["note"])
    emit(
        f"queries: {usage['query_images']} images in {usage['api_calls']} calls "
        f"({usage['query_images'] / max(n_eval, 1):.1f} per audited image); "
        f"{time.perf_counter() - t0:.0f} s; scores: {run_dir.file('scores.npz')}; ROC: {run_dir.file('roc.png')}"
    )
    return 0


def _cap(ds: Any, n: int | None, seed: int) -> Any:
    import numpy as np

    if n is None or len(ds) <= n:
        return ds
    return ds.subset(np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False)))


def _run_owner_audit(
    args: argparse.Namespace, victim: Any, ref_spec: str | None, shadow_spec: str | None, run_dir: Any
) -> int:
    from ..attacks.membership import ShadowConfig, create_attack, train_shadow
    from ..attacks.membership.dataowner import OwnerAuditConfig, audit_images, load_image_folder
    from ..io import atomic_write_json

    if ref_spec is None:
        raise ValueError("--audit needs reference non-members: --nonmembers (or --splits)")
    owner = load_image_folder(args.audit, victim.input_shape)
    reference = _cap(load_images(ref_spec, "nonmembers", args), args.max_samples or None, args.seed)
    methods = _methods(args.method) if args.method else ["encodermi-t"]
    attack = None
    if methods != ["encodermi-t"]:
        if len(methods) != 1 or shadow_spec is None:
            raise ValueError("--audit takes one --method; learned methods also need --shadow-data")
        shadow, _ = train_shadow(
            load_images(shadow_spec, "shadow", args),
            ShadowConfig(recipe=_shadow_recipe(args, victim.encoder), reference=0),
            seed=args.seed,
        )
        attack = create_attack(methods[0], n_views=args.n_views, similarity=args.similarity).fit(shadow)
    cfg = OwnerAuditConfig(alpha=args.alpha, n_views=args.n_views, similarity=args.similarity)
    result = audit_images(victim, owner, reference, cfg, attack=attack, seed=args.seed)
    run_dir.save_config({"command": "membership --audit", "folder": str(args.audit), "reference": ref_spec})
    atomic_write_json(run_dir.file("audit.json"), result)
    emit(result["explanation"])
    emit(
        f"verdict: {result['verdict']} (false-positive rate {result['false_positive_rate']:.3g}); details: "
        f"{run_dir.file('audit.json')}"
    )
    return 0


def run_make_target(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..attacks.membership.targets import make_audit_splits, recipe, train_encoder
    from ..data import create_dataset
    from ..runs import RunDir, derive_seed, seed_everything

    spec = recipe(args.recipe)
    changes = {
        k: v
        for k, v in (
            ("members", args.members),
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("method", args.method),
            ("arch", args.encoder),
        )
        if v is not None
    }
    if "members" in changes and "batch_size" not in changes:
        changes["batch_size"] = min(spec.batch_size, changes["members"])
    spec = replace(spec, **changes)
    n_non = args.nonmembers or spec.members
    n_shadow = args.shadow_images if args.shadow_images is not None else 2 * spec.members + 500
    seed_everything(args.seed)
    full = create_dataset(args.dataset, "train", root=args.data_root, download=args.download)
    manifest = make_audit_splits(full, spec.members, n_non, n_shadow, seed=derive_seed(args.seed, "splits"))
    run_dir = RunDir.create("mi-target", args.runs_dir, out=args.out)
    manifest.save(run_dir.file("splits.json"))
    run_dir.save_config({"command": "membership make-target", "recipe": spec.__dict__, "dataset": args.dataset})
    run_dir.save_env(args.seed)
    emit(f"training {spec.arch}/{spec.method} on {spec.members} members for {spec.epochs} epochs -> {run_dir.path}")
    t0 = time.perf_counter()
    train_encoder(manifest.select(full, "members"), spec, seed=args.seed, run=run_dir, progress=progress(args))
    ckpt = run_dir.file("encoder.safetensors")
    run_dir.save_results(
        {
            "checkpoint": str(ckpt),
            "splits": str(run_dir.file("splits.json")),
            "seconds": time.perf_counter() - t0,
            "recipe": spec.__dict__,
            "parts": {k: len(v) for k, v in manifest.parts.items()},
        },
        kind="membership-target",
    )
    emit(f"checkpoint: {ckpt}\nsplits: {run_dir.file('splits.json')} (members / nonmembers / shadow, i.i.d.)")
    emit(f"next: encoder-audit membership --victim {ckpt} --splits {run_dir.file('splits.json')}")
    return 0
