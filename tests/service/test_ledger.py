"""The ledger contract (reserve / commit / release, expiry, budgets under concurrency), run against
every backend: SQLite always, PostgreSQL when ``ENCODER_AUDIT_POSTGRES_DSN`` names a server
(``scripts/ci_postgres.sh`` starts a throwaway one)."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

import pytest
from service_helpers import postgres_dsn_or_skip

from encoder_audit.service.ledger import BaseLedger, SQLiteLedger, open_ledger, redact_url


@pytest.fixture(params=["sqlite", "postgres"])
def make_ledger(request, tmp_path):
    """A factory of ledgers on one store: every call opens another handle (as another server would)."""
    made: list[BaseLedger] = []
    if request.param == "sqlite":

        def make() -> BaseLedger:
            made.append(SQLiteLedger(tmp_path / "l.sqlite", synchronous="NORMAL"))
            return made[-1]
    else:
        dsn = postgres_dsn_or_skip()
        from encoder_audit.service.ledger_postgres import PostgresLedger

        prefix = f"t{random.getrandbits(40):x}"

        def make() -> BaseLedger:
            made.append(PostgresLedger(dsn, prefix=prefix))
            return made[-1]

    yield make
    if request.param == "postgres" and made:
        made[0].drop_tables()  # type: ignore[attr-defined]
    for ledger in made:
        ledger.close()


def test_reserve_commit_release(make_ledger):
    ledger = make_ledger()
    a = ledger.reserve("a", 6, 10, ttl=60)
    assert a.ok and a.reservation is not None and (a.used, a.reserved) == (0, 6) and a.remaining(10) == 4
    refused = ledger.reserve("a", 5, 10, ttl=60)
    assert not refused.ok and refused.reservation is None and (refused.used, refused.reserved) == (0, 6)
    b = ledger.reserve("a", 4, 10, ttl=60)
    assert b.ok and b.remaining(10) == 0
    assert ledger.account("a").reserved == 10 and ledger.usage("a") == (0, 0)
    assert ledger.commit(a.reservation).used == 6
    assert ledger.release(b.reservation) is True
    assert ledger.release(b.reservation) is False  # released once only
    u = ledger.account("a")
    assert (u.used, u.calls, u.reserved, u.released) == (6, 1, 0, 4)
    assert ledger.all_usage()["a"] == {"used": 6, "calls": 1, "reserved": 0, "released": 4}
    assert ledger.reserve("b", 10**9, None, ttl=60).ok  # unlimited
    assert ledger.usage("nobody") == (0, 0)
    with pytest.raises(ValueError):
        ledger.reserve("a", -1, 10, ttl=60)
    with pytest.raises(ValueError):
        ledger.reserve("a", 1, 10, ttl=0)


def test_charge_counts_reservations_in_flight(make_ledger):
    ledger = make_ledger()
    held = ledger.reserve("a", 7, 10, ttl=60)
    assert not ledger.charge("a", 4, 10).ok
    assert ledger.charge("a", 3, 10).ok
    ledger.release(held.reservation)
    assert ledger.charge("a", 7, 10).ok and ledger.usage("a") == (10, 2)


def test_expired_reservations_are_released_by_anyone(make_ledger):
    """A server that died holding reservations: another handle (a restart or a replica) releases them
    once they are past their ttl, on start-up (``release_expired``) or on the account's next reserve."""
    dead = make_ledger()
    lost = [dead.reserve("a", 4, 10, ttl=0.2).reservation for _ in range(2)]
    assert dead.account("a").reserved == 8
    alive = make_ledger()
    assert not alive.reserve("a", 3, 10, ttl=60).ok  # still held
    time.sleep(0.3)
    assert alive.reserve("a", 3, 10, ttl=60).ok  # the next reserve sweeps the account
    u = alive.account("a")
    assert (u.used, u.reserved, u.released) == (0, 3, 8)
    other = dead.reserve("b", 5, None, ttl=0.2)
    time.sleep(0.3)
    assert alive.release_expired() == 5 and alive.account("b").reserved == 0
    # a reservation committed after it expired is charged anyway (its images were delivered)
    assert alive.commit(lost[0]).used == 4 and alive.account("a").released == 4
    assert other.reservation is not None


def test_concurrent_reservations_never_exceed_budget(make_ledger):
    """32 threads on 2 handles race with random sizes, committing or releasing at random: charges sum
    to exactly what the ledger holds, never above the budget, and the budget ends exactly spent."""
    handles = [make_ledger(), make_ledger()]
    budget = 600
    committed: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        ledger = handles[seed % 2]
        while True:
            n = rng.randint(1, 30)
            r = ledger.reserve("acct", n, budget, ttl=60)
            if not r.ok:
                if r.used >= budget:
                    return
                n = budget - r.used - r.reserved
                if n <= 0:
                    time.sleep(0.001)
                    continue
                r = ledger.reserve("acct", n, budget, ttl=60)
                if not r.ok:
                    continue
            assert r.used + r.reserved <= budget
            if rng.random() < 0.2:
                ledger.release(r.reservation)
            else:
                ledger.commit(r.reservation)
                with lock:
                    committed.append(n)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sum(committed) == budget
    u = handles[0].account("acct")
    assert (u.used, u.calls, u.reserved) == (budget, len(committed), 0)


def test_sqlite_wal_persistence_and_migration_of_old_files(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)  # the schema before reservations existed
    conn.execute(
        "CREATE TABLE accounts (name TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0, "
        "calls INTEGER NOT NULL DEFAULT 0, refunded INTEGER NOT NULL DEFAULT 0, updated REAL)"
    )
    conn.execute("INSERT INTO accounts(name, used, calls) VALUES ('a', 7, 2)")
    conn.commit()
    conn.close()
    ledger = SQLiteLedger(path)
    assert ledger._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.usage("a") == (7, 2)
    r = ledger.reserve("a", 3, 10, ttl=60)
    assert r.ok and not ledger.reserve("a", 1, 10, ttl=60).ok
    ledger.commit(r.reservation)
    ledger.close()
    again = open_ledger(f"sqlite://{path}")
    assert again.usage("a") == (10, 3) and again.account("a").reserved == 0


def test_open_ledger_and_redaction(tmp_path):
    assert isinstance(open_ledger(tmp_path / "x.sqlite"), SQLiteLedger)
    assert redact_url("postgresql://u:secret@127.0.0.1:5/db") == "postgresql://u:***@127.0.0.1:5/db"
    assert redact_url("postgresql://127.0.0.1/db") == "postgresql://127.0.0.1/db"
    with pytest.raises(ValueError):
        SQLiteLedger(tmp_path / "y.sqlite", synchronous="OFF")


def test_commit_without_fsync_then_sync(make_ledger):
    ledger = make_ledger()
    r = ledger.reserve("a", 5, 10, ttl=60)
    assert ledger.commit(r.reservation, durable=False).used == 5
    ledger.sync("a")
    other = make_ledger()  # another handle (process) sees the charge at once
    assert other.usage("a") == (5, 1) and other.account("a").reserved == 0
