"""Command-line tools: `flask --app wsgi <command>`."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import retention, uploads
from .extensions import services


def init_app(app: Flask) -> None:
    app.cli.add_command(db)
    app.cli.add_command(sandbox_ids)
    app.cli.add_command(purge)
    app.cli.add_command(deliver_webhooks)


@click.group("db")
def db() -> None:
    """The database schema (Alembic migrations in webapp/migrations)."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Bring the schema to the newest revision (the app also does this when it starts)."""
    from . import migrate
    click.echo(f"database at revision {migrate.upgrade(services().store, current_app.instance_path)}")


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Print the revision the database is at, and the newest one."""
    from . import migrate
    click.echo(f"database at revision {migrate.current(services().store)}; newest {migrate.head()}")


@click.command("purge")
@with_appcontext
def purge() -> None:
    """Release dead attempts, expire overdue sessions, purge best frames older than
    BEST_FRAMES_RETENTION, delete finished sessions older than RETENTION_DAYS, and remove
    uploads no live request holds."""
    s = services()
    with s.store.session() as db:
        counts = retention.housekeeping(db, s.settings)
    swept = uploads.sweep(s.uploads, uploads.max_age(s.settings))
    click.echo(f"expired {counts['expired']} session(s), purged {counts['purged']}, "
               f"purged the best frames of {counts['best_frames']} attempt(s), "
               f"removed {swept} leftover upload(s)")


@click.command("deliver-webhooks")
@with_appcontext
def deliver_webhooks() -> None:
    """Send every webhook delivery that is due now (the app also does this in the background)."""
    click.echo(f"tried {services().dispatcher.deliver_due()} delivery(ies)")


@click.command("sandbox-ids")
def sandbox_ids() -> None:
    """List the sandbox's test ID numbers and the outcome each one rehearses."""
    from .juhe.sandbox import TEST_IDS
    for idcard, outcome in TEST_IDS:
        click.echo(f"{idcard}  {outcome}")
