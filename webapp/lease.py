"""An attempt's lease: who owns an attempt in flight, and the thread that keeps it owned.

An attempt in flight carries a lease that its process renews every HEARTBEAT seconds; one whose
lease lapsed belongs to a process that died (or lost the database), and sessions.refresh
releases it. Flask-free.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import socket
import threading
import time

from sqlalchemy import update

from .storage import Attempt, Store, affected, utcnow
from .vocabulary import IN_FLIGHT

log = logging.getLogger(__name__)

LEASE_SECONDS = 20.0
HEARTBEAT_SECONDS = 5.0


def owner() -> str:
    """This process, as an attempt's owner (asked each time: a forked child is another process)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """Keeps an in-flight attempt's lease fresh from a thread while this process works on it.

    `lost` is set when the attempt was taken from us (released as interrupted) or the lease
    could not be renewed before it lapses; the work must then stop before it could complete,
    so that a released session is never paid for by a call still running here.
    """

    def __init__(self, store: Store, attempt_id: int):
        self.store, self.attempt_id = store, attempt_id
        self.seconds, self.every = LEASE_SECONDS, HEARTBEAT_SECONDS
        self.lost = threading.Event()
        self._holding = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,),
                                        name=f"lease-{attempt_id}", daemon=True)  # logs keep the request id

    def hold(self) -> None:
        """The answer is in hand: from now on the lease is renewed for as long as it takes to
        write it (a database away for a while), never given up as about to lapse."""
        self._holding = True

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.every):
            try:
                with self.store.session() as db:
                    kept = affected(db,
                        update(Attempt).where(Attempt.id == self.attempt_id, Attempt.owner == owner(),
                                              Attempt.state.in_(IN_FLIGHT))
                        .values(lease_until=utcnow() + dt.timedelta(seconds=self.seconds))
                        .execution_options(synchronize_session=False))
                    db.commit()
            except Exception:
                log.exception("attempt %s: lease not renewed", self.attempt_id)
                kept = None
            if kept == 0:
                self.lost.set()
                return
            if kept:
                renewed = time.monotonic()
            elif time.monotonic() - renewed > self.seconds - self.every and not self._holding:
                self.lost.set()  # about to lapse: others may soon release the session
                return
