"""The victim interface: anything with ``embed(images) -> embeddings`` is an encoder to audit.

Attacks see a victim only through the :class:`Encoder` protocol, so the same attack runs against a
network in memory (:class:`LocalEncoder`), a metered one (:class:`QueryCounter`) or an HTTP API
(``encoder_audit.service.client.RemoteEncoder``), and reports its query cost the same way.

Images are float tensors in [0, 1] of shape (N, C, H, W). Encoders accept any size and channel count
and adapt them to their own input shape (bilinear resize; gray <-> RGB), so the attacker never needs
to know the victim's preprocessing.

Any encoder can be audited: :func:`load_encoder` opens a *victim spec* (this project's checkpoint,
``torchvision:NAME`` / ``timm:NAME`` with a weights file, ``torchscript:FILE``,
``python:module:factory``, or an ``http(s)://`` service; see :mod:`encoder_audit.models.external`)
and :func:`wrap_encoder` wraps an ``nn.Module`` already in memory. Local encoders run under
``torch.inference_mode()``, optionally with bf16/fp16 autocast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BudgetExhausted, UserError
from .models.base import EncoderNet

log = logging.getLogger(__name__)

__all__ = [
    "AUTOCAST_DTYPES",
    "Encoder",
    "HasMetadata",
    "LocalEncoder",
    "QueryCounter",
    "WhiteBox",
    "adapt_images",
    "load_encoder",
    "resolve_device",
    "wrap_encoder",
]

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""``autocast`` names: the reduced precision a local encoder's forward pass may run in."""


@runtime_checkable
class Encoder(Protocol):
    """A black-box image encoder.

    Attributes:
        input_shape: (C, H, W) the encoder works at.
        embedding_dim: D.

    Shape:
        embed: (N, C', H', W') float in [0, 1] -> (N, D) float32 on the CPU.
    """

    input_shape: tuple[int, int, int]
    embedding_dim: int

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class WhiteBox(Protocol):
    """An encoder whose weights are at hand (``net``: the ``EncoderNet``), for attacks and defenses that
    need gradients or fine-tuning (BadEncoder, Unlearnable Clusters with the victim as surrogate)."""

    net: EncoderNet


@runtime_checkable
class HasMetadata(Protocol):
    """An encoder that carries its checkpoint sidecar (``meta``: architecture, training config, ...)."""

    meta: dict[str, Any]


def _check_batch(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got {images.dtype}")


def adapt_images(images: torch.Tensor, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Resize and convert channels of a [0, 1] batch to ``input_shape``.

    Values outside [0, 1] are clipped to it.

    Raises:
        ValueError: not a 4-d float batch, or values that are not finite.
    """
    _check_batch(images)
    c, h, w = input_shape
    x = images
    if not torch.isfinite(x).all():
        raise ValueError("images must be finite (got NaN or infinity)")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        x = x.clamp(0, 1)
    if x.shape[1] != c:
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        else:
            raise ValueError(f"cannot adapt {x.shape[1]}-channel images to {c} channels")
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return x


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None) is CUDA when torch sees a GPU, else the CPU.

    Raises:
        UserError: CUDA was asked for but torch sees no CUDA device.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device} was asked for, but torch sees no CUDA device here")
    return dev


class LocalEncoder:
    """An :class:`EncoderNet` in this process, used in eval mode under ``torch.inference_mode()``.

    Wrapping does not change the network's train/eval mode (``embed`` switches to eval mode for the
    forward pass and back), so a training callback can evaluate the encoder mid-training. Any other
    ``nn.Module`` is wrapped with :func:`wrap_encoder`, which puts it behind its normalization first.

    Args:
        net: the network.
        batch_size: images per forward pass.
        device: where to run (default: the network's device; ``auto``: CUDA when available).
        meta: what is known about the encoder (the checkpoint sidecar, or the spec it was built from).
        autocast: ``bf16`` or ``fp16``: run the forward pass under ``torch.autocast`` in that precision
            (for large victims on a GPU); embeddings are returned as float32 either way.

    Raises:
        TypeError: ``net`` is not an :class:`EncoderNet`.
        ValueError: an unknown ``autocast`` or a batch size below 1.
    """

    def __init__(
        self,
        net: EncoderNet,
        *,
        batch_size: int = 512,
        device: str | torch.device | None = None,
        meta: dict[str, Any] | None = None,
        autocast: str | None = None,
    ) -> None:
        if not isinstance(net, EncoderNet):
            raise TypeError(
                f"LocalEncoder takes an EncoderNet, got {type(net).__name__}: wrap any nn.Module with "
                "encoder_audit.wrap_encoder(module, input_shape=(C, H, W), mean=..., std=...)"
            )
        if autocast is not None and autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be one of {', '.join(AUTOCAST_DTYPES)} (or None), got {autocast!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.net = net
        if device is None:
            self.device = next(iter(net.parameters()), net.mean).device
        else:
            self.device = resolve_device(device)
        self.net.to(self.device)
        self.batch_size = batch_size
        self.autocast = autocast
        self.meta = meta or {}
        self.input_shape: tuple[int, int, int] = net.input_shape
        self.embedding_dim: int = net.feature_dim
        self._adapted: set[tuple[int, ...]] = set()

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=AUTOCAST_DTYPES[self.autocast])

    def _note_adaptation(self, shape: tuple[int, ...]) -> None:
        if shape == self.input_shape or shape in self._adapted:
            return
        self._adapted.add(shape)
        c, h, w = shape
        factor = max(self.input_shape[1] / h, self.input_shape[2] / w)
        log.info(
            "adapting %dx%dx%d images to the encoder's %dx%dx%d input%s",
            c,
            h,
            w,
            *self.input_shape,
            f" (upsampled {factor:.1f}x)" if factor > 1 else "",
        )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a [0, 1] batch in eval mode (batch norm uses its running statistics, which stay
        untouched), restoring the network's previous train/eval mode afterwards.

        The result is an ordinary float32 CPU tensor (not an inference tensor), so it may be used
        as a target in a loss that is back-propagated.
        """
        _check_batch(images)
        if images.shape[0]:
            self._note_adaptation(tuple(int(v) for v in images.shape[1:]))
        was_training = self.net.training
        if was_training:
            self.net.eval()
        outs = []
        try:
            with torch.inference_mode(), self._precision():
                for start in range(0, images.shape[0], self.batch_size):
                    x = adapt_images(images[start : start + self.batch_size], self.input_shape)
                    outs.append(self.net(x.to(self.device)).float().cpu())
        finally:
            if was_training:
                self.net.train()
        if not outs:
            return torch.empty(0, self.embedding_dim)
        return torch.cat(outs) if len(outs) > 1 else outs[0].clone()  # outside inference mode: a normal tensor

    def __repr__(self) -> str:
        return f"LocalEncoder({self.net.arch}, input_shape={self.input_shape}, dim={self.embedding_dim})"


class QueryCounter:
    """Wraps any :class:`Encoder`, counting images and calls exactly, with an optional budget.

    A call whose images would exceed the budget is refused whole (nothing is charged) with
    :class:`~encoder_audit.errors.BudgetExhausted`. Thread-safe.

    >>> import torch
    >>> class Ones:
    ...     input_shape, embedding_dim = (1, 4, 4), 2
    ...     def embed(self, x): return torch.ones(len(x), 2)
    >>> q = QueryCounter(Ones(), budget=5)
    >>> _ = q.embed(torch.zeros(3, 1, 4, 4)); q.images, q.calls, q.remaining
    (3, 1, 2)
    """

    def __init__(self, encoder: Encoder, budget: int | None = None) -> None:
        if budget is not None and budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        self.encoder = encoder
        self.budget = budget
        self.images = 0
        self.calls = 0
        self._lock = threading.Lock()
        self.input_shape = encoder.input_shape
        self.embedding_dim = encoder.embedding_dim

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.images

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        n = int(images.shape[0])
        with self._lock:
            if self.budget is not None and self.images + n > self.budget:
                raise BudgetExhausted(self.images, self.budget, n)
            self.images += n
            self.calls += 1
        try:
            return self.encoder.embed(images)
        except BaseException:  # nothing was served: nothing is charged
            with self._lock:
                self.images -= n
                self.calls -= 1
            raise

    def usage(self) -> dict[str, int | None]:
        """``{"query_images", "api_calls", "budget"}``: the same keys every result reports."""
        return {"query_images": self.images, "api_calls": self.calls, "budget": self.budget}

    def __repr__(self) -> str:
        return f"QueryCounter({self.encoder!r}, images={self.images}, calls={self.calls}, budget={self.budget})"


_SPEC_OPTIONS = ("weights", "input_shape", "mean", "std", "feature_layer")


def _flags(names: Sequence[str]) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)


def wrap_encoder(
    module: nn.Module,
    *,
    input_shape: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    feature_layer: str | None = None,
    autocast: str | None = None,
) -> LocalEncoder:
    """An ``nn.Module`` in memory as an :class:`Encoder` to audit (white-box: it has ``.net``).

    ``embed(x)`` returns ``module((adapt(x) - mean) / std)`` (or the output of ``feature_layer``,
    averaged over space/tokens when it is not flat), where ``adapt`` resizes and converts channels to
    ``input_shape``. The module is used as it is (no head is removed) and moved to ``device``.

    Args:
        module: the network; any ``nn.Module`` mapping ``(N, C, H, W)`` to ``(N, D)`` (an
            :class:`EncoderNet` is wrapped as it is: it carries its own shape and normalization).
        input_shape: ``(C, H, W)`` the module takes (default: the module's ``input_shape``
            attribute, if it has one).
        mean, std: per-channel normalization the module was trained with; neither: the module gets
            [0, 1] pixels.
        batch_size: images per forward pass.
        device: where to run (default: the module's device; ``auto``: CUDA when available).
        feature_layer: dotted name of the submodule whose output is the embedding.
        autocast: ``bf16`` or ``fp16`` reduced-precision inference.

    Raises:
        TypeError: not an ``nn.Module``.
        ValueError: no input shape, or options that do not fit the module.

    >>> import torch
    >>> enc = wrap_encoder(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 8)), input_shape=(3, 4, 4))
    >>> enc.embed(torch.rand(2, 3, 4, 4)).shape
    torch.Size([2, 8])
    """
    from .models.external import parse_input_shape, wrap_module

    if not isinstance(module, nn.Module):
        raise TypeError(f"wrap_encoder takes an nn.Module, got {type(module).__name__}")
    if isinstance(module, EncoderNet):
        if mean is not None or std is not None or feature_layer is not None:
            raise ValueError("an EncoderNet carries its own normalization and features: give no mean/std/feature_layer")
        if input_shape is not None and parse_input_shape(input_shape) != module.input_shape:
            raise ValueError(f"this EncoderNet takes {module.input_shape}, not {tuple(input_shape)}")
        meta = {"kind": "encoder", "source": "module", "architecture": module.arch, **_describe(module)}
        return LocalEncoder(module, batch_size=batch_size, device=device, meta=meta, autocast=autocast)
    shape = input_shape if input_shape is not None else getattr(module, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"wrap_encoder needs input_shape=(C, H, W) for {type(module).__name__} (it has no input_shape attribute)"
        )
    if device is not None:
        module.to(resolve_device(device))
    net = wrap_module(
        module,
        input_shape=parse_input_shape(shape),
        mean=mean,
        std=std,
        feature_layer=feature_layer,
        arch=f"module:{type(module).__qualname__}",
    )
    meta = {
        "kind": "encoder",
        "source": "module",
        "architecture": None,  # not rebuildable from a name
        "model_class": type(module).__qualname__,
        **_describe(net),
        "feature_layer": feature_layer,
    }
    return LocalEncoder(net, batch_size=batch_size, device=device, meta=meta, autocast=autocast)


def _describe(net: EncoderNet) -> dict[str, Any]:
    return {
        "input_shape": list(net.input_shape),
        "normalization": net.normalization(),
        "embedding_dim": net.feature_dim,
    }


def load_encoder(
    spec: str | Path,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
    weights: str | Path | None = None,
    input_shape: Sequence[int] | str | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    feature_layer: str | None = None,
    autocast: str | None = None,
    api_key: str | None = None,
) -> Encoder:
    """Open a victim spec as an :class:`Encoder`.

    Specs (see ``docs/YOUR_ENCODER.md``):

    - a path: this project's checkpoint (``.safetensors`` + ``.json`` sidecar, or their folder);
    - ``torchvision:NAME`` / ``timm:NAME``: the architecture, random-initialised and filled from
      ``weights`` (``.safetensors``, or a ``.pt``/``.pth`` state dict read with
      ``torch.load(weights_only=True)``; ``"random"`` keeps the random init), classifier head
      removed; defaults for ``input_shape``/``mean``/``std`` from the architecture's metadata
      (ImageNet statistics for torchvision);
    - ``torchscript:FILE``: ``torch.jit.load`` (this runs the archive's TorchScript code);
    - ``python:package.module:factory`` or ``python:file.py:factory``: the user's factory, called
      with no arguments (this imports and runs that code), returning an ``nn.Module`` (optionally
      filled from ``weights``) or an :class:`Encoder`;
    - ``http(s)://...``: an embedding service, with ``api_key`` (default ``$ENCODER_AUDIT_API_KEY``).

    Args:
        spec: the victim spec.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        batch_size: images per forward pass.
        weights: weights file of a torchvision/timm/python spec.
        input_shape: ``(C, H, W)`` (or ``"C,H,W"``) the encoder takes.
        mean, std: per-channel input normalization.
        feature_layer: dotted name of the submodule whose output is the embedding.
        autocast: ``bf16`` or ``fp16`` reduced-precision inference.
        api_key: key of a service spec.

    Raises:
        CheckpointError: missing, tampered-with or pickled files; weights that do not fit.
        UserError: an unknown architecture, options that do not apply to the spec, a missing key.
        ValueError: malformed option values.
    """
    from .models.external import SOURCES

    text = str(spec)
    options = {"weights": weights, "input_shape": input_shape, "mean": mean, "std": std, "feature_layer": feature_layer}
    given = [k for k, v in options.items() if v is not None]
    if text.startswith(("http://", "https://")):
        if given or autocast is not None:
            raise UserError(f"{_flags([*given, *(['autocast'] if autocast else [])])} do not apply to a victim URL")
        from .service.client import RemoteEncoder

        key = api_key or os.environ.get("ENCODER_AUDIT_API_KEY")
        if not key:
            raise UserError("a victim URL needs --api-key (or $ENCODER_AUDIT_API_KEY)")
        return RemoteEncoder(text, key)
    source, sep, rest = text.partition(":")
    if sep and source in SOURCES:
        if not rest:
            raise UserError(f"{source}: needs a name after the colon, e.g. torchvision:resnet50")
        return _load_external(
            source,
            rest,
            text,
            device=device,
            batch_size=batch_size,
            autocast=autocast,
            weights=weights,
            input_shape=input_shape,
            mean=mean,
            std=std,
            feature_layer=feature_layer,
        )
    if given:
        raise UserError(
            f"{_flags(given)} do not apply to the checkpoint {text}: its sidecar records the architecture, input "
            "shape and normalization (for a bare state dict, name its architecture: --victim torchvision:NAME "
            f"--weights {text})"
        )
    from .models.checkpoint import load_encoder_net

    dev = resolve_device(device)
    net, meta = load_encoder_net(text, device=dev)
    return LocalEncoder(net, batch_size=batch_size, device=dev, meta=meta, autocast=autocast)


def _load_external(
    source: str,
    rest: str,
    spec: str,
    *,
    device: str | torch.device,
    batch_size: int,
    autocast: str | None,
    weights: str | Path | None,
    input_shape: Sequence[int] | str | None,
    mean: Sequence[float] | str | None,
    std: Sequence[float] | str | None,
    feature_layer: str | None,
) -> Encoder:
    from .models.external import (
        Loaded,
        WeightsFile,
        build_python,
        build_source,
        load_state_dict_into,
        load_torchscript,
        parse_floats,
        parse_input_shape,
        read_state_dict,
        to_encoder_net,
    )

    dev = resolve_device(device)
    shape = parse_input_shape(input_shape) if input_shape is not None else None
    mean_t = parse_floats(mean, "mean") if mean is not None else None
    std_t = parse_floats(std, "std") if std is not None else None
    if source == "torchscript":
        if weights is not None:
            raise UserError("--weights does not apply to torchscript: the archive carries its own weights")
        loaded = load_torchscript(rest, device=dev)
    elif source == "python":
        built = build_python(rest)
        if not isinstance(built, Loaded):  # the factory returned an Encoder
            extra = [
                k
                for k, v in {
                    "weights": weights,
                    "input_shape": input_shape,
                    "mean": mean,
                    "std": std,
                    "feature_layer": feature_layer,
                    "autocast": autocast,
                }.items()
                if v is not None
            ]
            if extra:
                raise UserError(f"{_flags(extra)} do not apply: python:{rest} returned an encoder, not a module")
            return built  # type: ignore[no-any-return]
        loaded = built
    else:
        loaded = build_source(source, rest)
    wf: WeightsFile | None = None
    report = None
    if weights is not None and str(weights) != "random":
        wf = read_state_dict(weights)
        state = wf.state
        if wf.sidecar is not None:  # a checkpoint written by `encoder-audit convert`: its facts are the defaults
            state = {k: v for k, v in state.items() if k not in ("mean", "std")}
            side = wf.sidecar
            shape = shape or parse_input_shape(side["input_shape"])
            norm = side.get("normalization") or {}
            if mean_t is None and std_t is None and norm.get("mean") and norm.get("std"):
                mean_t, std_t = tuple(norm["mean"]), tuple(norm["std"])
            feature_layer = feature_layer or side.get("feature_layer")
        report = load_state_dict_into(loaded.module, state, head=loaded.head, source=f"weights {wf.path.name}")
    elif weights is None and source in ("torchvision", "timm"):
        raise UserError(
            f"{spec} needs --weights FILE (.safetensors, or a .pt/.pth state dict): nothing is downloaded. "
            "--weights random audits a randomly initialised network"
        )
    elif weights is not None:
        log.warning("%s: --weights random: auditing a randomly initialised network", spec)
    if isinstance(loaded.module, EncoderNet):  # the user's factory built one of this project's encoders
        if shape is not None or mean_t is not None or std_t is not None or feature_layer is not None:
            raise UserError(f"python:{rest} returned an EncoderNet, which carries its own shape and normalization")
        net = loaded.module
    else:
        if source == "torchvision" and shape is not None and shape[0] != 3:
            raise UserError(f"torchvision models take 3 channels, not --input-shape {','.join(map(str, shape))}")
        net = to_encoder_net(loaded, input_shape=shape, mean=mean_t, std=std_t, feature_layer=feature_layer)
    meta: dict[str, Any] = {
        "kind": "encoder",
        "source": source,
        "spec": spec,
        "architecture": net.arch if loaded.rebuildable or isinstance(loaded.module, EncoderNet) else None,
        "model_class": getattr(loaded.module, "original_name", None) or type(loaded.module).__name__,
        **_describe(net),
        "feature_layer": feature_layer,
        "removed_head": list(loaded.head),
        "weights": None if weights is None else str(weights),
        "weights_sha256": wf.sha256 if wf else None,
    }
    if report is not None:
        meta["weights_key_prefix"] = report.prefix
        meta["ignored_weight_keys"] = report.ignored
    enc = LocalEncoder(net, batch_size=batch_size, device=dev, meta=meta, autocast=autocast)
    log.info(
        "victim %s: %s, input %s, %d-d embeddings, mean %s std %s",
        spec,
        meta["model_class"],
        "x".join(map(str, enc.input_shape)),
        enc.embedding_dim,
        [round(v, 4) for v in net.normalization()["mean"]],
        [round(v, 4) for v in net.normalization()["std"]],
    )
    return enc
