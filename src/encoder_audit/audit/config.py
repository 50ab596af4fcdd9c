"""One config tree for ``encoder-audit audit``: data, the victim, and one config per audit family.

Every part has ``smoke`` (the whole audit in under a minute on 2 CPU cores: for CI and for trying the
tool), ``quick`` (the embedded default on CPU, minutes) and ``paper`` (CIFAR-10 / ResNet-18 at the
papers' settings, on a GPU) presets. A config is resolved from a preset, then a YAML file, then
``--set key=value`` overrides (dotted keys reach into the tree: ``--set stealing.budgets=[500,5000]``)::

    config = resolve_config("quick", file_values={"data": {"members": 1000}}, overrides=["seeds=[0,1]"])

A run's own ``config.yaml`` is a complete resolved config (victim included), so
``encoder-audit audit --config runs/<run>/config.yaml`` repeats that run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import build_config, config_to_dict, deep_merge, parse_overrides
from .membership_config import MEMBERSHIP_PRESETS, MembershipAuditConfig
from .poisoning_config import POISONING_PRESETS, PoisoningAuditConfig
from .protection_config import PROTECTION_PRESETS, ProtectionAuditConfig
from .stealing_config import STEALING_PRESETS, StealingAuditConfig

__all__ = [
    "PRESETS",
    "SECTIONS",
    "AuditConfig",
    "DataConfig",
    "DefaultVictimConfig",
    "preset_config",
    "resolve_config",
]

SECTIONS = ("stealing", "membership", "poisoning", "protection")
PRESETS = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class DataConfig:
    """The data every stage draws from.

    All splits are drawn i.i.d. from the training split of ``dataset`` with one seeded permutation
    and never overlap: members (the default victim's training set), non-members, shadow data (the
    attacker's own images from the same distribution) and stealing queries.

    Attributes:
        dataset: the victim's data distribution (``fashion-mnist``, ``cifar10``, ``imagefolder:PATH``...).
        eval_datasets: labelled datasets for downstream evaluation (kNN, linear probe).
        members, nonmembers, shadow, queries: split sizes.
        eval_max_train: downstream training images per dataset when the victim is evaluated (None: all).
        eval_max_test: downstream test images per dataset when the victim is evaluated (None: all).
        members_known: a given victim's real training members are named by the split manifest
            (``--splits``), so membership inference can be scored against them.
    """

    dataset: str = "fashion-mnist"
    eval_datasets: tuple[str, ...] = ("fashion-mnist", "digits")
    members: int = 2000
    nonmembers: int = 2000
    shadow: int = 4000
    queries: int = 5000
    eval_max_train: int | None = 5_000
    eval_max_test: int | None = 5_000
    members_known: bool = False

    def __post_init__(self) -> None:
        for name in ("members", "nonmembers", "shadow", "queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1")
        if not self.eval_datasets:
            raise ValueError("data.eval_datasets must name at least one dataset")


@dataclass(frozen=True)
class DefaultVictimConfig:
    """The encoder the audit trains itself when no victim is given (so membership has ground truth).

    Attributes:
        encoder: architecture.
        method: pre-training objective (``simclr`` or ``moco``).
        epochs: pre-training epochs on the member split.
        batch_size: pre-training batch.
        lr: Adam learning rate.
    """

    encoder: str = "cnn-small"
    method: str = "simclr"
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("default_victim needs epochs >= 1 and batch_size >= 2")
        if self.lr <= 0:
            raise ValueError("default_victim.lr must be > 0")


@dataclass(frozen=True)
class AuditConfig:
    """Every setting of ``encoder-audit audit``.

    Attributes:
        preset: the preset the config was resolved from (``smoke``, ``quick`` or ``paper``).
        seeds: the audit runs once per seed (each stage derives its own seed); the report shows
            mean ± std over them.
        sections: which audits run.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; reaches every stage.
        victim: the encoder under audit (a checkpoint, ``torchvision:NAME``, a URL, ...); None trains
            the embedded default (``default_victim``) on the member split.
        victim_options: options of the victim spec (``weights``, ``input_shape``, ``mean``, ``std``,
            ``feature_layer``), passed to :func:`encoder_audit.victim.load_encoder`.
        data, default_victim, stealing, membership, poisoning, protection: the parts of the tree.
    """

    preset: str = "quick"
    seeds: tuple[int, ...] = (0,)
    sections: tuple[str, ...] = SECTIONS
    device: str = "auto"
    victim: str | None = None
    victim_options: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    default_victim: DefaultVictimConfig = field(default_factory=DefaultVictimConfig)
    stealing: StealingAuditConfig = field(default_factory=StealingAuditConfig)
    membership: MembershipAuditConfig = field(default_factory=MembershipAuditConfig)
    poisoning: PoisoningAuditConfig = field(default_factory=PoisoningAuditConfig)
    protection: ProtectionAuditConfig = field(default_factory=ProtectionAuditConfig)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {list(PRESETS)}")
        seeds = tuple(self.seeds)
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown audit section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {dev!r}")

    @property
    def seed(self) -> int:
        """The first seed."""
        return self.seeds[0]

    def to_dict(self) -> dict[str, Any]:
        """The YAML-friendly tree (what ``config.yaml`` holds)."""
        return config_to_dict(self)


_DATA_PRESETS: dict[str, DataConfig] = {
    "smoke": DataConfig(
        eval_datasets=("fashion-mnist",),
        members=256,
        nonmembers=256,
        shadow=512,
        queries=600,
        eval_max_train=1000,
        eval_max_test=500,
    ),
    "quick": DataConfig(),
    "paper": DataConfig(
        dataset="cifar10",
        eval_datasets=("cifar10", "stl10"),
        members=25_000,
        nonmembers=10_000,
        shadow=10_000,
        queries=5_000,
        eval_max_train=None,
        eval_max_test=None,
    ),
}
_VICTIM_PRESETS: dict[str, DefaultVictimConfig] = {
    "smoke": DefaultVictimConfig(epochs=2, batch_size=128),
    "quick": DefaultVictimConfig(),
    # EncoderMI / RDA scale: ResNet-18 SimCLR on CIFAR-10.
    "paper": DefaultVictimConfig(encoder="resnet18", epochs=200, batch_size=512, lr=1e-3),
}


def preset_config(preset: str) -> AuditConfig:
    """The complete config of a preset.

    Raises:
        ValueError: an unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {list(PRESETS)}")
    return AuditConfig(
        preset=preset,
        data=_DATA_PRESETS[preset],
        default_victim=_VICTIM_PRESETS[preset],
        stealing=STEALING_PRESETS[preset],
        membership=MEMBERSHIP_PRESETS[preset],
        poisoning=POISONING_PRESETS[preset],
        protection=PROTECTION_PRESETS[preset],
    )


def resolve_config(
    preset: str | None = None,
    *,
    file_values: Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
    values: Mapping[str, Any] | None = None,
) -> AuditConfig:
    """Preset, then the YAML file's values, then ``values``, then ``--set`` overrides.

    The preset is ``preset`` if given, else the file's ``preset`` key, else ``quick``. A run's
    ``config.yaml`` names its preset, so it resolves to the same config.

    Raises:
        ValueError: an unknown key (named by its dotted path), a bad value, or a bad override.
    """
    file_values = dict(file_values or {})
    extra = dict(values or {})
    sets = parse_overrides(overrides)
    name = preset or sets.get("preset") or extra.get("preset") or file_values.get("preset") or "quick"
    merged = deep_merge(config_to_dict(preset_config(str(name))), file_values)
    merged = deep_merge(merged, extra)
    merged = deep_merge(merged, sets)
    merged["preset"] = name
    return build_config(AuditConfig, merged)


def with_seeds(config: AuditConfig, seeds: Iterable[int]) -> AuditConfig:
    """``config`` with other seeds (validated)."""
    return replace(config, seeds=tuple(seeds))


def describe_plan(config: AuditConfig) -> list[tuple[str, str]]:
    """``(stage, what it will do)`` for every stage the config runs (``--dry-run``'s plan)."""
    d, v = config.data, config.default_victim
    victim = (
        f"load {config.victim}" + (f" with {config.victim_options}" if config.victim_options else "")
        if config.victim
        else f"train {v.method} {v.encoder} on {d.members:,} {d.dataset} members for {v.epochs} epochs"
    )
    plan = [("victim", f"{victim}; evaluate on {', '.join(d.eval_datasets)} beside random init")]
    plan += [(name, _summary(getattr(config, name))) for name in SECTIONS if name in config.sections]
    return plan


def _summary(part: Any) -> str:
    """``field=value`` for a family config's fields (nested configs by their own fields, one level)."""
    items = []
    for name, value in config_to_dict(part).items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
            items.append(f"{name}({inner})" if inner else name)
        elif isinstance(value, list):
            items.append(f"{name}=[{', '.join(str(v) for v in value)}]")
        else:
            items.append(f"{name}={value}")
    return "; ".join(items)
