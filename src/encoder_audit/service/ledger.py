"""The query ledger: per-account image counts in SQLite (WAL), charged atomically before inference.

Every embedding request is charged *before* the model runs, by one conditional statement::

    UPDATE accounts SET used = used + n, calls = calls + 1
    WHERE name = ? AND used + n <= budget RETURNING used

SQLite executes a single statement atomically, so concurrent requests (threads or server processes
sharing the file) can never together exceed a budget: a request that does not fit changes nothing and
is refused whole. If inference then fails, :meth:`Ledger.refund` takes the charge back, so no account
pays for images it did not receive. The database runs in WAL mode (readers never block the writer) with
``synchronous=FULL`` by default, so a charge is on disk before the embeddings are sent and a restarted
server continues from the same counts.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name     TEXT PRIMARY KEY,
    used     INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    calls    INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
    refunded INTEGER NOT NULL DEFAULT 0,
    updated  REAL
)
"""


@dataclass(frozen=True)
class Charge:
    """Outcome of :meth:`Ledger.charge`.

    Attributes:
        ok: the images were charged.
        used: images charged to the account after this attempt.
        calls: requests charged to the account after this attempt.
    """

    ok: bool
    used: int
    calls: int


class Ledger:
    """Per-account usage counters in one SQLite file, safe across threads and processes.

    Args:
        path: the database file (created with its folder).
        synchronous: SQLite ``synchronous`` pragma, ``FULL`` (durable per request) or ``NORMAL``.
        timeout: seconds a writer waits for the database lock before failing.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", timeout: float = 30.0) -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("SQLite refused WAL mode for %s (got %s)", self.path, mode)
        conn.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def ensure(self, name: str) -> None:
        """Create the account's row if it does not exist (counts start at 0)."""
        self._conn().execute("INSERT OR IGNORE INTO accounts(name, updated) VALUES (?, ?)", (name, time.time()))

    def charge(self, name: str, n: int, budget: int | None) -> Charge:
        """Charge ``n`` images to ``name`` if ``used + n <= budget`` (always if ``budget`` is None).

        One atomic statement: under any concurrency the sum of successful charges never exceeds the
        budget, and a refused charge changes nothing.
        """
        if n < 0:
            raise ValueError(f"cannot charge a negative number of images ({n})")
        conn = self._conn()
        self.ensure(name)
        row = conn.execute(
            "UPDATE accounts SET used = used + ?, calls = calls + 1, updated = ? "
            "WHERE name = ? AND (? IS NULL OR used + ? <= ?) RETURNING used, calls",
            (n, time.time(), name, budget, n, budget),
        ).fetchone()
        if row is not None:
            return Charge(True, int(row[0]), int(row[1]))
        used, calls = self.usage(name)
        return Charge(False, used, calls)

    def refund(self, name: str, n: int) -> None:
        """Take back a charge of ``n`` images (and its call) after the request failed to deliver them."""
        self._conn().execute(
            "UPDATE accounts SET used = MAX(used - ?, 0), calls = MAX(calls - 1, 0), refunded = refunded + ?, "
            "updated = ? WHERE name = ?",
            (n, n, time.time(), name),
        )

    def usage(self, name: str) -> tuple[int, int]:
        """``(images used, requests charged)`` of ``name`` (0, 0 for an unknown account)."""
        row = self._conn().execute("SELECT used, calls FROM accounts WHERE name = ?", (name,)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def all_usage(self) -> dict[str, dict[str, int]]:
        """Every account's ``{"used", "calls", "refunded"}``."""
        rows = self._conn().execute("SELECT name, used, calls, refunded FROM accounts ORDER BY name").fetchall()
        return {r[0]: {"used": int(r[1]), "calls": int(r[2]), "refunded": int(r[3])} for r in rows}

    def close(self) -> None:
        """Close every thread's connection (the data is already on disk)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.ProgrammingError):  # another thread's connection
                conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, synchronous={self.synchronous})"
