"""The wake-ups behind the page's waiting state request, against a real redis-server: a session
settled in one process wakes the requests waiting on it in another, at once; without Redis, or
with Redis gone, nothing waits (the page polls as before) and nothing fails."""
from __future__ import annotations

import time

import pytest

from webapp.delivery.wakeups import Wakeups

from .servers import RedisServer


def subscribed(wakeups: Wakeups, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with wakeups.watch("ses_probe") as event:
            if event is not None:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_a_settled_session_wakes_only_its_own_waiters_in_another_process(redis):
    web, worker = Wakeups(redis.url, max_waiters=4), Wakeups(redis.url, max_waiters=4)
    web.start()
    assert subscribed(web)
    with web.watch("ses_a") as mine, web.watch("ses_b") as other:
        assert mine is not None and other is not None
        worker.publish("ses_a")
        assert mine.wait(5), "the waiter was not woken"
        assert not other.wait(0.5), "another session's waiter was woken"


def test_without_redis_nothing_waits_and_publishing_is_harmless():
    for url in (None, "", "amqp://guest@127.0.0.1//"):
        wakeups = Wakeups(url, max_waiters=4)
        assert not wakeups.enabled
        wakeups.publish("ses_a")
        with wakeups.watch("ses_a") as event:
            assert event is None


def test_at_most_max_waiters_wait_in_one_process(redis):
    wakeups = Wakeups(redis.url, max_waiters=2)
    assert subscribed(wakeups)
    with wakeups.watch("ses_1") as first, wakeups.watch("ses_2") as second, wakeups.watch("ses_3") as third:
        assert first is not None and second is not None and third is None
    with wakeups.watch("ses_3") as again:
        assert again is not None  # freed when the others ended


def test_redis_gone_wakes_the_waiters_and_nothing_waits_until_it_is_back(tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    wakeups = Wakeups(redis.url, max_waiters=4)
    assert subscribed(wakeups)
    with wakeups.watch("ses_a") as event:
        assert event is not None
        redis.stop()
        assert event.wait(10), "a waiter slept on while its subscriber was gone"
    wakeups.publish("ses_a")  # logged, not raised
    with wakeups.watch("ses_a") as event:
        assert event is None  # the page polls instead

    back = RedisServer(tmp_path / "redis2")
    back.port = redis.port
    back.start()
    try:
        assert subscribed(wakeups, timeout=30), "the subscriber never came back"
        with wakeups.watch("ses_a") as event:
            assert event is not None
            Wakeups(back.url, max_waiters=1).publish("ses_a")
            assert event.wait(5)
    finally:
        back.stop()
