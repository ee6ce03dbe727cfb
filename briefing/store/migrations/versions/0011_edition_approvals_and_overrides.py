"""Store editors' approvals of an issue and their per-issue overrides

An approval (briefing, issue date, who, when) lets dispatch go for a briefing
whose ``approval`` is ``required`` and freezes the issue's overrides. An
override pins, drops, re-words, re-sources or adds one article for one issue;
it is undone by stamping who undid it and when, never deleted.

Revision ID: 0011
Revises: 0010 (the integrator rechains it)
Create Date: 2026-12-06 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import briefing.store.schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

KINDS = ("pin", "drop", "headline", "summary", "source", "add")


def upgrade() -> None:
    op.create_table(
        "edition_approvals",
        sa.Column("briefing", sa.String(100), primary_key=True),
        sa.Column("issue_date", sa.Date(), primary_key=True),
        sa.Column("approved_by", sa.String(200), nullable=False),
        sa.Column("approved_at", briefing.store.schema.UTCDateTime(), nullable=False),
    )
    listed = ", ".join(f"'{kind}'" for kind in KINDS)
    op.create_table(
        "edition_overrides",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("briefing", sa.String(100), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column(
            "article_id",
            sa.Integer(),
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", briefing.store.schema.UTCDateTime(), nullable=False),
        sa.Column("undone_by", sa.String(200), nullable=True),
        sa.Column("undone_at", briefing.store.schema.UTCDateTime(), nullable=True),
        sa.CheckConstraint(f"kind IN ({listed})", name="ck_edition_overrides_kind"),
    )
    op.create_index(
        "ix_edition_overrides_issue", "edition_overrides", ["briefing", "issue_date"]
    )


def downgrade() -> None:
    op.drop_index("ix_edition_overrides_issue", table_name="edition_overrides")
    op.drop_table("edition_overrides")
    op.drop_table("edition_approvals")
