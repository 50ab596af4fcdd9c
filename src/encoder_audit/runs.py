"""Run directories, seeding and environment capture.

Every command writes one run directory::

    runs/<UTC time>-<name>/
        config.yaml     the resolved configuration
        env.json        versions, device, seed, determinism flags, git commit
        metrics.jsonl   one JSON object per logged step/epoch
        results.json    final numbers (versioned schema)
        summary.md      a short human-readable summary
        ...             checkpoints, plots, raw scores

Only rank 0 of a distributed job writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from . import __version__
from .io import atomic_write_json, atomic_write_text

RESULTS_SCHEMA_VERSION = 1


def seed_everything(seed: int, rank: int = 0, *, deterministic: bool = False) -> torch.Generator:
    """Seed Python, numpy and torch (offset by ``rank``) and return a CPU generator for augmentations.

    ``deterministic=True`` additionally asks torch for deterministic kernels (slower; opt-in).
    """
    s = int(seed) + 1000 * int(rank)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(s)


def derive_seed(seed: int, *names: str | int) -> int:
    """A stable per-component seed, e.g. ``derive_seed(run_seed, "shadow", 2)``."""
    import hashlib

    h = hashlib.sha256(("/".join(str(x) for x in (seed, *names))).encode()).digest()
    return int.from_bytes(h[:4], "little")


def environment(seed: int | None = None, deterministic: bool = False) -> dict[str, Any]:
    """Versions, hardware and flags that a result depends on."""
    git = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    return {
        "encoder_audit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "deterministic": deterministic,
        "git_commit": git,
        "argv": sys.argv,
    }


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class RunDir:
    """A run directory. Create with :meth:`create` or reopen with :meth:`open`."""

    path: Path
    write: bool = True
    _t0: float = field(default_factory=time.time, repr=False)

    @classmethod
    def create(cls, name: str, root: str | Path = "runs", *, out: str | Path | None = None) -> RunDir:
        """``root/<UTC time>-<name>/`` (or exactly ``out`` if given)."""
        if out is not None:
            path = Path(out)
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            path = Path(root) / f"{stamp}-{name}"
            k = 1
            while path.exists():
                path = Path(root) / f"{stamp}-{name}-{k}"
                k += 1
        write = _is_rank_zero()
        if write:
            path.mkdir(parents=True, exist_ok=True)
        return cls(path=path, write=write)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"run directory {p} does not exist")
        return cls(path=p, write=_is_rank_zero())

    def file(self, name: str) -> Path:
        return self.path / name

    def save_config(self, config: dict[str, Any]) -> None:
        if self.write:
            atomic_write_text(self.file("config.yaml"), yaml.safe_dump(config, sort_keys=False))

    def save_env(self, seed: int | None = None, deterministic: bool = False) -> None:
        if self.write:
            atomic_write_json(self.file("env.json"), environment(seed, deterministic))

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl``."""
        if not self.write:
            return
        with open(self.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps({"time": round(time.time() - self._t0, 3), **record}) + "\n")

    def save_results(self, results: dict[str, Any], kind: str, *, schema_version: int | None = None) -> Path:
        """Write ``results.json`` with the schema version (default :data:`RESULTS_SCHEMA_VERSION`) and the kind."""
        path = self.file("results.json")
        if self.write:
            atomic_write_json(
                path,
                {
                    "schema_version": RESULTS_SCHEMA_VERSION if schema_version is None else schema_version,
                    "kind": kind,
                    "wall_time_s": round(time.time() - self._t0, 2),
                    **results,
                },
            )
        return path

    def load_results(self) -> dict[str, Any]:
        return json.loads(self.file("results.json").read_text())

    def save_summary(self, markdown: str) -> None:
        if self.write:
            atomic_write_text(self.file("summary.md"), markdown.rstrip() + "\n")
