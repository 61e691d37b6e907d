"""The Celery broker (Redis, CELERY_BROKER_URL) as the web side sees it: whether it can be
reached (/readyz), and the queued attempts whose task it lost, published again.

Redis restarted without persistence (or replaced, or flushed) loses the tasks it held; their
attempts would wait, QUEUED, until sessions.QUEUE_SECONDS released them. So each published
`liveness.verify` leaves a mark beside it in the same Redis database (tasks.py, after publishing):
`liveness:verify-task:<attempt id>`. A queued attempt that no worker has taken and whose mark is
gone lost its task with the broker's data; the web's background loop (app.start_background)
publishes it again. The mark is claimed with SET NX first, so of the web processes that notice,
one publishes. A second task for an attempt is harmless anyway: verification.run_queued sends
only an attempt still QUEUED, and the step to SENDING is taken under the session's lock
(FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), so one paid call, whatever arrives twice.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeGuard

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from .. import sessions
from ..storage import Attempt, Store, utcnow
from ..vocabulary import AttemptState

log = logging.getLogger(__name__)

_SCHEMES = ("redis://", "rediss://", "unix://")
MARK = "liveness:verify-task:"
# A queued attempt's task is looked for once it has been queued this long (its mark is written
# within milliseconds of the upload's answer), at most every CHECK_SECONDS per process.
GRACE_SECONDS = 10.0
CHECK_SECONDS = 5.0
# /readyz asks Redis at most this often per process, and waits this long for its answer.
READY_CACHE_SECONDS = 2.0
PING_TIMEOUT = 0.5

_clients: dict[tuple[str, int, float], redis.Redis] = {}
_clients_lock = threading.Lock()
_ready: dict[str, tuple[float, str | None]] = {}
_last_check = 0.0


def _redis(url: str | None) -> TypeGuard[str]:
    return bool(url) and str(url).startswith(_SCHEMES)


def client(url: str, timeout: float = 1.0) -> redis.Redis:
    """A Redis client for the broker's database that gives up after `timeout` seconds, once
    (no retries: the callers try again on their own schedule). One per process."""
    key = (url, os.getpid(), timeout)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                                 retry=Retry(NoBackoff(), 0), health_check_interval=0)
        return _clients[key]


def problem(url: str | None) -> str | None:
    """None when the broker answers a PING (or there is none, or it is not Redis); else why
    verifications cannot run (for /readyz). Asked at most every READY_CACHE_SECONDS."""
    if not _redis(url):
        return None
    now = time.monotonic()
    known = _ready.get(url)
    if known is not None and now - known[0] < READY_CACHE_SECONDS:
        return known[1]
    try:
        client(url, PING_TIMEOUT).ping()
        found = None
    except redis.RedisError as error:
        found = f"broker unavailable: {type(error).__name__}"
    _ready[url] = (time.monotonic(), found)
    return found


def mark_seconds() -> int:
    """How long a mark outlives its publication: longer than a queued attempt may wait."""
    return int(sessions.QUEUE_SECONDS) + 60


def record_published(url: str | None, attempt_id: int) -> None:
    """Mark that this attempt's task is in the broker (tasks.py, after each publication)."""
    if not _redis(url):
        return
    try:
        client(url).set(f"{MARK}{attempt_id}", b"1", ex=mark_seconds())
    except redis.RedisError as error:  # its attempt may be published again: harmless
        log.warning("attempt %s: its task's mark was not written: %s", attempt_id, type(error).__name__)


def republish_lost(store: Store, url: str | None, publish: Callable[[int], Any],
                   now: dt.datetime | None = None) -> list[int]:
    """Publish again the task of each attempt queued for over GRACE_SECONDS, taken by no worker,
    whose mark the broker no longer holds; the ids published. Nothing while the broker is down
    (it is asked again at the next pass)."""
    if not _redis(url):
        return []
    now = now or utcnow()
    # A queued attempt's lease runs QUEUE_SECONDS from its queueing (sessions.queue).
    queued_before = now + dt.timedelta(seconds=sessions.QUEUE_SECONDS - GRACE_SECONDS)
    with store.session() as db:
        waiting = list(db.scalars(select(Attempt.id).where(
            Attempt.state == AttemptState.QUEUED, Attempt.owner.is_(None), Attempt.lease_until < queued_before)
            .order_by(Attempt.id)))
        db.commit()
    published: list[int] = []
    if not waiting:
        return published
    marks = client(url)
    for attempt_id in waiting:
        key = f"{MARK}{attempt_id}"
        try:
            if not marks.set(key, b"republished", nx=True, ex=mark_seconds()):
                continue  # its task is there (or another process publishes it)
        except redis.RedisError as error:
            log.warning("queued attempts not checked: the broker is unavailable (%s)", type(error).__name__)
            break
        try:
            publish(attempt_id)
        except Exception:
            log.exception("attempt %s: its lost task could not be published again", attempt_id)
            try:
                marks.delete(key)
            except redis.RedisError:
                pass
            break
        log.warning("attempt %s: its task was lost with the broker's data; published again", attempt_id)
        published.append(attempt_id)
    return published


def check_queued(store: Store, url: str | None, publish: Callable[[int], Any]) -> list[int]:
    """republish_lost, at most every CHECK_SECONDS per process (tasks.publish_lost, from the web's
    background loop)."""
    global _last_check
    if not _redis(url) or time.monotonic() - _last_check < CHECK_SECONDS:
        return []
    _last_check = time.monotonic()
    return republish_lost(store, url, publish)
