"""The database away for a while (restarted, failed over, the network between): recognise it,
and wait it out where giving up would lose something that cannot be had again.

Most requests simply fail while it is away and are answered 503 (app.py), to be tried again by
the page or the operator's client. One write must not fail that way: Juhe's answer to a paid
call (verification.py, step 6). `patiently` repeats such a write until the database is back.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long an answer from Juhe is held in memory, written again and again, before giving up
# (the error then reaches the caller and the attempt is settled as "charge unknown").
PATIENCE_SECONDS = 600.0
FIRST_PAUSE, LONGEST_PAUSE = 0.2, 2.0


def database_away(error: BaseException) -> bool:
    """True for an error that says the database could not be reached or the connection broke
    (a restart, a failover, a network fault), not that the statement was wrong."""
    if not isinstance(error, DBAPIError):
        return False
    return bool(error.connection_invalidated) or isinstance(error, OperationalError | InterfaceError)


def patiently(work: Callable[[], T], what: str, patience: float = PATIENCE_SECONDS) -> T:
    """`work()`, run again while the database is away, up to `patience` seconds. `work` must be
    one whole unit of work (its own session and commit), safe to run again after a failure."""
    deadline = time.monotonic() + patience
    pause, tries = FIRST_PAUSE, 0
    while True:
        try:
            result = work()
        except DBAPIError as error:
            if not database_away(error) or time.monotonic() + pause > deadline:
                raise
            tries += 1
            if tries == 1 or tries % 30 == 0:
                # The type only: the statement and its parameters may carry personal data.
                log.warning("%s: the database is away (%s); writing it again until it is back",
                            what, type(error.orig).__name__ if error.orig is not None else type(error).__name__)
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
            continue
        if tries:
            log.warning("%s: written after %d tries", what, tries + 1)
        return result
