"""``encoder-audit membership``: EncoderMI membership inference against an encoder, and the data-owner audit."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from .common import VICTIM_SPEC_HELP, HelpFormatter, add_common, add_victim_arguments, emit, progress, victim_options

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
    p.add_argument("--victim", default=None, help=VICTIM_SPEC_HELP)
    add_victim_arguments(p)
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
    p.add_argument("--max-samples", type=int, default=500, help="cap on members scored (0 = all)")
    p.add_argument("--nonmember-count", type=int, default=500, help="non-members scored (>= 100 resolve TPR@1%%FPR)")
    p.add_argument("--n-views", type=int, default=10, help="augmented views per image per draw")
    p.add_argument("--view-draws", type=int, default=3, help="independent draws of the views (scores averaged)")
    p.add_argument(
        "--views",
        default="auto",
        help="query augmentation: auto (the victim's training augmentation from its sidecar, else simclr) "
        "or a recipe name (simclr, encodermi, moco-v1, moco-v2, ...)",
    )
    p.add_argument("--no-controls", action="store_true", help="skip the positive control (faster; 'low' unchecked)")
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
    t.add_argument("--nonmembers", type=int, default=None, help="non-members (default: 500 + members)")
    t.add_argument("--shadow-images", type=int, default=None, help="shadow images (default 2 x members + 1500)")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default from the recipe)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size (default from the recipe)")
    t.add_argument("--method", choices=["simclr", "moco"], default=None, help="algorithm (default simclr)")
    t.add_argument("--head", choices=["mlp", "linear", "none"], default=None, help="projection head (default: recipe)")
    t.add_argument("--moco-version", choices=["v1", "v2"], default=None, help="MoCo version (v1: linear head)")
    t.add_argument("--temperature", type=float, default=None, help="contrastive temperature (default: recipe)")
    t.add_argument("--encoder", default=None, help="architecture (default cnn-small)")
    add_common(t)
    t.set_defaults(func=run_make_target)


def registries() -> list[tuple[str, dict[str, str]]]:
    from ..attacks.membership import MEMBERSHIP_ATTACKS

    return [("membership attacks", MEMBERSHIP_ATTACKS.describe())]


def _shadow_overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = (
        ("arch", args.shadow_arch),
        ("method", args.shadow_method),
        ("members", args.shadow_members),
        ("epochs", args.shadow_epochs),
    )
    return {k: v for k, v in pairs if v is not None}


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..audit.membership import MembershipJob, membership_job
    from ..audit.membership_config import MembershipAuditConfig
    from ..audit.runner import resolve_device
    from ..runs import RunDir, seed_everything

    if args.victim is None:
        raise ValueError("--victim is required (a checkpoint or a service URL); see --help for examples")
    seed_everything(args.seed)
    run_dir = RunDir.create("membership", args.runs_dir, out=args.out)
    emit(f"run directory: {run_dir.path}")
    api_key = args.api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
    if args.audit is not None:
        return _run_owner_audit(args, api_key, run_dir)
    config = MembershipAuditConfig(
        reference=args.reference,
        members=args.max_samples or None,
        nonmembers=args.nonmember_count,
        n_views=args.n_views,
        view_draws=args.view_draws,
        views=args.views,
    )
    if args.no_controls:
        config = replace(config, positive_control=None)
    job = MembershipJob(
        victim=args.victim,
        api_key=api_key,
        members=args.members,
        nonmembers=args.nonmembers,
        shadow_data=args.shadow_data,
        splits=args.splits,
        attacks=tuple(args.method or ["all"]),
        shadow_recipe=args.shadow_recipe,
        shadow_overrides=_shadow_overrides(args),
        config=config,
    )
    t0 = time.perf_counter()
    membership_job(
        job,
        run_dir.path,
        seed=args.seed,
        device=resolve_device(args.device),
        data_root=args.data_root,
        download=args.download,
        progress=progress(args),
    )
    emit(run_dir.file("summary.md").read_text())
    emit(f"{time.perf_counter() - t0:.0f} s; results: {run_dir.file('results.json')}")
    return 0


def _run_owner_audit(args: argparse.Namespace, api_key: str | None, run_dir: Any) -> int:
    from ..attacks.membership.dataowner import OwnerAuditConfig, owner_audit_job
    from ..audit.membership import load_images
    from ..audit.runner import open_victim

    ref_spec = args.nonmembers or (f"{args.splits}:nonmembers" if args.splits else None)
    if ref_spec is None:
        raise ValueError("--audit needs reference non-members: --nonmembers (or --splits)")
    if args.method and args.method != ["encodermi-t"]:
        raise ValueError("--audit uses EncoderMI-T's statistic (no shadow needed); drop --method")
    victim = open_victim(args.victim, api_key=api_key, device=getattr(args, "device", "cpu"), **victim_options(args))
    reference = load_images(ref_spec, "nonmembers", root=args.data_root, download=args.download)
    views = "simclr" if args.views == "auto" else args.views
    cfg = OwnerAuditConfig(alpha=args.alpha, n_views=args.n_views, similarity=args.similarity, views=views)
    result = owner_audit_job(
        victim, args.audit, reference, run_dir, cfg, seed=args.seed, max_reference=args.max_samples or None
    )
    emit(result["explanation"])
    emit(
        f"verdict: {result['verdict']} (p-value {result['p_value']:.3g}, alpha {result['alpha']}); "
        f"details: {run_dir.file('results.json')}; plot: {result['figure']}"
    )
    return 0


def run_make_target(args: argparse.Namespace) -> int:
    from ..attacks.membership.targets import make_target
    from ..audit.runner import resolve_device
    from ..runs import RunDir, seed_everything

    overrides = {
        k: v
        for k, v in (
            ("members", args.members),
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("method", args.method),
            ("arch", args.encoder),
            ("head", args.head),
            ("version", args.moco_version),
            ("temperature", args.temperature),
        )
        if v is not None
    }
    seed_everything(args.seed)
    run_dir = RunDir.create("mi-target", args.runs_dir, out=args.out)
    emit(f"training a {args.recipe} target -> {run_dir.path}")
    out = make_target(
        args.recipe,
        run_dir,
        dataset=args.dataset,
        overrides=overrides,
        nonmembers=args.nonmembers,
        shadow_images=args.shadow_images,
        seed=args.seed,
        device=resolve_device(args.device),
        data_root=args.data_root,
        download=args.download,
        progress=progress(args),
    )
    emit(
        f"checkpoint: {out['checkpoint']} (+ head: {out['head']})\n"
        f"splits: {out['splits']} (members / nonmembers / shadow, i.i.d.)"
    )
    emit(f"next: encoder-audit membership --victim {out['checkpoint']} --splits {out['splits']}")
    return 0
