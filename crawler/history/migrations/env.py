"""Alembic environment of the history (run by ``crawler.history.migrate``, never by hand
with an ini file: the store hands over its connection, already inside the transaction that
holds the migration lock). SQLite gets batch mode (``render_as_batch``): a change to a
column is made by copying the table, which SQLite's ALTER TABLE cannot do itself."""

from __future__ import annotations

from alembic import context

from crawler.history.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("crawler.history.migrate runs these migrations with a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
