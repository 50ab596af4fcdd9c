"""Base class of encoder-stealing attacks: one verb, ``extract(victim, queries) -> StealingResult``.

An attack trains a *surrogate* encoder from a black-box victim's embeddings of a query set. The
victim is only ever reached through the :class:`~encoder_audit.victim.Encoder` protocol, wrapped in
a :class:`~encoder_audit.victim.QueryCounter`, so every result records exactly how many images were
sent (``query_images``), in how many requests (``api_calls``), against what budget, and how many
distinct query images were used (``unique_images``).

The shared loop follows the RDA code's setting for the small-image targets (Wu et al., ECCV 2024,
official ``RDA.py`` defaults): Adam with lr 1e-3 and weight decay 1e-4, batch 100, 100 epochs, a
randomly initialised surrogate. Each method supplies two hooks: :meth:`StealingAttack.prepare` (the
queries sent before training) and :meth:`StealingAttack.batch_loss` (the training objective, which
may itself query the victim, as Cont-Steal does). A run lasts ``epochs`` whole epochs or exactly
``steps`` optimizer steps (a partial last epoch), which is how :mod:`.compute` gives every method of
a comparison the same training compute.

Embedding-dimension mismatch: when the victim's output is wider or narrower than the surrogate's,
``dim_match="pool"`` applies a 1-d adaptive average pooling to the victim's output, as RDA does with
``AdaptiveAvgPool1d(512)`` for its ResNet-50 and CLIP targets (attacker-side post-processing);
``dim_match="none"`` refuses a mismatch.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ...data.base import ImageDataset
from ...evaluate.dims import DIM_MATCH, match_dim
from ...models.base import EncoderNet, create_encoder
from ...runs import derive_seed
from ...victim import Encoder, LocalEncoder, QueryCounter, adapt_images
from ..base import metered, query_usage

log = logging.getLogger(__name__)

__all__ = ["StealingAttack", "StealingConfig", "StealingResult", "batch_sizes", "match_dim", "step_sizes"]



@dataclass(frozen=True)
class StealingConfig:
    """Settings shared by every stealing attack (RDA code defaults for 32x32 targets).

    Attributes:
        surrogate: architecture of the surrogate (RDA: ResNet-18 with a CIFAR stem, random init).
        epochs: training epochs (RDA, Conventional, StolenEncoder and Cont-Steal re-implementations: 100).
        steps: optimizer steps of the whole run; when set it replaces ``epochs`` (the last epoch may be
            partial: its first ``steps mod batches`` batches), so methods with different query-set sizes
            can be given exactly the same number of steps (:mod:`.compute`).
        batch_size: surrogate training batch ("batch 100", ``drop_last``; here the query set is split
            into ceil(N / batch) near-equal batches so no sample is dropped and counts stay exact).
        lr: Adam learning rate (1e-3).
        weight_decay: Adam weight decay (1e-4).
        query_batch_size: images per request to the victim (100, the RDA prototype batch).
        dim_match: ``"pool"`` (adaptive average pooling of the victim's output to the surrogate's
            dimension, RDA's choice) or ``"none"`` (a mismatch is an error).
        seed: seed of the surrogate's initialisation, batch order and augmentations (RDA: 100).
        device: where the surrogate trains.
    """

    surrogate: str = "resnet18"
    epochs: int = 100
    steps: int | None = None
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    query_batch_size: int = 100
    dim_match: str = "pool"
    seed: int = 100
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 (or None for whole epochs), got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (contrastive losses need negatives), got {self.batch_size}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if self.query_batch_size < 1:
            raise ValueError(f"query_batch_size must be >= 1, got {self.query_batch_size}")
        if self.dim_match not in DIM_MATCH:
            raise ValueError(f"dim_match must be one of {DIM_MATCH}, got {self.dim_match!r}")


@dataclass
class StealingResult:
    """What an extraction produced and what it cost.

    Attributes:
        method: attack name.
        surrogate: the trained surrogate network (eval mode, on the CPU).
        usage: ``{"query_images", "api_calls", "budget"}`` charged to the victim by this extraction.
        unique_images: distinct query images used (the paper's N).
        history: one record per epoch (``epoch``, ``loss``, ``seconds``).
        query_seconds: wall time spent waiting for the victim.
        train_seconds: wall time of surrogate training (including in-loop queries).
        train_images: images passed through the surrogate during training (views included): the
            *forward passes* of the equal-compute rule.
        steps: optimizer steps taken.
        victim_dim: the victim's embedding dimension; ``surrogate.feature_dim`` is the surrogate's.
        config: the attack's resolved configuration.
    """

    method: str
    surrogate: EncoderNet
    usage: dict[str, Any]
    unique_images: int
    history: list[dict[str, float]] = field(default_factory=list)
    query_seconds: float = 0.0
    train_seconds: float = 0.0
    train_images: int = 0
    steps: int = 0
    victim_dim: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.query_seconds + self.train_seconds

    @property
    def forward_passes(self) -> int:
        """Images through the surrogate in training (views included)."""
        return self.train_images

    @property
    def images_per_second(self) -> float:
        """Surrogate training throughput (images through the surrogate per second of training)."""
        return self.train_images / max(self.train_seconds, 1e-9)

    def encoder(self) -> LocalEncoder:
        """The surrogate as an :class:`~encoder_audit.victim.Encoder`."""
        return LocalEncoder(self.surrogate)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable facts (no weights)."""
        return {
            "method": self.method,
            **{k: self.usage[k] for k in ("query_images", "api_calls", "budget")},
            "unique_images": self.unique_images,
            "victim_dim": self.victim_dim,
            "surrogate_dim": self.surrogate.feature_dim,
            "surrogate_arch": self.surrogate.arch,
            "query_seconds": round(self.query_seconds, 3),
            "train_seconds": round(self.train_seconds, 3),
            "train_images": self.train_images,
            "steps": self.steps,
            "forward_passes": self.train_images,
            "images_per_second": round(self.images_per_second, 1),
            "final_loss": self.history[-1]["loss"] if self.history else None,
            "config": self.config,
        }

    def save(self, path: str | Path) -> Path:
        """Write the surrogate as safetensors + JSON sidecar (with the attack's facts in ``training``)."""
        from ...models.checkpoint import save_encoder

        return save_encoder(path, self.surrogate, training={"stealing": self.summary()})


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """Sizes of the ``ceil(n / batch_size)`` near-equal batches one epoch splits ``n`` images into.

    The same split as ``torch.tensor_split``: the first ``n mod batches`` batches hold one image more.

    >>> batch_sizes(10, 4)
    [4, 3, 3]
    """
    nb = max(1, math.ceil(n / batch_size))
    base, extra = divmod(n, nb)
    return [base + 1 if j < extra else base for j in range(nb)]


def step_sizes(n: int, config: StealingConfig) -> list[int]:
    """Images in each optimizer step of a run on ``n`` query images (``config.steps`` or whole epochs).

    Step ``s`` is batch ``s mod batches`` of epoch ``s // batches``; every epoch draws a fresh order
    but the same batch sizes, so this is exact before training starts.

    >>> step_sizes(10, StealingConfig(batch_size=4, steps=5))
    [4, 3, 3, 4, 3]
    """
    sizes = batch_sizes(n, config.batch_size)
    total = config.steps if config.steps is not None else config.epochs * len(sizes)
    return [sizes[s % len(sizes)] for s in range(total)]


class StealingAttack(ABC):
    """Steal a black-box encoder into a surrogate.

    Subclasses are registered with ``@register_attack("stealing", name, config=...)`` and implement
    :meth:`query_cost`, :meth:`prepare` and :meth:`batch_loss`.

    Capabilities (class attributes, read by planners and the CLI instead of checking names):

    - ``needs_labels``: the attack reads labels of the query set (none does);
    - ``uses_views``: it sends augmented views of the query images to the victim;
    - ``white_box``: it needs the victim's weights (none does: every stealing attack is black-box);
    - ``queries_during_training``: it queries the victim inside the training loop, so its cost grows
      with the optimizer steps (Cont-Steal); the others query once, before training.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "stealing"
    config_class: ClassVar[type[StealingConfig]] = StealingConfig
    needs_labels: ClassVar[bool] = False
    uses_views: ClassVar[bool] = False
    white_box: ClassVar[bool] = False
    queries_during_training: ClassVar[bool] = False

    def __init__(self, config: StealingConfig | None = None) -> None:
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self._counter: QueryCounter | None = None
        self._dim = 0
        self._query_seconds = 0.0

    # ----------------------------------------------------------------- hooks
    @abstractmethod
    def query_cost(self, n: int) -> int:
        """Images this attack sends to the victim for ``n`` query images, at this config (exact)."""

    def expected_queries(self, n: int) -> int:
        """Alias of :meth:`query_cost`."""
        return self.query_cost(n)

    @abstractmethod
    def prepare(self, images: torch.Tensor, generator: torch.Generator) -> Any:
        """Queries made before training (``images`` are the query set, (N, C, H, W) in [0, 1])."""

    @abstractmethod
    def batch_loss(
        self, net: EncoderNet, images: torch.Tensor, index: torch.Tensor, state: Any, generator: torch.Generator
    ) -> torch.Tensor:
        """Scalar training loss on one batch; ``index`` are the rows of the batch in the query set."""

    # --------------------------------------------------------------- helpers
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Send ``images`` to the victim in requests of ``query_batch_size``; dimension-matched outputs."""
        if self._counter is None:
            raise RuntimeError("query() is only available during extract()")
        t0 = time.perf_counter()
        outs = []
        step = self.config.query_batch_size
        for start in range(0, images.shape[0], step):
            outs.append(self._counter.embed(images[start : start + step].cpu()).float())
        self._query_seconds += time.perf_counter() - t0
        out = torch.cat(outs) if outs else torch.empty(0, self._counter.embedding_dim)
        if not torch.isfinite(out).all():
            raise ValueError("the victim returned non-finite embeddings")
        return match_dim(out, self._dim, self.config.dim_match).to(self.config.device)

    def api_calls(self, n: int) -> int:
        """Requests :meth:`query_cost` takes at ``query_batch_size`` images per request."""
        return self.query_cost(n) // n * math.ceil(n / self.config.query_batch_size) if n else 0

    def steps(self, n: int) -> int:
        """Optimizer steps of a run on ``n`` query images."""
        return len(step_sizes(n, self.config))

    def forward_passes(self, n: int) -> int:
        """Images through the surrogate in training on ``n`` query images (views included)."""
        return sum(step_sizes(n, self.config)) * self.views_per_image()

    def build_surrogate(self, input_shape: tuple[int, int, int], queries: ImageDataset) -> EncoderNet:
        """A random-init surrogate of ``config.surrogate`` at the victim's input shape (seeded)."""
        mean, std = queries.info.mean, queries.info.std
        if len(mean) != input_shape[0]:
            mean, std = (float(np.mean(mean)),) * input_shape[0], (float(np.mean(std)),) * input_shape[0]
        with torch.random.fork_rng():
            torch.manual_seed(derive_seed(self.config.seed, "surrogate-init", self.name))
            return create_encoder(
                self.config.surrogate, in_channels=input_shape[0], image_size=input_shape[1], mean=mean, std=std
            )

    # ----------------------------------------------------------------- verb
    def extract(
        self,
        victim: Encoder,
        queries: ImageDataset,
        *,
        budget: int | None = None,
        surrogate: EncoderNet | None = None,
        progress: bool | None = False,
    ) -> StealingResult:
        """Steal ``victim`` using the images of ``queries`` (labels are never read).

        Args:
            victim: the black-box encoder (a :class:`QueryCounter` is added unless it is one).
            queries: the attacker's query images.
            budget: maximum query images (see :meth:`query_cost`); refused up front if too small.
            surrogate: a network to train instead of a fresh ``config.surrogate``.
            progress: tqdm bar over steps (None = on a terminal).

        Returns:
            The :class:`StealingResult`.

        Raises:
            ValueError: fewer than 2 query images, or a budget too small for the whole attack.
            BudgetExhausted: the victim's own counter ran out mid-attack.
        """
        c = self.config
        n = len(queries)
        if n < 2:
            raise ValueError(f"stealing needs at least 2 query images, got {n}")
        need = self.query_cost(n)
        counter = metered(victim, budget)
        if counter.remaining is not None and need > counter.remaining:
            raise ValueError(
                f"{self.name} needs {need} query images for N={n} but only {counter.remaining} remain in the budget"
            )
        before = counter.usage()
        net = surrogate if surrogate is not None else self.build_surrogate(counter.input_shape, queries)
        device = torch.device(c.device)
        net = net.to(device)
        self._counter, self._dim, self._query_seconds = counter, net.feature_dim, 0.0
        generator = torch.Generator().manual_seed(derive_seed(c.seed, "steal", self.name))
        images = adapt_images(queries.float_images(), counter.input_shape)
        touched = torch.zeros(n, dtype=torch.bool)
        try:
            state = self.prepare(images, generator)
            prep_seconds = self._query_seconds
            net.train()
            opt = torch.optim.Adam(net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
            history: list[dict[str, float]] = []
            seen = 0
            n_batches = len(batch_sizes(n, c.batch_size))
            total_steps = self.steps(n)
            step = 0
            t_train = time.perf_counter()
            bar = tqdm(total=total_steps, disable=progress is False, desc=f"steal[{self.name}]", unit="step")
            epoch = 0
            while step < total_steps:
                t0 = time.perf_counter()
                order = torch.randperm(n, generator=generator)
                total, used = 0.0, 0
                for idx in torch.tensor_split(order, n_batches):
                    if step == total_steps:
                        break
                    x = images[idx].to(device)
                    loss = self.batch_loss(net, x, idx, state, generator)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"{self.name} loss became {loss.item()} in step {step + 1}")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    used += len(idx)
                    touched[idx] = True
                    seen += len(idx) * self.views_per_image()
                    step += 1
                    bar.update(1)
                epoch += 1
                record = {
                    "epoch": epoch,
                    "loss": total / max(used, 1),
                    "fraction": used / n,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                history.append(record)
                log.debug("%s epoch %d loss %.4f", self.name, epoch, record["loss"])
            bar.close()
            train_seconds = time.perf_counter() - t_train - (self._query_seconds - prep_seconds)
        finally:
            self._counter = None
        net.eval().cpu()
        usage = query_usage(counter, before=before)
        if usage["query_images"] != need:  # the accounting contract of each method
            log.warning("%s charged %d query images, expected %d", self.name, usage["query_images"], need)
        return StealingResult(
            method=self.name,
            surrogate=net,
            usage=usage,
            unique_images=int(touched.sum()) if self.queries_during_training else n,
            history=history,
            query_seconds=self._query_seconds,
            train_seconds=max(train_seconds, 0.0),
            train_images=seen,
            steps=step,
            victim_dim=counter.embedding_dim,
            config={"name": self.name, **asdict(c)},
        )

    def views_per_image(self) -> int:
        """Images through the surrogate per query image and training step (forward passes)."""
        return 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
