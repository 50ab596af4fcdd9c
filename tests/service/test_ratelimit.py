from __future__ import annotations

import math

import pytest

from encoder_audit.service.ratelimit import RateLimiter, TokenBucket, retry_after_header


def naive_bucket(rate, capacity, times):
    """Reference: replay requests at the given times, refilling continuously."""
    tokens, last, out = capacity, times[0] if times else 0.0, []
    for t in times:
        tokens = min(capacity, tokens + (t - last) * rate)
        last = t
        if tokens >= 1:
            tokens -= 1
            out.append(True)
        else:
            out.append(False)
    return out


@pytest.mark.parametrize("rate,capacity", [(1.0, 1), (5.0, 3), (0.5, 2), (100.0, 10)])
def test_token_bucket_matches_reference(rate, capacity):
    import random

    rng = random.Random(int(rate * 10 + capacity))
    times = sorted(rng.uniform(0, 10) for _ in range(300))
    now = [times[0]]
    bucket = TokenBucket(rate, capacity, clock=lambda: now[0])
    got = []
    for t in times:
        now[0] = t
        got.append(bucket.acquire()[0])
    assert got == naive_bucket(rate, capacity, times)


def test_retry_after_is_the_wait_for_one_token():
    now = [0.0]
    bucket = TokenBucket(2.0, 1, clock=lambda: now[0])
    assert bucket.acquire() == (True, 0.0)
    ok, wait = bucket.acquire()
    assert not ok and wait == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.acquire()[0]
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == str(math.ceil(2.2))


def test_rate_limiter_is_per_account_and_optional():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.check("a", 1.0, 1)[0] and not limiter.check("a", 1.0, 1)[0]
    assert limiter.check("b", 1.0, 1)[0]  # another account has its own bucket
    assert all(limiter.check("c", None, 1)[0] for _ in range(100))
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
