"""Options shared by every command, logging set-up and config resolution."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ..config import load_yaml, parse_overrides


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (except None and False, which say nothing) and keeps the epilog's examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def add_common(parser: argparse.ArgumentParser, *, data: bool = True) -> None:
    """Seed, run directory, logging and (optionally) data-root options."""
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="seed of the run (data order, init, augmentations)")
    g.add_argument("--deterministic", action="store_true", help="ask torch for deterministic kernels (slower)")
    g.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories are created")
    g.add_argument(
        "--out", type=Path, default=None, help="exact run directory to write (default: runs-dir/<time>-<command>)"
    )
    g.add_argument("--config", type=Path, default=None, help="YAML file with option values (flags win)")
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=3e-4 (repeatable)",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    if data:
        d = parser.add_argument_group("data")
        d.add_argument(
            "--data-root",
            type=Path,
            default=None,
            help="folder holding datasets (default: $ENCODER_AUDIT_DATA, then the system/user data folders)",
        )
        d.add_argument("--download", action="store_true", help="allow downloading a missing dataset")


def setup_logging(args: argparse.Namespace) -> None:
    level = (
        logging.WARNING
        if getattr(args, "quiet", False)
        else (logging.DEBUG if getattr(args, "verbose", 0) > 1 else logging.INFO)
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("matplotlib", "PIL", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) or getattr(args, "quiet", False) else None


def resolved_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--config`` file values overlaid by ``--set`` overrides (nested dictionary)."""
    values: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    for key, value in parse_overrides(getattr(args, "overrides", [])).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


def section(values: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested mapping of ``values`` (``{}`` if absent), checked to be a mapping."""
    v = values.get(name, {})
    if not isinstance(v, dict):
        raise ValueError(f"config section {name!r} must be a mapping")
    return dict(v)


def pick(flag: Any, config_value: Any, default: Any) -> Any:
    """Flag if given, else the config file's value, else the default."""
    if flag is not None:
        return flag
    if config_value is not None:
        return config_value
    return default


def emit(text: str) -> None:
    """Write a result to stdout (the CLI's output channel)."""
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


VICTIM_SPEC_HELP = (
    "encoder under audit: a checkpoint (.safetensors with its .json sidecar), torchvision:NAME or timm:NAME "
    "(with --weights), torchscript:FILE (runs the archive's code), python:MODULE:FACTORY (imports your code) "
    "or an http(s) URL of an embedding service; see docs/YOUR_ENCODER.md"
)
"""Help text for a command's ``--victim`` option (the specs :func:`encoder_audit.victim.load_encoder` opens)."""

VICTIM_OPTION_KEYS = ("weights", "input_shape", "mean", "std", "feature_layer", "autocast")
"""The keys :func:`victim_options` may return (the keyword arguments of ``load_encoder`` they fill)."""


def _input_shape(text: str) -> tuple[int, int, int]:
    from ..models.external import parse_input_shape

    try:
        return parse_input_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _floats(text: str) -> tuple[float, ...]:
    from ..models.external import parse_floats

    try:
        return parse_floats(text, "--mean/--std")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_victim_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a victim spec: ``--weights``, ``--input-shape``, ``--mean``, ``--std``,
    ``--feature-layer`` and ``--autocast`` (not ``--victim`` or ``--device``, which commands add
    themselves). Every default is None: :func:`victim_options` returns only what the user gave."""
    g = parser.add_argument_group(
        "victim spec options", "for torchvision:, timm:, torchscript: and python: victims (see docs/YOUR_ENCODER.md)"
    )
    g.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="weights of a torchvision:/timm:/python: victim: .safetensors, or a .pt/.pth state dict (read with "
        "torch.load(weights_only=True); a file that would need code unpickled is refused); 'random' keeps the "
        "random init",
    )
    g.add_argument(
        "--input-shape",
        type=_input_shape,
        default=None,
        metavar="C,H,W",
        help="input the encoder takes (default: the model family's, e.g. 3,224,224 for torchvision)",
    )
    g.add_argument(
        "--mean",
        type=_floats,
        default=None,
        metavar="M1,M2,M3",
        help="per-channel input mean (default: the model family's, e.g. ImageNet's; none for torchscript:/python:)",
    )
    g.add_argument("--std", type=_floats, default=None, metavar="S1,S2,S3", help="per-channel input std (idem)")
    g.add_argument(
        "--feature-layer",
        default=None,
        metavar="NAME",
        help="submodule whose output is the embedding, e.g. layer3 (default: the output with the classifier head "
        "removed); a feature map is averaged over its spatial positions",
    )
    g.add_argument(
        "--autocast",
        choices=["bf16", "fp16"],
        default=None,
        help="run the victim's forward pass in reduced precision (large victims on a GPU)",
    )


def victim_options(args: argparse.Namespace) -> dict[str, Any]:
    """The victim spec options the user gave, as ``load_encoder`` keyword arguments.

    Keys (only those given): ``weights`` (str), ``input_shape`` ([C, H, W]), ``mean`` and ``std``
    (lists of floats), ``feature_layer`` (str), ``autocast`` (str). Lists rather than tuples, so the
    dictionary survives a JSON round trip unchanged (the audit stores it in its config).
    """
    out: dict[str, Any] = {}
    for key in VICTIM_OPTION_KEYS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in ("input_shape", "mean", "std"):
            value = list(value)
        elif key == "weights":
            value = str(value)
        out[key] = value
    return out
