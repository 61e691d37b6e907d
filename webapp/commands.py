"""Command-line tools: `flask --app wsgi <command>`."""
from __future__ import annotations

import click
from flask import Flask


def init_app(app: Flask) -> None:
    app.cli.add_command(sandbox_ids)


@click.command("sandbox-ids")
def sandbox_ids() -> None:
    """List the sandbox's test ID numbers and the outcome each one rehearses."""
    from .sandbox import TEST_IDS
    for idcard, outcome in TEST_IDS:
        click.echo(f"{idcard}  {outcome}")
