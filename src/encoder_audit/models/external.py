"""Encoders from elsewhere: torchvision and timm architectures, TorchScript archives, the user's own code.

A *victim spec* names the encoder under audit (see ``docs/YOUR_ENCODER.md``)::

    runs/x/encoder.safetensors       this project's checkpoint (safetensors + JSON sidecar)
    torchvision:resnet50             a torchvision architecture; weights from ``--weights FILE``
    timm:convnext_tiny               a timm architecture (the optional ``timm`` extra); idem
    torchscript:model.pt             a TorchScript archive (``torch.jit.load``: runs the archive's code)
    python:my_pkg.models:build       ``build()`` from the user's importable module (runs that code)
    python:path/to/file.py:build     the same, from a file
    http://host:8000                 an embedding service (``encoder-audit serve``)

Every local form becomes an :class:`~encoder_audit.models.base.EncoderNet`: the module behind its
input normalization, taking [0, 1] pixels of a fixed ``(C, H, W)`` and returning ``(N, D)``
features. torchvision and timm networks lose their classifier head (the last ``nn.Linear``, or
timm's ``reset_classifier(0)``), so the features are the pooled penultimate layer; ``feature_layer``
takes them at another submodule instead (a 4-d output is averaged over its spatial positions, a
3-d token sequence over its tokens).

Weights are never unpickled: ``.safetensors`` files are read as such, and ``.pt``/``.pth`` state
dicts with ``torch.load(weights_only=True)``, which admits only tensors and plain containers; a
file that would need a Python object rebuilt (a pickled ``nn.Module``, a crafted payload) is refused
before anything in it runs. Nothing is downloaded: torchvision and timm models are built with
random weights and then filled from the user's file.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import logging
import re
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import torch
from torch import nn

from ..errors import CheckpointError, UserError
from .base import EncoderNet

log = logging.getLogger(__name__)

__all__ = [
    "SOURCES",
    "FeatureExtractor",
    "Loaded",
    "ScriptedModule",
    "WeightsReport",
    "build_python",
    "build_timm",
    "build_torchvision",
    "create_external",
    "is_torchscript_archive",
    "load_state_dict_into",
    "load_torchscript",
    "parse_floats",
    "parse_input_shape",
    "read_state_dict",
    "remove_head",
]

SOURCES = ("torchvision", "timm", "torchscript", "python")
"""Spec prefixes of local external encoders (``SOURCE:REST``)."""

# Keys under which training scripts commonly nest the model's state dict in a checkpoint file.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "encoder", "backbone", "module")
# Prefixes that wrappers put before every key: DataParallel/DDP, torch.compile, Lightning, this
# project's EncoderNet (``backbone.model.``) and the usual self-supervised checkpoints.
_PREFIXES = ("", "module.", "_orig_mod.", "model.", "backbone.model.", "backbone.", "encoder.", "net.")
_WEIGHT_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".tar", ".pkl"}


# --- parsing option values -------------------------------------------------------------------------


def parse_input_shape(value: str | Sequence[int]) -> tuple[int, int, int]:
    """``"3,224,224"`` (or ``3x224x224``, or a sequence) as ``(C, H, W)``.

    Raises:
        ValueError: not three positive integers.
    """
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x\s]+", value.strip()) if p]
        try:
            dims = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"input shape must be C,H,W (e.g. 3,224,224), got {value!r}") from None
    else:
        dims = [int(v) for v in value]
    if len(dims) != 3 or any(d < 1 for d in dims):
        raise ValueError(f"input shape must be three positive integers C,H,W (e.g. 3,224,224), got {value!r}")
    return (dims[0], dims[1], dims[2])


def parse_floats(value: str | Sequence[float], name: str = "value") -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` (or a sequence) as a tuple of finite floats.

    Raises:
        ValueError: empty, or not numbers.
    """
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    else:
        parts = list(value)  # type: ignore[arg-type]
    try:
        out = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be comma-separated numbers (e.g. 0.485,0.456,0.406), got {value!r}") from None
    if not out or not all(torch.isfinite(torch.tensor(out))):
        raise ValueError(f"{name} must be one or more finite numbers, got {value!r}")
    return out


# --- the feature extractor -------------------------------------------------------------------------


class _Captured(Exception):
    """Raised by the capture hook to stop the forward pass once the feature layer has run."""


def _pool(x: torch.Tensor, where: str) -> torch.Tensor:
    if x.ndim == 2:
        return x
    if x.ndim == 4:  # (N, C, H, W) feature map: global average pool
        return x.mean(dim=(2, 3))
    if x.ndim == 3:  # (N, L, D) token sequence: mean over tokens
        return x.mean(dim=1)
    raise ValueError(f"{where} gives a {x.ndim}-d output of shape {tuple(x.shape)}; expected 2-d to 4-d")


class FeatureExtractor(nn.Module):
    """``model``'s output, or the output of its submodule ``feature_layer``, as ``(N, D)`` features.

    With a feature layer, a forward hook is attached for the duration of one call only (so copies,
    state dicts and TorchScript export see a plain module) and the pass stops as soon as the layer
    has produced its output.

    Args:
        model: the network (takes normalized ``(N, C, H, W)``).
        feature_layer: dotted name of a submodule (``layer3``, ``features.28``), or None for the
            model's own output.
    """

    def __init__(self, model: nn.Module, feature_layer: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.feature_layer = feature_layer
        if feature_layer is not None:
            if isinstance(model, (torch.jit.ScriptModule, ScriptedModule)):
                raise UserError(
                    "--feature-layer cannot be used with a TorchScript archive (TorchScript modules take no "
                    "hooks): export the module whose output is the embedding"
                )
            names = dict(model.named_modules())
            if feature_layer not in names or not feature_layer:
                top = [n for n, _ in model.named_children()]
                close = difflib.get_close_matches(feature_layer, list(names), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UserError(
                    f"feature layer {feature_layer!r} is not a submodule of {type(model).__name__} "
                    f"(its top-level submodules: {', '.join(top)}){hint}"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feature_layer is None:
            return _pool(_tensor_output(self.model(x), type(self.model).__name__), type(self.model).__name__)
        layer = self.model.get_submodule(self.feature_layer)
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(_tensor_output(output, f"layer {self.feature_layer!r}"))
            raise _Captured

        handle = layer.register_forward_hook(hook)
        try:
            self.model(x)
        except _Captured:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"feature layer {self.feature_layer!r} did not run in the forward pass")
        return _pool(captured[0], f"layer {self.feature_layer!r}")


def _tensor_output(out: Any, where: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)  # torchvision's InceptionOutputs / GoogLeNetOutputs in train mode
    if isinstance(logits, torch.Tensor):
        return logits
    raise UserError(
        f"{where} returns {type(out).__name__}, not a tensor: choose the layer whose output is the embedding "
        "with --feature-layer, or return a tensor from your module"
    )


def remove_head(model: nn.Module) -> tuple[str, int]:
    """Replace the classifier head (the last ``nn.Linear`` registered) with ``nn.Identity``.

    Returns:
        The head's dotted name and its ``in_features``.

    Raises:
        UserError: the model has no ``nn.Linear`` (e.g. SqueezeNet's convolutional classifier).
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(
            f"{type(model).__name__} has no linear classifier head to remove: choose where features are taken "
            "with --feature-layer"
        )
    name, head = linears[-1]
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())  # also replaces an nn.Sequential entry ("classifier.6")
    return name, head.in_features


# --- reading weights -------------------------------------------------------------------------------


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript zip archive (it carries ``code/``), found without unpickling."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _blocked_global(exc: BaseException) -> str | None:
    m = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return m.group(1) if m else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class WeightsFile:
    """A weights file read as a flat ``{name: tensor}`` state dict.

    Attributes:
        path: the file.
        state: the tensors.
        sha256: of the file's bytes.
        nested_under: the key of the checkpoint dictionary the state dict was found under ("" if flat).
        sidecar: this project's sidecar next to a ``.safetensors`` file, when there is one.
    """

    path: Path
    state: dict[str, torch.Tensor]
    sha256: str
    nested_under: str = ""
    sidecar: dict[str, Any] | None = None


def read_state_dict(path: str | Path) -> WeightsFile:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file, never running code.

    A ``torch.save`` file is read with ``torch.load(weights_only=True)``; a checkpoint dictionary
    holding the state dict under one of the usual keys (``state_dict``, ``model``, ...) is unwrapped.

    Raises:
        CheckpointError: missing file, a TorchScript archive, a pickled object, or no tensors in it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"weights file {p} not found")
    data = p.read_bytes()
    digest = sha256_bytes(data)
    if p.suffix == ".safetensors":
        try:
            state = load_bytes(data)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{p} is not a valid safetensors file: {exc}") from None
        sidecar = _project_sidecar(p, digest)
        return WeightsFile(p, dict(state), digest, sidecar=sidecar)
    if is_torchscript_archive(p):
        raise CheckpointError(
            f"{p} is a TorchScript archive, not a state dict: audit it as --victim torchscript:{p} "
            "(which runs the archive's TorchScript code)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (a blocked global) or RuntimeError (not a torch file)
        blocked = _blocked_global(exc)
        if blocked:
            raise CheckpointError(
                f"refusing to load {p}: it holds a pickled Python object ({blocked}), not a plain state dict, and "
                "loading it would run code. Where you trust it, load it and save `model.state_dict()` (torch.save or "
                "safetensors) instead (docs/CHECKPOINTS.md)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read {p} as a state dict with weights_only=True: {first}") from None
    state, nested = _unwrap_state(obj, p)
    return WeightsFile(p, state, digest, nested_under=nested)


def _project_sidecar(weights: Path, digest: str) -> dict[str, Any] | None:
    sidecar = weights.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return None
    if not isinstance(meta, dict) or meta.get("kind") != "encoder" or "weights_sha256" not in meta:
        return None
    if meta["weights_sha256"] != digest:
        raise CheckpointError(
            f"{weights} does not match the sha256 in its sidecar {sidecar.name}: the file was changed"
        )
    return meta


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap_state(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if _is_tensor_dict(obj):
        return dict(obj), ""
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if _is_tensor_dict(obj.get(key)):
                log.info("%s: using the state dict stored under %r", path.name, key)
                return dict(obj[key]), key
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            skipped = [str(k) for k in obj if k not in tensors]
            log.info("%s: ignoring %d non-tensor entries (%s)", path.name, len(skipped), ", ".join(skipped[:5]))
            return tensors, ""
        keys = ", ".join(str(k) for k in list(obj)[:8])
        raise CheckpointError(f"{path} holds a dictionary without a state dict of tensors (top-level keys: {keys})")
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")


@dataclass
class WeightsReport:
    """How a state dict was matched to a module.

    Attributes:
        prefix: the key prefix that was stripped ("" if none).
        dropped_head: keys of the removed classifier head that were left out.
        ignored: keys outside the prefix (e.g. a projection head) that were left out.
    """

    prefix: str = ""
    dropped_head: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def load_state_dict_into(
    module: nn.Module, state: dict[str, torch.Tensor], *, head: Sequence[str] = (), source: str = "weights"
) -> WeightsReport:
    """Load ``state`` into ``module``: every parameter and buffer of the module must be filled.

    The key prefix that matches the module best (``module.``, ``model.``, ``backbone.``, ...) is
    stripped; keys of the removed classifier ``head`` and keys outside the prefix are left out (and
    reported); any other key the module lacks, a missing key or a shape mismatch is an error.

    Raises:
        CheckpointError: the weights do not fit the module.
    """
    wanted = module.state_dict()
    head_prefixes = tuple(f"{h}." for h in head)

    def fit(prefix: str) -> int:
        return sum(1 for k in state if k.startswith(prefix) and k[len(prefix) :] in wanted)

    prefix = max(_PREFIXES, key=fit)  # ties keep the earlier (shorter) prefix
    inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    report = WeightsReport(prefix=prefix, ignored=sorted(k for k in state if not k.startswith(prefix)))
    report.dropped_head = sorted(k for k in inside if k.startswith(head_prefixes) and k not in wanted)
    inside = {k: v for k, v in inside.items() if k not in report.dropped_head}
    missing = [k for k in wanted if k not in inside]
    unexpected = [k for k in inside if k not in wanted]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
        if unexpected:
            more = ", ..." if len(unexpected) > 4 else ""
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:4])}{more})")
        raise CheckpointError(
            f"{source} do not fit {type(module).__name__}: {'; '.join(parts)} keys"
            + (f" after stripping the prefix {prefix!r}" if prefix else "")
        )
    for k, v in inside.items():
        if tuple(v.shape) != tuple(wanted[k].shape):
            raise CheckpointError(
                f"{source} do not fit {type(module).__name__}: {k} has shape {tuple(v.shape)}, "
                f"the model needs {tuple(wanted[k].shape)}"
            )
    module.load_state_dict(inside, strict=True)
    if prefix:
        log.info("%s: stripped the key prefix %r", source, prefix)
    if report.dropped_head:
        log.info("%s: left out the classifier head (%s)", source, ", ".join(report.dropped_head))
    if report.ignored:
        log.warning(
            "%s: ignored %d keys outside %r (%s%s)",
            source,
            len(report.ignored),
            prefix,
            ", ".join(report.ignored[:4]),
            ", ..." if len(report.ignored) > 4 else "",
        )
    return report


# --- building the module of each source --------------------------------------------------------


@dataclass
class Loaded:
    """A module ready to wrap, with its source's defaults.

    Attributes:
        module: the network (classifier head removed for torchvision/timm), in eval mode.
        source: ``torchvision``, ``timm``, ``torchscript`` or ``python``.
        name: the architecture or file the spec names.
        input_shape: the source's default ``(C, H, W)``, or None when it has none.
        mean, std: the source's default normalization, or None.
        head: dotted names of the removed classifier head(s).
        rebuildable: the architecture can be rebuilt at random init from its name alone.
    """

    module: nn.Module
    source: str
    name: str
    input_shape: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    head: list[str] = field(default_factory=list)
    rebuildable: bool = False


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def build_torchvision(name: str) -> Loaded:
    """A randomly initialised torchvision classification model ``name``, its head removed.

    Defaults (input size, ImageNet mean/std) come from the metadata of the architecture's default
    weights enum, which is read without downloading anything.

    Raises:
        UserError: not a torchvision classification model.
    """
    import torchvision

    names = _torchvision_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(
            f"torchvision has no classification model {name!r}{hint} (see torchvision.models.list_models())"
        )
    model = torchvision.models.get_model(name, weights=None)
    try:
        heads = [remove_head(model)[0]]
    except UserError:  # a convolutional classifier (SqueezeNet): only --feature-layer gives features
        heads = []
    shape, mean, std = None, None, None
    try:
        tf = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        crop = list(tf.crop_size)
        side = (int(crop[0]), int(crop[-1]))
        shape, mean, std = (3, *side), tuple(tf.mean), tuple(tf.std)
    except (ValueError, AttributeError, KeyError, TypeError):  # an architecture without weights metadata
        log.debug("torchvision %s has no weights metadata; no default input shape", name)
    return Loaded(model.eval(), "torchvision", name, shape, mean, std, heads, rebuildable=True)  # type: ignore[arg-type]


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise UserError(
            "timm: victims need the optional timm package: pip install 'encoder-audit[timm]' (or pip install timm)"
        ) from None
    return timm


def build_timm(name: str) -> Loaded:
    """A randomly initialised timm model ``name`` (``pretrained=False``), its classifier reset to none.

    Defaults (input size, mean, std) come from the model's ``pretrained_cfg``.

    Raises:
        UserError: timm is not installed, or has no model ``name``.
    """
    timm = _timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"timm has no model {name!r}{hint} (see timm.list_models())")
    model = timm.create_model(name, pretrained=False)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    classifier = cfg.get("classifier") or []
    heads = [classifier] if isinstance(classifier, str) else [str(c) for c in classifier]
    model.reset_classifier(0)
    size = cfg.get("input_size")
    shape = parse_input_shape(size) if size else None
    mean = tuple(float(v) for v in cfg["mean"]) if cfg.get("mean") else None
    std = tuple(float(v) for v in cfg["std"]) if cfg.get("std") else None
    return Loaded(model.eval(), "timm", name, shape, mean, std, heads, rebuildable=True)


class ScriptedModule(nn.Module):
    """A TorchScript module that survives ``copy.deepcopy``.

    Deep-copying a ``RecursiveScriptModule`` gives parameters that are not leaves (their
    ``requires_grad`` cannot be changed), which breaks every attack that fine-tunes a copy of the
    victim (BadEncoder). Here a copy is a save/load round trip of the TorchScript module instead,
    with the same parameter values, device and train/eval mode.
    """

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.module = module

    @property
    def original_name(self) -> str:
        return str(getattr(self.module, "original_name", type(self.module).__name__))

    def forward(self, x: torch.Tensor) -> Any:
        return self.module(x)

    def __deepcopy__(self, memo: dict[int, Any]) -> ScriptedModule:
        import io
        import warnings

        buf = io.BytesIO()
        device = next(iter(self.module.parameters()), torch.empty(0)).device
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(self.module, buf)
            buf.seek(0)
            module = torch.jit.load(buf, map_location=device)
        module.train(self.module.training)
        new = ScriptedModule(module)
        new.train(self.training)
        memo[id(self)] = new
        return new


def load_torchscript(path: str | Path, *, device: str | torch.device = "cpu") -> Loaded:
    """``torch.jit.load`` a TorchScript archive. This runs the archive's TorchScript code.

    Raises:
        CheckpointError: missing file, or not a TorchScript archive.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"TorchScript archive {p} not found")
    if not is_torchscript_archive(p):
        raise CheckpointError(
            f"{p} is not a TorchScript archive (no code/ inside); a state dict is loaded with "
            "--victim torchvision:NAME --weights FILE or python:MODULE:FACTORY --weights FILE"
        )
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream, still supported
            module = torch.jit.load(str(p), map_location=torch.device(device))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load TorchScript archive {p}: {first}") from None
    shape = getattr(module, "input_shape", None)
    wrapped = ScriptedModule(module).eval()
    return Loaded(wrapped, "torchscript", str(p), parse_input_shape(shape) if _is_shape(shape) else None)


def _is_shape(value: Any) -> TypeGuard[Sequence[int]]:
    return isinstance(value, (tuple, list)) and len(value) == 3 and all(isinstance(v, int) for v in value)


def parse_python_spec(rest: str) -> tuple[str, str]:
    """``pkg.mod:factory`` or ``path/file.py:factory`` as ``(module or file, factory)``.

    Raises:
        UserError: no ``:factory`` part.
    """
    target, sep, factory = rest.rpartition(":")
    if not sep or not target or not factory.isidentifier():
        raise UserError(
            f"python: victims are python:package.module:factory or python:path/file.py:factory, got python:{rest}"
        )
    return target, factory


def import_factory(rest: str) -> Callable[[], Any]:
    """Import the user's factory named by ``pkg.mod:factory`` or ``file.py:factory`` (runs that code).

    Raises:
        UserError: the module cannot be imported or has no such callable.
    """
    target, factory = parse_python_spec(rest)
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise UserError(f"python: victim file {path} not found")
        mod_name = "_encoder_audit_user_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise UserError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UserError(f"cannot import {target!r} for python:{rest}: {exc} (is it on PYTHONPATH?)") from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise UserError(f"{target} has no callable {factory!r}")
    return fn  # type: ignore[no-any-return]


def build_python(rest: str) -> Loaded | Any:
    """Call the user's factory; an ``nn.Module`` comes back as :class:`Loaded`, an ``Encoder`` as is.

    Raises:
        UserError: the factory returns something else.
    """
    obj = import_factory(rest)()
    if isinstance(obj, nn.Module):
        shape = getattr(obj, "input_shape", None)
        return Loaded(obj.eval(), "python", rest, parse_input_shape(shape) if _is_shape(shape) else None)
    if all(hasattr(obj, a) for a in ("embed", "input_shape", "embedding_dim")):
        return obj  # an Encoder (e.g. the user's client of their own service)
    raise UserError(f"python:{rest} returned {type(obj).__name__}; it must return an nn.Module or an Encoder")


def build_source(source: str, rest: str) -> Loaded:
    """The module named by a torchvision/timm spec (the ``rest`` after ``SOURCE:``)."""
    if source == "torchvision":
        return build_torchvision(rest)
    if source == "timm":
        return build_timm(rest)
    raise UserError(f"cannot rebuild a {source}: encoder from its name")


def create_external(
    arch: str,
    *,
    in_channels: int = 3,
    image_size: int = 224,
    image_width: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> EncoderNet:
    """A randomly initialised external encoder from its architecture name (``torchvision:NAME[@LAYER]``).

    This is what :func:`~encoder_audit.models.base.create_encoder` builds for a name with a source
    prefix, so checkpoints written by ``encoder-audit convert`` and the random-init baselines of an
    audit rebuild the same module. ``torchscript:`` and ``python:`` names are refused: the first
    has no architecture apart from its archive, the second would run code named by a file.

    Raises:
        UserError: unknown source or architecture.
    """
    source, _, rest = arch.partition(":")
    if source not in ("torchvision", "timm"):
        raise UserError(
            f"cannot build {arch!r} from its name: only torchvision:NAME and timm:NAME architectures are rebuilt "
            "(a python: or torchscript: encoder is loaded from its spec)"
        )
    name, _, layer = rest.partition("@")
    loaded = build_source(source, name)
    return to_encoder_net(
        loaded,
        input_shape=(in_channels, image_size, image_width or image_size),
        mean=mean,
        std=std,
        feature_layer=layer or None,
    )


def arch_name(loaded: Loaded, feature_layer: str | None) -> str:
    """``torchvision:resnet50`` (``@layer3`` with a feature layer); for code-defined modules ``python:...``."""
    return f"{loaded.source}:{loaded.name}" + (f"@{feature_layer}" if feature_layer else "")


def to_encoder_net(
    loaded: Loaded,
    *,
    input_shape: Sequence[int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    feature_layer: str | None,
) -> EncoderNet:
    """Put ``loaded.module`` behind its normalization as an :class:`EncoderNet` (defaults: the source's)."""
    shape = parse_input_shape(input_shape) if input_shape is not None else loaded.input_shape
    if shape is None:
        raise UserError(
            f"{loaded.source}:{loaded.name} does not record its input shape: give --input-shape C,H,W "
            "(input_shape=(C, H, W) in Python)"
        )
    if loaded.source == "torchvision" and not loaded.head and feature_layer is None:
        raise UserError(
            f"torchvision:{loaded.name} has no linear classifier head to remove: choose where features are taken "
            "with --feature-layer (e.g. features)"
        )
    mean = mean if mean is not None else loaded.mean
    std = std if std is not None else loaded.std
    return wrap_module(
        loaded.module,
        input_shape=shape,
        mean=mean,
        std=std,
        feature_layer=feature_layer,
        arch=arch_name(loaded, feature_layer),
    )


def wrap_module(
    module: nn.Module,
    *,
    input_shape: Sequence[int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    feature_layer: str | None,
    arch: str,
) -> EncoderNet:
    """``module`` as an :class:`EncoderNet`: ``forward(x) = features(module((x - mean) / std))``.

    With no ``mean``/``std`` the module receives the [0, 1] pixels unchanged (mean 0, std 1). The
    embedding dimension is found with one forward pass on a blank image.

    Raises:
        ValueError: mean/std of the wrong length, or a shape that the module rejects.
    """
    c, h, w = parse_input_shape(input_shape)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    mean_t = parse_floats(mean, "mean") if mean is not None else (0.0,) * c
    std_t = parse_floats(std, "std") if std is not None else (1.0,) * c
    if any(s <= 0 for s in std_t):
        raise ValueError(f"std must be positive, got {list(std_t)}")
    features = FeatureExtractor(module, feature_layer)
    try:
        param = next(iter(module.parameters()))
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            probe = features(torch.zeros(1, c, h, w, device=device, dtype=dtype))
    except UserError:
        raise
    except Exception as exc:  # the module refuses this input shape
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{arch} does not run on {c}x{h}x{w} inputs ({first}); check --input-shape") from None
    finally:
        module.train(was_training)
    if probe.ndim != 2 or probe.shape[0] != 1:
        raise ValueError(f"{arch} gives features of shape {tuple(probe.shape)} for one image; expected (1, D)")
    net = EncoderNet(
        features,
        arch=arch,
        in_channels=c,
        image_size=h,
        image_width=w,
        feature_dim=int(probe.shape[1]),
        mean=mean_t,
        std=std_t,
    ).to(device)
    return net.train(was_training)  # the wrapper takes the module's mode (a new module would be in train mode)
