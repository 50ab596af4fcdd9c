"""The query ledger: per-account image counts, reserved before inference and charged on delivery.

A request goes through three ledger operations:

1. :meth:`BaseLedger.reserve` holds ``n`` images *before* any decoding or inference, atomically and
   only if ``used + reserved + n <= budget``. A request that does not fit changes nothing and is
   refused whole (429). Concurrent requests, threads or server processes (replicas) sharing the
   ledger can therefore never together hold or spend more than the budget.
2. :meth:`BaseLedger.commit` turns the reservation into a charge (``used += n``, ``calls += 1``),
   durably, once the whole response but its last byte was handed to the client's connection; the
   server sends the last byte right after the commit returns, on the same thread with nothing in
   between.
3. :meth:`BaseLedger.release` drops the reservation instead when the request fails, times out or
   its client disconnects before the commit: the images were not delivered, so they are not charged.

**Guarantee.** A client can only hold a complete response whose images were charged, so the images
an account receives never exceed its budget. No account pays for images it did not receive, except
in one window per response, between the commit and the hand-over of the last byte (plus the bytes
still in the server's write buffer then: less than its 64 KiB high-water mark). A server killed in
that window (``kill -9``), or a client that disconnects in it, leaves a charged response its client
never completed. The window is the end of one unsynced ledger transaction (no fsync: see below) and
one ``send`` on the same thread, unless the operating system deschedules the process there.

Reservations left by a dead process are released by any server once they are older than
``ServiceConfig.reservation_ttl`` (request time-out + write time-out + 5 s): on start-up, and for an
account whenever it reserves again. Until then they hold budget but charge nothing, so after a crash
``charged == delivered`` once they have expired (up to the window above).

Two backends implement the same semantics: :class:`SQLiteLedger` (default, one embedded file, WAL;
``BEGIN IMMEDIATE`` serializes writers across processes on one host) and
:class:`~encoder_audit.service.ledger_postgres.PostgresLedger` (``postgresql://...``, for replicas on
several hosts; each operation locks the account's row). :func:`open_ledger` picks one from a path or
URL. :meth:`BaseLedger.commit` is durable when it returns by default; the service commits without
the fsync (the charge survives a crash of the server process at once) right before a response's
last byte, and calls :meth:`BaseLedger.sync` right after it: a power cut in between can lose the
charges of responses just delivered, never charge an undelivered one. Reservations and releases are
not fsynced: a lost reservation only means a lost hold, never a lost charge.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Charge:
    """Outcome of :meth:`BaseLedger.charge` or :meth:`BaseLedger.commit`.

    Attributes:
        ok: the images were charged.
        used: images charged to the account after this attempt.
        calls: requests charged to the account after this attempt.
    """

    ok: bool
    used: int
    calls: int


@dataclass(frozen=True)
class Reservation:
    """Images held for one request until it is committed or released.

    Attributes:
        id: random identifier (from :mod:`secrets`).
        account: the account holding the images.
        n: images held.
        expires: when any server may release it (seconds since the epoch, on the ledger's clock).
    """

    id: str
    account: str
    n: int
    expires: float


@dataclass(frozen=True)
class Reserve:
    """Outcome of :meth:`BaseLedger.reserve`.

    Attributes:
        ok: the images are held; ``reservation`` is set.
        reservation: the hold to commit or release.
        used: images charged to the account (committed) at the time of the attempt.
        reserved: images held by the account's reservations in flight, this one included if ``ok``.
        calls: requests charged to the account.
    """

    ok: bool
    reservation: Reservation | None
    used: int
    reserved: int
    calls: int

    def remaining(self, budget: int | None) -> int | None:
        """Images the account may still reserve (None for an unlimited account)."""
        return None if budget is None else max(budget - self.used - self.reserved, 0)


@dataclass(frozen=True)
class Usage:
    """One account's counters: images ``used`` (charged), ``calls``, images ``reserved`` in flight and
    images ``released`` (reserved, then not delivered)."""

    used: int
    calls: int
    reserved: int
    released: int


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"cannot reserve or charge a negative or non-integer number of images ({n!r})")


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"a reservation's ttl must be > 0 seconds, got {ttl}")


class BaseLedger(ABC):
    """The interface every ledger backend implements (see the module docstring for the semantics).

    All methods are thread-safe and may be called from any thread; they block on the database.
    """

    #: Where the ledger lives, without any password (for logs).
    location: str

    @abstractmethod
    def ensure(self, name: str) -> None:
        """Create the account's row if it does not exist (counts start at 0)."""

    @abstractmethod
    def reserve(self, name: str, n: int, budget: int | None, ttl: float) -> Reserve:
        """Hold ``n`` images for ``name`` if ``used + reserved + n <= budget`` (always if ``budget`` is None).

        Expired reservations of the account are released first. Atomic: under any concurrency the
        images held and charged never exceed the budget, and a refused attempt changes nothing.
        """

    @abstractmethod
    def commit(self, reservation: Reservation, *, durable: bool = True) -> Charge:
        """Charge a reservation (the response was delivered).

        Args:
            reservation: what :meth:`reserve` returned.
            durable: on disk when this returns (fsync). With False the charge survives a crash of
                this process at once but a power cut only after :meth:`sync`; the service commits
                that way right before the last byte of a response and syncs right after it, so the
                window where a ``kill -9`` could separate charge and delivery holds no fsync.

        A reservation that was already released (it outlived its ttl) is charged anyway, since its
        images were delivered, and logged as a warning.
        """

    @abstractmethod
    def sync(self, account: str) -> None:
        """Make every commit so far durable (concurrent callers share one flush where they can)."""

    @abstractmethod
    def release(self, reservation: Reservation) -> bool:
        """Drop a reservation without charging it. Returns False if it was no longer held."""

    @abstractmethod
    def release_expired(self) -> int:
        """Release every reservation past its expiry (dead requests). Returns the images released."""

    @abstractmethod
    def charge(self, name: str, n: int, budget: int | None) -> Charge:
        """Charge ``n`` images at once if ``used + reserved + n <= budget`` (reserve and commit in one)."""

    @abstractmethod
    def account(self, name: str) -> Usage:
        """The counters of ``name`` (all 0 for an unknown account)."""

    @abstractmethod
    def all_usage(self) -> dict[str, dict[str, int]]:
        """Every account's ``{"used", "calls", "reserved", "released"}``."""

    @abstractmethod
    def close(self) -> None:
        """Close the connections (committed data is already durable)."""

    def usage(self, name: str) -> tuple[int, int]:
        """``(images used, requests charged)`` of ``name`` (0, 0 for an unknown account)."""
        u = self.account(name)
        return u.used, u.calls

    @staticmethod
    def new_id() -> str:
        """A fresh reservation id."""
        return secrets.token_hex(16)


# --- SQLite ---------------------------------------------------------------------------------------

_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS accounts (
        name     TEXT PRIMARY KEY,
        used     INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        calls    INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
        reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        released INTEGER NOT NULL DEFAULT 0,
        updated  REAL
    )""",
    """CREATE TABLE IF NOT EXISTS reservations (
        id      TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        n       INTEGER NOT NULL CHECK (n >= 0),
        created REAL NOT NULL,
        expires REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (account, expires)",
)
# Columns added since the first ledger version (files written before reservations existed).
_SQLITE_MIGRATIONS = {
    "reserved": "ALTER TABLE accounts ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0",
    "released": "ALTER TABLE accounts ADD COLUMN released INTEGER NOT NULL DEFAULT 0",
}


class SQLiteLedger(BaseLedger):
    """The ledger in one SQLite file (WAL), safe across threads and processes of one host.

    Every operation is one ``BEGIN IMMEDIATE`` transaction, which takes the database's write lock,
    so operations of all threads and processes sharing the file are serialized. Commits use the
    configured ``synchronous`` level; reservations and releases use ``NORMAL`` (not fsynced: a WAL
    commit with ``FULL`` makes every earlier frame durable too).

    Args:
        path: the database file (created with its folder).
        synchronous: SQLite ``synchronous`` pragma of commits, ``FULL`` (durable per request),
            ``EXTRA`` or ``NORMAL``.
        timeout: seconds a writer waits for the database lock before failing.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", timeout: float = 30.0) -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.location = str(self.path)
        self.synchronous = synchronous
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("SQLite refused WAL mode for %s (got %s)", self.path, mode)
        with self._tx(durable=True) as c:
            for statement in _SQLITE_SCHEMA:
                c.execute(statement)
            have = {row[1] for row in c.execute("PRAGMA table_info(accounts)")}
            for column, statement in _SQLITE_MIGRATIONS.items():
                if column not in have:
                    c.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn = conn
            self._local.sync = self.synchronous
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self, *, durable: bool) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        level = self.synchronous if durable else "NORMAL"
        if self._local.sync != level:
            conn.execute(f"PRAGMA synchronous={level}")
            self._local.sync = level
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _ensure(conn: sqlite3.Connection, name: str, now: float) -> None:
        conn.execute("INSERT OR IGNORE INTO accounts(name, updated) VALUES (?, ?)", (name, now))

    @staticmethod
    def _sweep(conn: sqlite3.Connection, name: str, now: float) -> int:
        rows = conn.execute(
            "DELETE FROM reservations WHERE account = ? AND expires < ? RETURNING n", (name, now)
        ).fetchall()
        freed = sum(int(r[0]) for r in rows)
        if rows:
            conn.execute(
                "UPDATE accounts SET reserved = MAX(reserved - ?, 0), released = released + ?, updated = ? "
                "WHERE name = ?",
                (freed, freed, now, name),
            )
            log.warning("released %d expired reservation(s) of %s (%d images)", len(rows), name, freed)
        return freed

    def ensure(self, name: str) -> None:
        with self._tx(durable=False) as conn:
            self._ensure(conn, name, time.time())

    def reserve(self, name: str, n: int, budget: int | None, ttl: float) -> Reserve:
        _check_n(n)
        _check_ttl(ttl)
        now = time.time()
        with self._tx(durable=False) as conn:
            self._ensure(conn, name, now)
            self._sweep(conn, name, now)
            row = conn.execute(
                "UPDATE accounts SET reserved = reserved + ?, updated = ? "
                "WHERE name = ? AND (? IS NULL OR used + reserved + ? <= ?) RETURNING used, reserved, calls",
                (n, now, name, budget, n, budget),
            ).fetchone()
            if row is None:
                used, reserved, calls = conn.execute(
                    "SELECT used, reserved, calls FROM accounts WHERE name = ?", (name,)
                ).fetchone()
                return Reserve(False, None, int(used), int(reserved), int(calls))
            res = Reservation(self.new_id(), name, n, now + ttl)
            conn.execute(
                "INSERT INTO reservations(id, account, n, created, expires) VALUES (?, ?, ?, ?, ?)",
                (res.id, name, n, now, res.expires),
            )
        return Reserve(True, res, int(row[0]), int(row[1]), int(row[2]))

    def commit(self, reservation: Reservation, *, durable: bool = True) -> Charge:
        now = time.time()
        if not durable and not getattr(self._local, "no_checkpoint", False):
            # An automatic checkpoint runs inside the COMMIT that crosses the WAL threshold, after
            # the charge is already written; the service commits right before a response's last
            # byte, so leave checkpoints to the connections of the other operations.
            self._conn().execute("PRAGMA wal_autocheckpoint=0")
            self._local.no_checkpoint = True
        with self._tx(durable=durable) as conn:
            held = conn.execute("DELETE FROM reservations WHERE id = ? RETURNING n", (reservation.id,)).fetchone()
            if held is None:
                log.warning(
                    "reservation %s of %s (%d images) had expired before its commit; charged anyway",
                    reservation.id, reservation.account, reservation.n,
                )  # fmt: skip
                self._ensure(conn, reservation.account, now)
                row = conn.execute(
                    "UPDATE accounts SET used = used + ?, calls = calls + 1, released = MAX(released - ?, 0), "
                    "updated = ? WHERE name = ? RETURNING used, calls",
                    (reservation.n, reservation.n, now, reservation.account),
                ).fetchone()
            else:
                row = conn.execute(
                    "UPDATE accounts SET used = used + ?, reserved = MAX(reserved - ?, 0), calls = calls + 1, "
                    "updated = ? WHERE name = ? RETURNING used, calls",
                    (reservation.n, reservation.n, now, reservation.account),
                ).fetchone()
        return Charge(True, int(row[0]), int(row[1]))

    def sync(self, account: str) -> None:
        """fsync the WAL: every commit written so far is then on disk.

        Frames a checkpoint already moved into the database file are durable without it: in WAL
        mode SQLite fsyncs the WAL before and the database file after every checkpoint (SQLite docs,
        "synchronous"). Without a WAL file (never written yet) the database file is fsynced.
        """
        if self.synchronous == "NORMAL":
            return
        for path in (Path(f"{self.path}-wal"), self.path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return

    def release(self, reservation: Reservation) -> bool:
        now = time.time()
        with self._tx(durable=False) as conn:
            held = conn.execute("DELETE FROM reservations WHERE id = ? RETURNING n", (reservation.id,)).fetchone()
            if held is None:
                return False
            conn.execute(
                "UPDATE accounts SET reserved = MAX(reserved - ?, 0), released = released + ?, updated = ? "
                "WHERE name = ?",
                (reservation.n, reservation.n, now, reservation.account),
            )
        return True

    def release_expired(self) -> int:
        now = time.time()
        with self._tx(durable=False) as conn:
            names = [r[0] for r in conn.execute("SELECT DISTINCT account FROM reservations WHERE expires < ?", (now,))]
            return sum(self._sweep(conn, name, now) for name in names)

    def charge(self, name: str, n: int, budget: int | None) -> Charge:
        _check_n(n)
        now = time.time()
        with self._tx(durable=True) as conn:
            self._ensure(conn, name, now)
            row = conn.execute(
                "UPDATE accounts SET used = used + ?, calls = calls + 1, updated = ? "
                "WHERE name = ? AND (? IS NULL OR used + reserved + ? <= ?) RETURNING used, calls",
                (n, now, name, budget, n, budget),
            ).fetchone()
            if row is None:
                used, calls = conn.execute("SELECT used, calls FROM accounts WHERE name = ?", (name,)).fetchone()
                return Charge(False, int(used), int(calls))
        return Charge(True, int(row[0]), int(row[1]))

    def account(self, name: str) -> Usage:
        row = (
            self._conn()
            .execute("SELECT used, calls, reserved, released FROM accounts WHERE name = ?", (name,))
            .fetchone()
        )
        return Usage(*(int(v) for v in row)) if row else Usage(0, 0, 0, 0)

    def all_usage(self) -> dict[str, dict[str, int]]:
        rows = (
            self._conn().execute("SELECT name, used, calls, reserved, released FROM accounts ORDER BY name").fetchall()
        )
        return {
            r[0]: {"used": int(r[1]), "calls": int(r[2]), "reserved": int(r[3]), "released": int(r[4])} for r in rows
        }

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.ProgrammingError):  # another thread's connection
                conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r}, synchronous={self.synchronous})"


#: The default backend under its historical name: ``Ledger(path)`` opens an SQLite ledger.
Ledger = SQLiteLedger


def is_postgres_url(spec: str | Path) -> bool:
    """True for ``postgresql://...`` and ``postgres://...`` ledger locations."""
    return isinstance(spec, str) and spec.split(":", 1)[0].lower() in {"postgresql", "postgres"}


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def open_ledger(spec: BaseLedger | str | Path, *, synchronous: str = "FULL") -> BaseLedger:
    """A ledger from a location: ``postgresql://...`` (PostgreSQL), ``sqlite:///path`` or a file path.

    Args:
        spec: a ledger (returned as is), a PostgreSQL URL or an SQLite path.
        synchronous: the SQLite ``synchronous`` level of commits (ignored for PostgreSQL).
    """
    if isinstance(spec, BaseLedger):
        return spec
    if is_postgres_url(spec):
        from .ledger_postgres import PostgresLedger

        return PostgresLedger(str(spec))
    text = str(spec)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
    return SQLiteLedger(text, synchronous=synchronous)
