"""The schema's migrations (Alembic; the revisions are in webapp/migrations/versions).

`upgrade(store)` brings a database to the newest revision once, however many workers and
instances start together: it runs under the store's schema lock (an advisory lock on
PostgreSQL, a file lock on SQLite). A database made before migrations existed (release 0.1,
whose schema is revision 0001) is adopted: stamped 0001, then upgraded. `Schema` does it in a
web process, which must start even while the database is away.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

from .outages import database_away
from .storage import Store

FOLDER = Path(__file__).with_name("migrations")
FIRST = "0001"
log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # its chatter at every start; we say what ran


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(FOLDER))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def current(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, lock_dir: str | Path | None = None, revision: str = "head") -> str | None:
    """Upgrade to `revision` under the schema lock; return the revision the database is at."""
    with store.schema_lock(lock_dir) as conn:
        cfg = config(conn)
        at = MigrationContext.configure(conn).get_current_revision()
        if at is None and inspect(conn).has_table("sessions"):
            command.stamp(cfg, FIRST)  # made by release 0.1's create_all
        command.upgrade(cfg, revision)
        now = MigrationContext.configure(conn).get_current_revision()
    if now != at:
        log.info("database schema upgraded from revision %s to %s", at or "(empty)", now)
    return now


class Schema:
    """The schema brought to the newest revision once per process, as soon as the database answers.

    A gunicorn worker that fails to boot stops the whole service (the master halts), so a worker
    started while the database is away (restarted, failing over) must boot all the same: it answers
    503 meanwhile, and its first request or background pass after the database is back brings the
    schema up, before anything else there touches the database (app.py)."""

    def __init__(self, store: Store, lock_dir: str | Path | None = None):
        self.store, self.lock_dir = store, lock_dir
        self.ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Upgrade unless done in this process; raises what the database answers (DBAPIError)."""
        if self.ready:
            return
        with self._lock:
            if not self.ready:
                upgrade(self.store, self.lock_dir)
                self.ready = True

    def at_start(self) -> None:
        """`ensure()`, but a database that is away is left to later calls: a warning, not a failed
        start. (So is one that refuses us, a wrong URL: readyz says so, and this warning says why.)"""
        try:
            self.ensure()
        except DBAPIError as error:
            if not database_away(error):
                raise
            # The driver's words only: a connection's failure carries no statement or parameters.
            why = str(error.orig or error).strip().splitlines()[0]
            log.warning("the database is away at start; the schema is brought up once it answers: %s", why)
