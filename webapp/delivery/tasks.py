"""Celery: the work that should not hold a web thread, when CELERY_BROKER_URL is set.

    celery -A webapp.worker worker --pool threads --concurrency 16   (webapp/worker.py)

`verify` takes a queued attempt (its normalised video stored in the database by the upload
request) to Juhe and records the answer; `deliver_webhooks` sends due webhook deliveries from
the database outbox, which stays the source of truth. With no broker (a fresh machine) the same
functions run in the web process, as before.

A task is acknowledged only once it has run (late acknowledgement), so a worker killed mid-task
gives its tasks to another worker; the attempt's own state machine then makes sure nothing
that may have reached Juhe is sent again (verification.run_queued).

The broker may go away (Redis restarted, a network fault): the worker keeps running the tasks it
holds, tries to reconnect (broker_connection_retry, for about 45 minutes before it exits to its
supervisor) and takes new ones once Redis is back. A task that Redis lost with its data is
published again by the web (webapp/delivery/broker.py), from the mark each publication leaves.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals
from celery.worker.consumer import Consumer as _Consumer

from .. import logs, verification
from ..settings import Settings
from ..storage import Store
from . import broker

log = logging.getLogger(__name__)

# Configured from the settings by whoever runs or queues tasks: the worker's entry point
# (webapp/worker.py) and the web's app (webapp/app.py), with CELERY_BROKER_URL set.
celery = Celery("liveness")


def configure(settings: Settings) -> Celery:
    """Celery's configuration from the service's settings: CELERY_BROKER_URL, and
    CELERY_VISIBILITY_SECONDS, after which a dead worker's unacknowledged tasks go to another
    worker (the Redis transport's visibility timeout): the people whose tasks it had received
    but not begun wait this long (plus a restore round of 5 s) for their verdict. A task still
    running after it is delivered again too; that copy finds its attempt taken and does nothing
    (run_queued), so a slow Juhe costs one empty task, never a second call. Queued attempts wait
    longer than this before they are released (sessions.QUEUE_SECONDS)."""
    celery.conf.update(
        broker_url=settings.CELERY_BROKER_URL, task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1, task_ignore_result=True, task_serializer="json",
        accept_content=["json"], broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.CELERY_VISIBILITY_SECONDS,
                                  # look for a dead worker's tasks every few seconds
                                  "unacked_restore_interval": 5, "unacked_restore_throttle": 1,
                                  # a Redis gone silent (no RST: a host or network lost) is
                                  # noticed, rather than waited for without end
                                  "socket_connect_timeout": 5, "socket_timeout": 30},
        # A task running when the connection is lost goes on (celery 6 would cancel it): it may
        # be waiting for Juhe's answer to a paid call, which must be recorded.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_consumer=f"{__name__}:Consumer", worker_hijack_root_logger=False)
    return celery


class Consumer(_Consumer):
    """Celery's consumer, surviving the loss of its Redis connection (issue 19).

    On losing the broker connection, celery collect()s it: kombu detaches its transport
    (`transport.client = None`). Whatever then still uses that connection's channel fails with
    `AttributeError: 'NoneType' object has no attribute 'hostname'` (kombu/transport/redis.py
    _connparams), where celery forgives only connection and channel errors, and the worker exits
    ("Unrecoverable error"). Two such uses, both met when Redis dies while a worker runs acks_late
    tasks (our normal state), in celery 5.7.0 and kombu 5.7.0, the latest (and their main
    branches, August 2026):
    - the close() that celery 5.7.0 adds after collect() (for celery GH-9705, a hang on a dead
      socket): when the first close of the channel was cut short by the failed BRPOP, the second
      one restores the channel's unacknowledged messages through the detached transport;
    - the acknowledgement of each task that finished meanwhile: the event loop runs it, once
      reconnected, on its message's old channel.
    Both are let fail here, logged: the connection was collected (its socket released) and Redis
    keeps the messages it has not seen acknowledged, to deliver again after the visibility
    timeout (a task delivered again finds its attempt no longer queued: nothing is sent).
    """

    def on_connection_error_after_connected(self, exc):
        connection = self.connection
        if connection is not None:
            connection.close = _forgiving(connection.close, "its collected channel not closed again")
        return super().on_connection_error_after_connected(exc)

    def call_soon_ack(self, p, *args, **kwargs):
        return super().call_soon_ack(_forgiving(p, "a task's acknowledgement went with its old connection"),
                                     *args, **kwargs)


def _forgiving(call: Callable[..., Any], what: str) -> Callable[..., Any]:
    """`call`, an operation on a broker connection that celery has collected: its AttributeError
    (kombu: the transport has no client) is logged rather than ending the worker."""
    def run(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except AttributeError as error:
            log.warning("broker connection lost: %s (%s)", what, error)
            return None
    return run


_factory: Callable[[], Any] | None = None
_built: Any = None
_building = threading.Lock()


def build_services_with(factory: Callable[[], Any]) -> None:
    """How this process makes the services its tasks use (webapp/worker.py: the app's)."""
    global _factory
    _factory = factory


def _services():
    """The worker's services (database, Juhe client, dispatcher), built once per process."""
    global _built
    with _building:
        if _built is None:
            if _factory is None:
                raise RuntimeError("no services for the tasks: start the worker with `celery -A webapp.worker worker`")
            _built = _factory()
    return _built


@signals.worker_ready.connect
def _warm(**_kwargs) -> None:
    """Build the services (and check the schema) before the first task arrives, not during it."""
    _services()


@signals.after_task_publish.connect(sender="liveness.verify")
def _published(body: Any = None, **_kwargs) -> None:
    """Leave the mark by which the web tells a task Redis lost from one it holds (broker.py)."""
    args = body[0] if isinstance(body, (list, tuple)) and body else ()
    if args:
        broker.record_published(celery.conf.broker_url, int(args[0]))


def publish_lost(store: Store) -> list[int]:
    """The web's background loop: publish again the queued attempts whose task Redis lost."""
    return broker.check_queued(store, celery.conf.broker_url, lambda attempt_id: verify.delay(attempt_id, None))


@celery.task(name="liveness.verify")
def verify(attempt_id: int, request_id: str | None = None) -> None:
    logs.request_id.set(request_id)
    s = _services()
    # Here a session that ended asks a worker for its webhook (the web's loop wakes its own).
    verifier = dataclasses.replace(s.verifier, on_finished=_deliver_soon)
    verification.run_queued(verifier, attempt_id, on_settled=s.wakeups.publish)


def _deliver_soon(_session_id: str) -> None:
    """Ask a worker for the session's webhook now. Best effort: with Redis away it stays due in
    the outbox, and the web's background loop sends it."""
    try:
        deliver_webhooks.delay()
    except Exception as error:
        log.warning("webhook delivery not queued (%s): the background loop sends it", type(error).__name__)


@celery.task(name="liveness.deliver_webhooks")
def deliver_webhooks() -> None:
    _services().dispatcher.deliver_due()
