"""The ledger in PostgreSQL, for several server replicas (on several hosts) behind a load balancer.

Same semantics as :class:`~encoder_audit.service.ledger.SQLiteLedger` (see
:mod:`encoder_audit.service.ledger`): every operation is one transaction that first locks the
account's row (``SELECT ... FOR UPDATE``), so the operations of all replicas on one account are
serialized and lock in one order (account, then reservations): no deadlock, and the conditional
``used + reserved + n <= budget`` can never be passed by two requests at once. Expiry uses the
database server's clock, so replicas with skewed clocks agree. Commits run with
``synchronous_commit = on`` (durable when they return); reservations and releases with ``off``.

Needs the ``psycopg`` (v3) driver: ``pip install 'psycopg[binary]'``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

from .ledger import BaseLedger, Charge, Reservation, Reserve, Usage, _check_n, _check_ttl, redact_url

log = logging.getLogger(__name__)

_NOW = "extract(epoch from clock_timestamp())"
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_RETRIES = 5


class PostgresLedger(BaseLedger):
    """Per-account usage counters in PostgreSQL tables ``{prefix}_accounts`` and ``{prefix}_reservations``.

    Args:
        url: a libpq connection URL, e.g. ``postgresql://user:pass@127.0.0.1:5432/db``.
        prefix: table-name prefix (lowercase letters, digits, ``_``), so one database can hold several
            ledgers.
        connect_timeout: seconds to wait for a connection.

    Raises:
        ImportError: psycopg (v3) is not installed.
        ValueError: a malformed prefix.
    """

    def __init__(self, url: str, *, prefix: str = "encoder_audit", connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the PostgreSQL ledger needs psycopg (v3): pip install 'psycopg[binary]'") from exc
        if not _PREFIX.match(prefix):
            raise ValueError(f"prefix must be lowercase letters, digits and '_' (<= 41 chars), got {prefix!r}")
        self._psycopg = psycopg
        self.url = url
        self.location = redact_url(url)
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self._a = f"{prefix}_accounts"
        self._r = f"{prefix}_reservations"
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        with self._tx(durable=True) as cur:
            # Concurrent start-ups of several replicas: serialize the DDL on an advisory lock.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._a,))
            cur.execute(
                f"""CREATE TABLE IF NOT EXISTS {self._a} (
                    name     TEXT PRIMARY KEY,
                    used     BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
                    calls    BIGINT NOT NULL DEFAULT 0 CHECK (calls >= 0),
                    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                    released BIGINT NOT NULL DEFAULT 0,
                    updated  DOUBLE PRECISION
                )"""
            )
            cur.execute(
                f"""CREATE TABLE IF NOT EXISTS {self._r} (
                    id      TEXT PRIMARY KEY,
                    account TEXT NOT NULL,
                    n       BIGINT NOT NULL CHECK (n >= 0),
                    created DOUBLE PRECISION NOT NULL,
                    expires DOUBLE PRECISION NOT NULL
                )"""
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {self._r}_expiry ON {self._r} (account, expires)")

    # -- connections and transactions --------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=int(self.connect_timeout))
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self, *, durable: bool) -> Iterator[Any]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL synchronous_commit TO {'on' if durable else 'off'}")
            yield cur

    def _run(self, durable: bool, fn: Any, *, retry_dropped: bool = True) -> Any:
        """Run ``fn(cursor)`` in a transaction, retried on deadlocks and serialization failures (rolled
        back, so a retry is safe) and, if ``retry_dropped``, on a dropped connection. A commit is never
        retried after a dropped connection: it may have committed before the connection dropped."""
        errors = self._psycopg.errors
        retry: tuple[type[BaseException], ...] = (errors.DeadlockDetected, errors.SerializationFailure)
        if retry_dropped:
            retry = (*retry, self._psycopg.OperationalError)
        for attempt in range(_RETRIES):
            try:
                with self._tx(durable=durable) as cur:
                    return fn(cur)
            except retry as exc:
                if attempt == _RETRIES - 1:
                    raise
                log.warning("ledger transaction failed (%s); retrying", type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    def _lock_account(self, cur: Any, name: str) -> tuple[int, int, int]:
        cur.execute(f"INSERT INTO {self._a}(name, updated) VALUES (%s, {_NOW}) ON CONFLICT (name) DO NOTHING", (name,))
        cur.execute(f"SELECT used, reserved, calls FROM {self._a} WHERE name = %s FOR UPDATE", (name,))
        used, reserved, calls = cur.fetchone()
        return int(used), int(reserved), int(calls)

    def _sweep(self, cur: Any, name: str) -> int:
        cur.execute(f"DELETE FROM {self._r} WHERE account = %s AND expires < {_NOW} RETURNING n", (name,))
        rows = cur.fetchall()
        freed = sum(int(r[0]) for r in rows)
        if rows:
            cur.execute(
                f"UPDATE {self._a} SET reserved = GREATEST(reserved - %s, 0), released = released + %s, "
                f"updated = {_NOW} WHERE name = %s",
                (freed, freed, name),
            )
            log.warning("released %d expired reservation(s) of %s (%d images)", len(rows), name, freed)
        return freed

    # -- the ledger interface ----------------------------------------------------------------------

    def ensure(self, name: str) -> None:
        def run(cur: Any) -> None:
            cur.execute(
                f"INSERT INTO {self._a}(name, updated) VALUES (%s, {_NOW}) ON CONFLICT (name) DO NOTHING", (name,)
            )

        self._run(False, run)

    def reserve(self, name: str, n: int, budget: int | None, ttl: float) -> Reserve:
        _check_n(n)
        _check_ttl(ttl)

        def run(cur: Any) -> Reserve:
            self._lock_account(cur, name)
            self._sweep(cur, name)
            cur.execute(f"SELECT used, reserved, calls FROM {self._a} WHERE name = %s", (name,))
            used, reserved, calls = (int(v) for v in cur.fetchone())
            if budget is not None and used + reserved + n > budget:
                return Reserve(False, None, used, reserved, calls)
            rid = self.new_id()
            cur.execute(
                f"INSERT INTO {self._r}(id, account, n, created, expires) "
                f"VALUES (%s, %s, %s, {_NOW}, {_NOW} + %s) RETURNING expires",
                (rid, name, n, float(ttl)),
            )
            expires = float(cur.fetchone()[0])
            cur.execute(f"UPDATE {self._a} SET reserved = reserved + %s, updated = {_NOW} WHERE name = %s", (n, name))
            return Reserve(True, Reservation(rid, name, n, expires), used, reserved + n, calls)

        result: Reserve = self._run(False, run)
        return result

    def commit(self, reservation: Reservation, *, durable: bool = True) -> Charge:
        def run(cur: Any) -> Charge:
            self._lock_account(cur, reservation.account)
            cur.execute(f"DELETE FROM {self._r} WHERE id = %s RETURNING n", (reservation.id,))
            held = cur.fetchone() is not None
            if held:
                cur.execute(
                    f"UPDATE {self._a} SET used = used + %s, reserved = GREATEST(reserved - %s, 0), "
                    f"calls = calls + 1, updated = {_NOW} WHERE name = %s RETURNING used, calls",
                    (reservation.n, reservation.n, reservation.account),
                )
            else:
                log.warning(
                    "reservation %s of %s (%d images) had expired before its commit; charged anyway",
                    reservation.id, reservation.account, reservation.n,
                )  # fmt: skip
                cur.execute(
                    f"UPDATE {self._a} SET used = used + %s, calls = calls + 1, "
                    f"released = GREATEST(released - %s, 0), updated = {_NOW} WHERE name = %s RETURNING used, calls",
                    (reservation.n, reservation.n, reservation.account),
                )
            used, calls = cur.fetchone()
            return Charge(True, int(used), int(calls))

        result: Charge = self._run(durable, run, retry_dropped=False)
        return result

    def sync(self, account: str) -> None:
        """A durable (``synchronous_commit = on``) write: PostgreSQL flushes its WAL up to it, and so
        every asynchronous commit before it."""

        def run(cur: Any) -> None:
            cur.execute(f"UPDATE {self._a} SET updated = {_NOW} WHERE name = %s", (account,))

        self._run(True, run)

    def release(self, reservation: Reservation) -> bool:
        def run(cur: Any) -> bool:
            self._lock_account(cur, reservation.account)
            cur.execute(f"DELETE FROM {self._r} WHERE id = %s RETURNING n", (reservation.id,))
            if cur.fetchone() is None:
                return False
            cur.execute(
                f"UPDATE {self._a} SET reserved = GREATEST(reserved - %s, 0), released = released + %s, "
                f"updated = {_NOW} WHERE name = %s",
                (reservation.n, reservation.n, reservation.account),
            )
            return True

        result: bool = self._run(False, run)
        return result

    def release_expired(self) -> int:
        def names(cur: Any) -> list[str]:
            cur.execute(f"SELECT DISTINCT account FROM {self._r} WHERE expires < {_NOW}")
            return [str(r[0]) for r in cur.fetchall()]

        def sweep(name: str) -> Any:
            def run(cur: Any) -> int:
                self._lock_account(cur, name)
                return self._sweep(cur, name)

            return run

        return sum(int(self._run(False, sweep(name))) for name in self._run(False, names))

    def charge(self, name: str, n: int, budget: int | None) -> Charge:
        _check_n(n)

        def run(cur: Any) -> Charge:
            used, reserved, calls = self._lock_account(cur, name)
            if budget is not None and used + reserved + n > budget:
                return Charge(False, used, calls)
            cur.execute(
                f"UPDATE {self._a} SET used = used + %s, calls = calls + 1, updated = {_NOW} "
                "WHERE name = %s RETURNING used, calls",
                (n, name),
            )
            u, c = cur.fetchone()
            return Charge(True, int(u), int(c))

        result: Charge = self._run(True, run, retry_dropped=False)
        return result

    def account(self, name: str) -> Usage:
        with self._conn().cursor() as cur:
            cur.execute(f"SELECT used, calls, reserved, released FROM {self._a} WHERE name = %s", (name,))
            row = cur.fetchone()
        return Usage(*(int(v) for v in row)) if row else Usage(0, 0, 0, 0)

    def all_usage(self) -> dict[str, dict[str, int]]:
        with self._conn().cursor() as cur:
            cur.execute(f"SELECT name, used, calls, reserved, released FROM {self._a} ORDER BY name")
            rows = cur.fetchall()
        return {
            str(r[0]): {"used": int(r[1]), "calls": int(r[2]), "reserved": int(r[3]), "released": int(r[4])}
            for r in rows
        }

    def drop_tables(self) -> None:
        """Delete this ledger's tables (for tests and throwaway deployments)."""

        def run(cur: Any) -> None:
            cur.execute(f"DROP TABLE IF EXISTS {self._r}")
            cur.execute(f"DROP TABLE IF EXISTS {self._a}")

        self._run(True, run)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"PostgresLedger({self.location!r}, prefix={self.prefix!r})"
