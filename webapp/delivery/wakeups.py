"""Wake the page's state request the moment its attempt ends (long polling), across processes.

Flask-free. With a Redis broker (CELERY_BROKER_URL=redis://…) the Celery worker that settles an
attempt publishes the session's public id on a Redis channel. Each web process keeps one
subscriber connection, opened when a request first waits, and wakes the requests waiting on that
session. `GET /v/<token>/state?wait=15` then answers as soon as the verdict is recorded, instead
of at the page's next poll.

Without Redis nothing waits: the state answers at once and the page polls on its own schedule,
as it always did. The same happens when the subscriber is not connected (Redis restarting), or
when `max_waiters` requests already wait in this process: a waiting request holds one of
gunicorn's threads, and half of them stay free for everything else.

Nothing secret goes to Redis: the channel names a session's public id, never its page token.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)

CHANNEL = "liveness:session-settled:"
_SCHEMES = ("redis://", "rediss://", "unix://")


class Wakeups:
    def __init__(self, redis_url: str | None, max_waiters: int):
        self.url = redis_url if redis_url and redis_url.startswith(_SCHEMES) else None
        self.max_waiters = max_waiters
        self._lock = threading.Lock()
        self._waiting: dict[str, set[threading.Event]] = {}
        self._count = 0
        self._listening = threading.Event()  # subscribed: a publish from now on reaches us
        self._listener: threading.Thread | None = None
        self._pid = 0
        self._publisher: redis.Redis | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def publish(self, session_id: str) -> None:
        """Tell every web process that this session's attempt ended. Best effort: a lost
        wake-up only means the page sees the verdict at its next look."""
        if self.url is None:
            return
        try:
            if self._publisher is None:
                self._publisher = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            self._publisher.publish(CHANNEL + session_id, b"1")
        except redis.RedisError as error:
            log.warning("session %s: could not publish its wake-up: %s", session_id, type(error).__name__)

    @contextmanager
    def watch(self, session_id: str) -> Iterator[threading.Event | None]:
        """An event set when this session's attempt ends, for as long as the block runs; None
        when this process cannot wait (no Redis, not subscribed, or `max_waiters` waiting).
        Read the state after entering: what ended before is not announced again."""
        if self.url is None or not self._subscribed():
            yield None
            return
        event = threading.Event()
        with self._lock:
            admitted = self._count < self.max_waiters
            if admitted:
                self._count += 1
                self._waiting.setdefault(session_id, set()).add(event)
        if not admitted:
            yield None
            return
        try:
            yield event
        finally:
            with self._lock:
                self._count -= 1
                waiters = self._waiting.get(session_id, set())
                waiters.discard(event)
                if not waiters:
                    self._waiting.pop(session_id, None)

    def start(self) -> None:
        """Subscribe now (a serving process, at its start), so the first wait need not."""
        if self.url is not None:
            self._subscribed(first_wait=0.0)

    def _subscribed(self, first_wait: float = 1.0) -> bool:
        """True while this process's subscriber is subscribed. The first call (in each process:
        gunicorn forks) starts it and gives it `first_wait` seconds to subscribe."""
        with self._lock:
            started = self._listener is None or not self._listener.is_alive() or self._pid != os.getpid()
            if started:
                self._pid, self._listening = os.getpid(), threading.Event()
                self._listener = threading.Thread(target=self._listen, args=(self._listening,),
                                                  name="liveness-wakeups", daemon=True)
                self._listener.start()
        return self._listening.wait(first_wait) if started else self._listening.is_set()

    def _listen(self, listening: threading.Event) -> None:
        assert self.url is not None
        pause = 0.5
        while True:
            pubsub = None
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=2, health_check_interval=10)
                pubsub = client.pubsub()
                pubsub.psubscribe(CHANNEL + "*")
                while True:
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        listening.set()
                        pause = 0.5
                    elif message["type"] == "pmessage":
                        self._wake(message["channel"].decode()[len(CHANNEL):])
            except Exception as error:  # Redis gone: the waiters look again, and we reconnect
                listening.clear()
                self._wake_all()
                log.warning("wake-ups: Redis subscriber lost (%s); reconnecting in %.1f s",
                            type(error).__name__, pause)
                if pubsub is not None:
                    pubsub.close()
                time.sleep(pause)
                pause = min(pause * 2, 10.0)

    def _wake(self, session_id: str) -> None:
        with self._lock:
            for event in self._waiting.get(session_id, ()):
                event.set()

    def _wake_all(self) -> None:
        with self._lock:
            for waiters in self._waiting.values():
                for event in waiters:
                    event.set()
