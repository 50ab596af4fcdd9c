"""What every attack family shares: metering the victim and reporting the query cost.

Kept deliberately tiny; each family adds its own base class (one verb, typed result) in its folder.
"""

from __future__ import annotations

from typing import Any

from ..victim import Encoder, QueryCounter

__all__ = ["metered", "query_usage"]


def metered(victim: Encoder, budget: int | None = None) -> QueryCounter:
    """Wrap ``victim`` in a :class:`QueryCounter` (or reuse it if it already is one).

    Args:
        victim: any encoder.
        budget: maximum number of query images (None = unlimited). When ``victim`` is already a
            counter its own budget applies and ``budget`` must be None or equal to it.

    Raises:
        ValueError: a different budget was asked for an existing counter.

    >>> import torch
    >>> class Ones:
    ...     input_shape, embedding_dim = (1, 4, 4), 2
    ...     def embed(self, x): return torch.ones(len(x), 2)
    >>> q = metered(Ones(), budget=10); metered(q) is q
    True
    """
    if isinstance(victim, QueryCounter):
        if budget is not None and budget != victim.budget:
            raise ValueError(f"victim is already metered with budget {victim.budget}, not {budget}")
        return victim
    return QueryCounter(victim, budget=budget)


def query_usage(counter: QueryCounter, *, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"query_images", "api_calls", "budget"}`` charged to ``counter`` (since ``before``, if given)."""
    usage = counter.usage()
    if before is not None:
        usage["query_images"] = int(usage["query_images"] or 0) - int(before["query_images"] or 0)
        usage["api_calls"] = int(usage["api_calls"] or 0) - int(before["api_calls"] or 0)
    return usage
