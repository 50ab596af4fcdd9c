"""Per-account token buckets: ``rate`` requests per second on average, ``burst`` at once.

A request takes one token; an empty bucket answers 429 with ``Retry-After`` set to the seconds until
the next token (rounded up, as the header takes whole seconds; the JSON body has the exact value).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """A thread-safe token bucket.

    Args:
        rate: tokens added per second (> 0).
        capacity: most tokens held (>= 1); the bucket starts full.
        clock: monotonic time source (injectable for tests).

    >>> t = [0.0]
    >>> b = TokenBucket(rate=1.0, capacity=2, clock=lambda: t[0])
    >>> [b.acquire()[0] for _ in range(3)]
    [True, True, False]
    >>> t[0] = 1.0; b.acquire()[0]
    True
    """

    def __init__(self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"rate must be > 0 and capacity >= 1, got rate={rate}, capacity={capacity}")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> tuple[bool, float]:
        """Take ``tokens`` if available. Returns ``(ok, seconds until they would be available)``."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True, 0.0
            return False, (tokens - self._tokens) / self.rate


class RateLimiter:
    """One :class:`TokenBucket` per account, created on first use."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, name: str, rate: float | None, capacity: float) -> tuple[bool, float]:
        """``(allowed, retry_after_seconds)`` for one request of account ``name`` (always allowed if no rate)."""
        if rate is None:
            return True, 0.0
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None or bucket.rate != rate or bucket.capacity != capacity:
                bucket = self._buckets[name] = TokenBucket(rate, capacity, clock=self._clock)
        return bucket.acquire()


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
