"""Editors' decisions (``sitewatch web``): ``decisions`` (acknowledged / not a problem /
snoozed findings, with who, when, why, until when, and their undoing) and ``decision_log``
(append-only audit trail of every action taken in the workspace).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    default = None if nullable else sa.text("''")
    return sa.Column(name, sa.Text, nullable=nullable, server_default=default)


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("check_name", sa.Text, nullable=False),
        sa.Column("page", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        _text("detail"),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        _text("reason"),
        _text("until", nullable=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        _text("revoked_at", nullable=True),
        _text("revoked_by"),
        sa.CheckConstraint("kind IN ('acknowledge', 'dismiss', 'snooze')", name="decisions_kind"),
        sqlite_autoincrement=True,
    )
    op.create_index("decisions_site", "decisions", ["site", "revoked_at"])
    op.create_table(
        "decision_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("decision_id", sa.Integer, nullable=False),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("check_name", sa.Text, nullable=False),
        sa.Column("page", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        _text("reason"),
        _text("until", nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("decision_log_site", "decision_log", ["site", "id"])


def downgrade() -> None:
    op.drop_index("decision_log_site", "decision_log")
    op.drop_table("decision_log")
    op.drop_index("decisions_site", "decisions")
    op.drop_table("decisions")
