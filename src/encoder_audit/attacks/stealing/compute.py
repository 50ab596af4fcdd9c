"""Plan a stealing comparison that gives every method the same training compute.

A comparison fixes two things for every method:

* **What is held equal on the query side** (the *arm*):

  - ``"images"``: the images charged to the victim. A budget B buys each method the largest query
    set N it can afford: Conventional and StolenEncoder N = B, RDA N = B / P (P views per image, queried
    once), Cont-Steal the largest N whose steps fit in B (it queries a fresh view of every image of
    every step, so its cost is the images of its steps).
  - ``"equal_n"``: the distinct query images N, the paper's comparison (RDA, ECCV 2024: every method
    uses the same N query images; RDA is charged N x P, Cont-Steal N x epochs).

* **What is held equal on the training side** (the *rule*, exact, no rounding, floor or cap):

  - ``"steps"``: the same number of optimizer steps S for every method (the last epoch is partial
    when S is not a multiple of the batches per epoch);
  - ``"forward_passes"``: the same number F of images through the surrogate (views included): each
    method takes the largest number of steps whose forward passes do not exceed F.

Every :class:`PlannedRun` states what it will cost before it runs: images charged, API calls, unique
images, optimizer steps and forward passes.

>>> run = plan_run("rda", arm="images", level=2_500, rule=ComputeRule("steps", 50),
...                options={"surrogate": "cnn-small", "prototype_views": 10})
>>> run.n, run.query_images, run.steps
(250, 2500, 50)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import StealingAttack, batch_sizes

__all__ = ["ARMS", "RULES", "ComputeRule", "PlannedRun", "plan_run", "steps_within"]

RULES = ("steps", "forward_passes")
ARMS = ("images", "equal_n")


@dataclass(frozen=True)
class ComputeRule:
    """The training compute every method of a comparison gets.

    Attributes:
        rule: ``"steps"`` (the same optimizer steps) or ``"forward_passes"`` (the same surrogate
            forward passes, views included).
        amount: steps, or forward passes, per run.
    """

    rule: str = "steps"
    amount: int = 120

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.amount < 1:
            raise ValueError(f"amount must be >= 1, got {self.amount}")

    def steps_for(self, n: int, batch_size: int, views: int) -> int:
        """Optimizer steps of a method with ``views`` surrogate images per query image, on ``n`` images.

        Raises:
            ValueError: ``forward_passes`` too few for one step.
        """
        if self.rule == "steps":
            return self.amount
        steps = steps_within(self.amount, n, batch_size, views)
        if steps < 1:
            raise ValueError(
                f"{self.amount} forward passes do not buy one step of {batch_sizes(n, batch_size)[0]} x {views} images"
            )
        return steps


def steps_within(forward_passes: int, n: int, batch_size: int, views: int) -> int:
    """The most optimizer steps on ``n`` images whose forward passes (``views`` per image) fit ``forward_passes``.

    >>> steps_within(1_000, 250, 100, 2)   # batches 84, 83, 83 -> 168, 166, 166 forward passes each
    6
    """
    sizes = [s * views for s in batch_sizes(n, batch_size)]
    epoch = sum(sizes)
    full, left = divmod(forward_passes, epoch)
    steps = full * len(sizes)
    for s in sizes:
        if s > left:
            break
        left -= s
        steps += 1
    return steps


@dataclass(frozen=True)
class PlannedRun:
    """One method of a comparison, with its exact cost.

    Attributes:
        method: attack name.
        arm: ``"images"`` or ``"equal_n"``.
        level: the budget in images charged (``images``) or the query-set size (``equal_n``).
        n: query images drawn from the pool.
        attack: the configured attack (its ``steps`` fixed).
        rule: the compute rule.
    """

    method: str
    arm: str
    level: int
    n: int
    attack: StealingAttack
    rule: ComputeRule = field(default_factory=ComputeRule)

    @property
    def steps(self) -> int:
        return self.attack.steps(self.n)

    @property
    def forward_passes(self) -> int:
        return self.attack.forward_passes(self.n)

    @property
    def query_images(self) -> int:
        return self.attack.query_cost(self.n)

    @property
    def api_calls(self) -> int:
        return self.attack.api_calls(self.n)

    def facts(self) -> dict[str, Any]:
        """The planned cost as plain numbers."""
        return {
            "method": self.method,
            "arm": self.arm,
            "level": self.level,
            "n": self.n,
            "rule": self.rule.rule,
            "rule_amount": self.rule.amount,
            "steps": self.steps,
            "forward_passes": self.forward_passes,
            "query_images": self.query_images,
            "api_calls": self.api_calls,
        }


def build_attack(method: str, options: dict[str, Any]) -> StealingAttack:
    """``create_attack(method, **options)`` of the stealing family."""
    from . import create_attack

    return create_attack(method, **options)


def _configured(method: str, n: int, rule: ComputeRule, options: dict[str, Any]) -> StealingAttack:
    probe = build_attack(method, {**options, "steps": 1})
    steps = rule.steps_for(n, probe.config.batch_size, probe.views_per_image())
    return build_attack(method, {**options, "steps": steps})


def plan_run(
    method: str,
    *,
    arm: str,
    level: int,
    rule: ComputeRule,
    options: dict[str, Any] | None = None,
    pool_size: int | None = None,
) -> PlannedRun:
    """Plan ``method`` at ``level`` under ``rule`` (see the module docstring).

    Args:
        method: attack name.
        arm: ``"images"`` (``level`` = images charged) or ``"equal_n"`` (``level`` = N).
        level: the budget or query-set size.
        rule: the compute rule.
        options: attack config values (``surrogate``, ``seed``, ``prototype_views``, ...); ``steps``
            and ``epochs`` are set by the rule.
        pool_size: images available to draw queries from (None: unlimited).

    Raises:
        ValueError: unknown arm; the budget buys fewer than 2 query images; the pool is too small.
    """
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    opts = {k: v for k, v in (options or {}).items() if k not in ("steps", "epochs")}
    cap = level if pool_size is None else min(level, pool_size)
    if arm == "equal_n":
        if pool_size is not None and level > pool_size:
            raise ValueError(f"the query pool has {pool_size} images; N = {level} was asked for")
        if level < 2:
            raise ValueError(f"N must be >= 2, got {level}")
        return PlannedRun(method, arm, level, level, _configured(method, level, rule, opts), rule)
    probe = build_attack(method, {**opts, "steps": 1})
    if not probe.queries_during_training:
        n = min(cap, level // max(1, probe.query_cost(1)))
        if n < 2:
            raise ValueError(
                f"a budget of {level} buys {n} query images for {method} ({probe.query_cost(1)} per image)"
            )
        return PlannedRun(method, arm, level, n, _configured(method, n, rule, opts), rule)
    # A method that queries inside training: its cost depends on the steps, so search the largest N that fits.
    for n in range(cap, 1, -1):
        try:
            attack = _configured(method, n, rule, opts)
        except ValueError:
            continue
        if attack.query_cost(n) <= level:
            return PlannedRun(method, arm, level, n, attack, rule)
    raise ValueError(f"no query set of >= 2 images lets {method} take its {rule.rule} within {level} images charged")
