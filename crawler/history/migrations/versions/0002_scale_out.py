"""Scale-out: ``claims`` (idempotent enqueue per site and period) and ``site_leases`` (the
per-site lock on SQLite; PostgreSQL uses an advisory lock instead).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.Text, nullable=False),
        sa.Column("claimed_by", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.PrimaryKeyConstraint("site", "period"),
    )
    op.create_table(
        "site_leases",
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("owner_host", sa.Text, nullable=False),
        sa.Column("owner_pid", sa.Integer, nullable=False),
        sa.Column("owner_token", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("acquired_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )


def downgrade() -> None:
    op.drop_table("site_leases")
    op.drop_table("claims")
