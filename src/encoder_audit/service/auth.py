"""API keys: generated from ``secrets``, stored only as SHA-256 digests, compared in constant time.

The keys file is YAML::

    keys:
      alice:
        sha256: 9f86d081...   # hex digest of the key; the key itself is never written
        budget: 10000         # total images this account may embed (null = unlimited)
        rate: 20              # token-bucket refill, requests per second (null = no rate limit)
        burst: 40             # token-bucket size (default: max(1, 2 * rate))

A key carries 256 random bits, so a plain SHA-256 digest is enough at rest (a slow password hash only
matters for guessable secrets). Authentication hashes the presented key and compares it with *every*
stored digest through :func:`hmac.compare_digest`, without stopping at a match, so neither the
comparison nor the position of the matching entry leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError

KEY_PREFIX = "ea_"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def generate_key() -> str:
    """A new API key: ``ea_`` + 43 url-safe characters (256 bits from :mod:`secrets`)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hex SHA-256 of the key's UTF-8 bytes (what the keys file stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeySpec:
    """One account of the keys file.

    Attributes:
        name: account name (the ledger's key; letters, digits, ``-_.``).
        sha256: hex digest of the API key.
        budget: total images the account may embed; None = unlimited.
        rate: requests per second the token bucket refills; None = no rate limit.
        burst: bucket size (requests that may arrive at once); default ``max(1, 2 * rate)``.
    """

    name: str
    sha256: str
    budget: int | None = None
    rate: float | None = None
    burst: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= _NAME_CHARS:
            raise ValueError(f"account name must be letters, digits, '-', '_' or '.', got {self.name!r}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"account {self.name!r}: sha256 must be 64 lowercase hex digits")
        if self.budget is not None and (isinstance(self.budget, bool) or self.budget < 0):
            raise ValueError(f"account {self.name!r}: budget must be >= 0 or null, got {self.budget}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"account {self.name!r}: rate must be > 0 or null, got {self.rate}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"account {self.name!r}: burst must be >= 1, got {self.burst}")

    @property
    def bucket_size(self) -> float:
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, 2.0 * (self.rate or 0.0))

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "budget": self.budget, "rate": self.rate}
        if self.burst is not None:
            out["burst"] = self.burst
        return out


class KeyStore:
    """The accounts the server accepts, looked up by presented key.

    Args:
        specs: the accounts (names and digests must be unique).
    """

    def __init__(self, specs: list[KeySpec]) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("account names in the keys file must be unique")
        if len({s.sha256 for s in specs}) != len(specs):
            raise ValueError("two accounts in the keys file share one key")
        self.specs = {s.name: s for s in specs}
        self._digests = [(bytes.fromhex(s.sha256), s) for s in specs]

    @classmethod
    def load(cls, path: str | Path) -> KeyStore:
        """Read a keys file (YAML, ``safe_load``).

        Raises:
            UserError: missing file or malformed entries (names the file and the entry).
        """
        p = Path(path)
        if not p.is_file():
            raise UserError(f"keys file not found: {p} (create one with `encoder-audit keys create NAME --file {p}`)")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"keys file {p} is not valid YAML: {exc}") from None
        return cls.from_mapping(data, source=str(p))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "keys") -> KeyStore:
        if not isinstance(data, dict) or not isinstance(data.get("keys", {}), dict):
            raise UserError(f"{source}: expected a mapping with a 'keys:' mapping of accounts")
        specs = []
        for name, entry in (data.get("keys") or {}).items():
            if not isinstance(entry, dict):
                raise UserError(f"{source}: account {name!r} must be a mapping")
            unknown = set(entry) - {"sha256", "budget", "rate", "burst"}
            if unknown:
                raise UserError(f"{source}: account {name!r} has unknown fields {sorted(unknown)}")
            try:
                specs.append(
                    KeySpec(
                        name=str(name),
                        sha256=str(entry.get("sha256", "")).lower(),
                        budget=None if entry.get("budget") is None else int(entry["budget"]),
                        rate=None if entry.get("rate") is None else float(entry["rate"]),
                        burst=None if entry.get("burst") is None else float(entry["burst"]),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise UserError(f"{source}: {exc}") from None
        return cls(specs)

    def to_mapping(self) -> dict[str, Any]:
        return {"keys": {name: s.to_yaml() for name, s in self.specs.items()}}

    def save(self, path: str | Path) -> Path:
        """Write the keys file atomically (digests only), readable by its owner alone (mode 0600)."""
        header = "# encoder-audit keys file: SHA-256 digests of API keys, budgets (images) and rate limits.\n"
        text = header + yaml.safe_dump(self.to_mapping(), sort_keys=False)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)  # created 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p

    def authenticate(self, presented: str | None) -> KeySpec | None:
        """The account whose key is ``presented``, or None (constant time in the number of accounts)."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: KeySpec | None = None
        for stored, spec in self._digests:
            if hmac.compare_digest(stored, digest):
                found = spec
        return found

    def __len__(self) -> int:
        return len(self.specs)


def add_key(
    path: str | Path,
    name: str,
    *,
    budget: int | None = None,
    rate: float | None = None,
    burst: float | None = None,
    replace: bool = False,
) -> str:
    """Create a key for account ``name``, add its digest to the keys file (created if missing), return it.

    The returned key is the only copy: the file keeps its digest.

    Raises:
        UserError: the account exists and ``replace`` is False.
    """
    p = Path(path)
    store = KeyStore.load(p) if p.exists() else KeyStore([])
    if name in store.specs and not replace:
        raise UserError(f"account {name!r} already exists in {p} (pass --replace to issue a new key)")
    key = generate_key()
    spec = KeySpec(name=name, sha256=hash_key(key), budget=budget, rate=rate, burst=burst)
    specs = [s for s in store.specs.values() if s.name != name] + [spec]
    KeyStore(specs).save(p)
    return key
