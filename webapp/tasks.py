"""Celery: the work that should not hold a web thread, when CELERY_BROKER_URL is set.

    celery -A webapp.worker worker --pool threads --concurrency 16   (webapp/worker.py)

`verify` takes a queued attempt (its normalised video stored in the database by the upload
request) to Juhe and records the answer; `deliver_webhooks` sends due webhook deliveries from
the database outbox, which stays the source of truth. With no broker (a fresh machine) the same
functions run in the web process, as before.

A task is acknowledged only once it has run (late acknowledgement), so a worker killed mid-task
gives its tasks to another worker; the attempt's own state machine then makes sure nothing
that may have reached Juhe is sent again (verification.run_queued).
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from . import logs, verification

log = logging.getLogger(__name__)
# A dead worker's unacknowledged tasks go to another worker after this long (the Redis
# transport's visibility timeout): the people whose tasks it had received but not begun wait
# this long (plus a restore round of 5 s) for their verdict. A task still running after it is
# delivered again too; that copy finds its attempt taken and does nothing (run_queued), so a
# slow Juhe costs one empty task, never a second call. Queued attempts wait longer than this
# before they are released (sessions.QUEUE_SECONDS).
VISIBILITY_SECONDS = int(os.environ.get("CELERY_VISIBILITY_SECONDS", 20))

celery = Celery("liveness")


def configure(broker_url: str | None) -> Celery:
    celery.conf.update(
        broker_url=broker_url, task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1, task_ignore_result=True, task_serializer="json",
        accept_content=["json"], broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_SECONDS,
                                  # look for a dead worker's tasks every few seconds
                                  "unacked_restore_interval": 5, "unacked_restore_throttle": 1},
        worker_hijack_root_logger=False)
    return celery


configure(os.environ.get("CELERY_BROKER_URL") or None)  # the worker's; the web's app sets its own
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


@celery.task(name="liveness.verify")
def verify(attempt_id: int, request_id: str | None = None) -> None:
    logs.request_id.set(request_id)
    s = _services()
    verification.run_queued(s.store, s.settings, s.client, attempt_id,
                            on_finished=lambda _id: deliver_webhooks.delay(), on_settled=s.wakeups.publish)


@celery.task(name="liveness.deliver_webhooks")
def deliver_webhooks() -> None:
    _services().dispatcher.deliver_due()
