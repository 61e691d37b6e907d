"""A `limits` storage on one SQLite file, so every process of one machine shares the counts.

`memory://` counts per process: with gunicorn's workers each worker had its own budget, so a
client got `workers` times the stated limit. This storage keeps the counters in a file (the
default is `ratelimits.sqlite3` in the instance folder, see webapp/limits.py), in WAL mode, and
does every check-and-count in one `BEGIN IMMEDIATE` transaction, so concurrent workers and
threads never both take the last slot.

    sqlite:////abs/path/ratelimits.sqlite3     (an absolute path: four slashes)
    sqlite:///relative/ratelimits.sqlite3      (relative to the working directory)

Options (Flask-Limiter's RATELIMIT_STORAGE_OPTIONS, or keywords to `storage_from_string`):
`timeout` seconds to wait for another process's lock (default 5).

Supports the fixed-window API (`incr`, `get`, `get_expiry`), the moving window
(`acquire_entry`, `get_moving_window`) and the sliding-window counter. Expired rows are pruned
as they are met and, about once a minute per process, everywhere. No Flask here.
"""
from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

from limits.errors import ConfigurationError
from limits.storage.base import (
    MovingWindowSupport,
    SlidingWindowCounterSupport,
    Storage,
    TimestampedSlidingWindow,
)

SCHEME = "sqlite"
PRUNE_EVERY = 60.0   # seconds between sweeps of every expired row, per process

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL,
                                     expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS counters_expires ON counters (expires);
CREATE TABLE IF NOT EXISTS entries (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_key_at ON entries (key, at);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
"""


def uri_for(path: str | os.PathLike) -> str:
    """The storage URI of the SQLite file at `path` (made absolute)."""
    return f"{SCHEME}:///{os.path.abspath(os.fspath(path))}"


def path_from_uri(uri: str) -> str:
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme != SCHEME or parsed.netloc or not parsed.path.startswith("/") \
            or len(parsed.path) < 2:
        raise ConfigurationError(f"{uri!r}: expected sqlite:////absolute/path or sqlite:///relative/path")
    return urllib.parse.unquote(parsed.path[1:])


class SQLiteStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport,
                    TimestampedSlidingWindow):
    """Rate-limit counters in one SQLite file shared by the processes of a machine."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012  (the base class declares it an instance attribute)

    def __init__(self, uri: str, wrap_exceptions: bool = False, timeout: float = 5.0,
                 **options: float | str | bool) -> None:
        self.path = path_from_uri(uri)
        self.timeout = float(timeout)
        self._local = threading.local()
        self._last_prune = 0.0
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._connection()   # make the file and schema now: a bad path fails at start

    # -- connections ----------------------------------------------------------------------
    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            self._retry_locked(lambda: db.execute("PRAGMA journal_mode = WAL"))
            db.execute("PRAGMA synchronous = NORMAL")
            self._retry_locked(lambda: db.executescript(_SCHEMA))
            local.db, local.pid = db, os.getpid()
        return local.db

    def _retry_locked(self, step):
        """Run `step`, waiting out another process's brief lock (schema, WAL switch)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: `BEGIN IMMEDIATE` takes the file's write lock first, so the
        read-then-count inside cannot race another process."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def _maybe_prune(self, db: sqlite3.Connection, now: float) -> None:
        if now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            db.execute("DELETE FROM counters WHERE expires <= ?", (now,))
            db.execute("DELETE FROM entries WHERE expires <= ?", (now,))

    # -- fixed window ---------------------------------------------------------------------
    @staticmethod
    def _counter(db: sqlite3.Connection, key: str, now: float) -> tuple[int, float] | None:
        row = db.execute("SELECT value, expires FROM counters WHERE key = ?", (key,)).fetchone()
        if row is None or row[1] <= now:
            return None
        return int(row[0]), float(row[1])

    def _incr(self, db: sqlite3.Connection, key: str, expiry: float, amount: int, now: float) -> int:
        current = self._counter(db, key, now)
        if current is None:
            db.execute("INSERT OR REPLACE INTO counters (key, value, expires) VALUES (?, ?, ?)",
                       (key, amount, now + expiry))
            return amount
        db.execute("UPDATE counters SET value = value + ? WHERE key = ?", (amount, key))
        return current[0] + amount

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to `key`'s counter (a new counter expires in `expiry` seconds)."""
        now = time.time()
        with self._transaction() as db:
            self._maybe_prune(db, now)
            return self._incr(db, key, expiry, amount, now)

    def decr(self, key: str, amount: int = 1) -> int:
        now = time.time()
        with self._transaction() as db:
            current = self._counter(db, key, now)
            if current is None:
                return 0
            value = max(current[0] - amount, 0)
            db.execute("UPDATE counters SET value = ? WHERE key = ?", (value, key))
            return value

    def get(self, key: str) -> int:
        current = self._counter(self._connection(), key, time.time())
        return current[0] if current else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        current = self._counter(self._connection(), key, now)
        return current[1] if current else now

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int | None:
        with self._transaction() as db:
            keys = db.execute("SELECT COUNT(*) FROM (SELECT key FROM counters UNION "
                              "SELECT key FROM entries)").fetchone()[0]
            db.execute("DELETE FROM counters")
            db.execute("DELETE FROM entries")
            return int(keys)

    def clear(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM counters WHERE key = ?", (key,))
            db.execute("DELETE FROM entries WHERE key = ?", (key,))

    # -- moving window --------------------------------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take `amount` entries in `key`'s window of `expiry` seconds if at most `limit`
        would then be in it."""
        if amount > limit:
            return False
        now = time.time()
        with self._transaction() as db:
            self._maybe_prune(db, now)
            db.execute("DELETE FROM entries WHERE key = ? AND at < ?", (key, now - expiry))
            (count,) = db.execute("SELECT COUNT(*) FROM entries WHERE key = ?", (key,)).fetchone()
            if count + amount > limit:
                return False
            db.executemany("INSERT INTO entries (key, at, expires) VALUES (?, ?, ?)",
                           [(key, now, now + expiry)] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest entry still in the window, how many entries are in it)."""
        now = time.time()
        oldest, count = self._connection().execute(
            "SELECT MIN(at), COUNT(*) FROM entries WHERE key = ? AND at >= ?",
            (key, now - expiry)).fetchone()
        return (float(oldest), int(count)) if count else (now, 0)

    # -- sliding window counter -----------------------------------------------------------
    def _window(self, db: sqlite3.Connection, key: str, expiry: int,
                now: float) -> tuple[str, int, float, str, int, float]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._counter(db, previous_key, now)
        current = self._counter(db, current_key, now)
        previous_count = previous[0] if previous else 0
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous_count else 0.0
        current_count = current[0] if current else 0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous_key, previous_count, previous_ttl, current_key, current_count, current_ttl

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int,
                                     amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with self._transaction() as db:
            self._maybe_prune(db, now)
            _, previous_count, previous_ttl, current_key, current_count, _ = \
                self._window(db, key, expiry, now)
            weighted = previous_count * previous_ttl / expiry + current_count
            if math.floor(weighted) + amount > limit:
                return False
            # A new current window lives two windows: it is the next one's "previous".
            self._incr(db, current_key, 2 * expiry, amount, now)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        _, previous_count, previous_ttl, _, current_count, current_ttl = \
            self._window(self._connection(), key, expiry, time.time())
        return previous_count, previous_ttl, current_count, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        previous_key, current_key = self.sliding_window_keys(key, expiry, time.time())
        self.clear(previous_key)
        self.clear(current_key)
