"""Safe checkpoints: safetensors weights plus a JSON sidecar; pickles are refused.

An encoder checkpoint is two files side by side::

    NAME.safetensors   the EncoderNet state dict (weights, batch-norm statistics, normalization)
    NAME.json          architecture, input shape, normalization, embedding dim, training config,
                       data-manifest hash, package versions and the sha256 of the weights file

``load_encoder`` verifies the sha256 before reading a byte of weights. Nothing here ever unpickles:
``.pt``/``.pth``/``.pkl`` files are refused as checkpoints, with the spec that does load them (a state
dict: ``torchvision:NAME --weights FILE``; a TorchScript archive: ``torchscript:FILE``). Resumable
*training state* (optimizer moments, RNG states) is the one thing saved with ``torch.save``; it is
read back with ``torch.load(weights_only=True)``, which only admits tensors and plain containers.

The architecture is a built-in encoder name (``resnet18``, ...) or an external one that can be
rebuilt from its name, ``torchvision:NAME`` / ``timm:NAME`` (``@LAYER`` when the features are
taken at a submodule), as written by ``encoder-audit convert``. A checkpoint of a user's own module
(``python:...``) is not rebuilt from its sidecar, which would run code the sidecar names: it is
loaded with that spec and ``--weights``. The format is documented in ``docs/CHECKPOINTS.md``.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from .. import __version__
from ..errors import CheckpointError, UserError
from ..io import atomic_write, atomic_write_json
from .base import EncoderNet, create_encoder

FORMAT_VERSION = 1
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".tar"}
_CORE_KEYS = {
    "format_version",
    "kind",
    "architecture",
    "input_shape",
    "normalization",
    "embedding_dim",
    "training",
    "data_manifest_sha256",
    "versions",
    "weights_sha256",
}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / "encoder.safetensors"
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if p.suffix != ".safetensors":
        p = p.with_name(p.name + ".safetensors")
    return p, p.with_suffix(".json")


def save_encoder(
    path: str | Path,
    encoder: EncoderNet,
    *,
    training: dict[str, Any] | None = None,
    data_manifest: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``encoder`` as ``path`` (``.safetensors``) plus its ``.json`` sidecar, atomically.

    Returns:
        The path of the weights file.
    """
    weights, sidecar = _paths(path)
    clash = sorted(set(extra or {}) & _CORE_KEYS)
    if clash:
        raise ValueError(f"extra sidecar fields may not replace {', '.join(clash)}")
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": "encoder-audit"}))
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "encoder",
        "architecture": encoder.arch,
        "input_shape": list(encoder.input_shape),
        "normalization": encoder.normalization(),
        "embedding_dim": encoder.feature_dim,
        "training": training or {},
        "data_manifest_sha256": data_manifest,
        "versions": {
            "encoder_audit": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "weights_sha256": sha256_file(weights),
        **(extra or {}),
    }
    atomic_write_json(sidecar, meta)
    return weights


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (no weights are read)."""
    weights, sidecar = _paths(path)
    _refuse_pickle(Path(path))
    if not sidecar.is_file():
        hint = (
            f"; if {weights.name} is a bare state dict, name its architecture: --victim torchvision:NAME "
            f"--weights {weights} (or timm:NAME, python:MODULE:FACTORY; see docs/CHECKPOINTS.md)"
            if weights.is_file()
            else ""
        )
        raise CheckpointError(f"checkpoint sidecar {sidecar} not found (expected next to {weights.name}){hint}")
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint sidecar {sidecar} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or "architecture" not in meta or "input_shape" not in meta:
        raise CheckpointError(f"{sidecar} is not an encoder-audit checkpoint sidecar")
    return meta


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        return
    from .external import is_torchscript_archive  # reads the zip listing only, never the pickle

    if path.is_file() and is_torchscript_archive(path):
        raise CheckpointError(
            f"refusing to load {path} as a checkpoint: it is a TorchScript archive (a pickle with code). "
            f"Audit it as --victim torchscript:{path}, which runs the archive's TorchScript code"
        )
    raise CheckpointError(
        f"refusing to load {path} as a checkpoint: {path.suffix} files are Python pickles, which can run arbitrary "
        f"code. A state dict is read safely (torch.load(weights_only=True)) with --victim torchvision:NAME --weights "
        f"{path} (or timm:NAME, python:MODULE:FACTORY); `encoder-audit convert` turns it into a checkpoint "
        "(see docs/CHECKPOINTS.md)"
    )


def load_encoder_net(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[EncoderNet, dict[str, Any]]:
    """Rebuild the :class:`EncoderNet` saved at ``path`` and return it with its sidecar.

    Raises:
        CheckpointError: missing files, a pickle, a sha256 mismatch, or weights that do not fit.
    """
    meta = read_sidecar(path)
    weights, sidecar = _paths(path)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights} not found")
    expected = meta.get("weights_sha256")
    if not expected:
        raise CheckpointError(f"checkpoint sidecar {sidecar} has no weights_sha256: cannot verify {weights.name}")
    data = weights.read_bytes()  # hash and parse the same bytes: no window to swap the file in between
    if hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{weights} does not match the sha256 in its sidecar: the file was changed")
    try:
        state = load_bytes(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a valid safetensors file: {exc}") from None
    shape = meta["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape)):
        raise CheckpointError(f"{sidecar}: input_shape must be [C, H, W], got {shape!r}")
    c, h, w = shape
    norm = meta.get("normalization") or {}
    arch = meta["architecture"]
    if not isinstance(arch, str) or not arch:
        raise CheckpointError(f"{sidecar}: architecture must be a name, got {arch!r}")
    source = arch.partition(":")[0] if ":" in arch else ""
    if source and source not in ("torchvision", "timm"):
        spec = arch.partition("@")[0]
        layer = meta.get("feature_layer")
        raise CheckpointError(
            f"{weights.name} holds the weights of {arch}, which is defined by code, not by a name: load it with "
            f"--victim {spec} --weights {weights}"
            + (f" --feature-layer {layer}" if layer else "")
            + " (which imports that code)"
        )
    try:
        enc = create_encoder(
            arch,
            in_channels=c,
            image_size=h,
            image_width=w if w != h else None,
            mean=norm.get("mean"),
            std=norm.get("std"),
        )
    except (UserError, ValueError) as exc:  # unknown architecture, unsupported shape or normalization
        raise CheckpointError(f"{sidecar} describes an encoder that cannot be built: {exc}") from None
    try:
        enc.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{weights} does not fit architecture {meta['architecture']}: {first}") from None
    enc.eval()
    return enc.to(device), meta


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Save resumable training state (tensors, numbers, strings, containers) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path) -> dict[str, Any]:
    """Load training state with ``weights_only=True``: tensors and plain containers only.

    Raises:
        CheckpointError: the file holds anything else (e.g. a crafted pickle).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"training state {path} not found") from None
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError with the blocked global
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"refusing to load {path}: not plain training state ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a training state dictionary")
    return state
