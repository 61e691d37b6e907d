"""Alembic's environment: migrations run on the connection webapp.migrate hands over, inside its
transaction and under its schema lock."""
from alembic import context

from webapp.storage import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
