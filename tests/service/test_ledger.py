from __future__ import annotations

import random
import threading

import pytest

from encoder_audit.service.ledger import Ledger


def test_charge_refuse_refund(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    assert ledger.charge("a", 6, 10).ok
    refused = ledger.charge("a", 5, 10)
    assert not refused.ok and refused.used == 6  # refused whole, nothing charged
    assert ledger.charge("a", 4, 10).ok
    assert ledger.usage("a") == (10, 2)
    ledger.refund("a", 4)
    assert ledger.usage("a") == (6, 1)
    assert ledger.all_usage()["a"] == {"used": 6, "calls": 1, "refunded": 4}
    assert ledger.charge("b", 10**9, None).ok  # unlimited
    assert ledger.usage("nobody") == (0, 0)
    with pytest.raises(ValueError):
        ledger.charge("a", -1, 10)


def test_wal_mode_and_persistence_across_reopen(tmp_path):
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path)
    assert ledger._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ledger.charge("a", 7, 100)
    ledger.close()
    again = Ledger(path)
    assert again.usage("a") == (7, 1)
    assert not again.charge("a", 94, 100).ok
    assert again.charge("a", 93, 100).ok


def test_concurrent_charges_never_exceed_budget(tmp_path):
    """32 threads race with random request sizes: successes sum to exactly what the ledger holds,
    never above the budget, and the budget ends up exactly spent (threads retry smaller requests)."""
    ledger = Ledger(tmp_path / "l.sqlite", synchronous="NORMAL")
    budget = 1000
    granted = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            n = rng.randint(1, 40)
            result = ledger.charge("acct", n, budget)
            if result.ok:
                with lock:
                    granted.append(n)
            elif result.used >= budget:
                return
            elif budget - result.used < n:
                n2 = budget - result.used
                if ledger.charge("acct", n2, budget).ok:
                    with lock:
                        granted.append(n2)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == budget
    assert ledger.usage("acct") == (budget, len(granted))
