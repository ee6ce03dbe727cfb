"""Index subscriptions by briefing, status and timing, so dispatch reads them by set

Dispatch groups a briefing's active subscriptions by timezone, send time and
frequency (a cohort) and inserts each cohort's editions with one statement;
this index lets each of those statements read only its cohort's rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_subscriptions_cohort",
        "subscriptions",
        ["briefing", "status", "timezone", "send_time", "frequency"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_cohort", table_name="subscriptions")
