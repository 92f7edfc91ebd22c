"""Baseline: the schema of sitewatch 0.1.0 (``schema_version`` 6, before Alembic).

Created with the very statements that release ran (``crawler.history.legacy``), so a new
database and one upgraded in place are the same. A SQLite database made by that release is
*stamped* with this revision (``crawler.history.migrate``) instead of running it.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from crawler.history import legacy

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statements in legacy.MIGRATIONS:
        for sql in statements:
            op.execute(legacy.for_dialect(sql, dialect))
    if dialect == "sqlite":
        legacy.mark_alembic(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("the history is never downgraded below its baseline")
