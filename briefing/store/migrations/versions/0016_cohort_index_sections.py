"""Put the sections in the cohort index, so dispatch reads one cohort's rows, not its timing's

A cohort is a briefing's active subscriptions with the same timing and the
same sections. The index of 0009 stopped at the timing, so each dispatch
statement read the rows of every section set with that timing and discarded
the others. The sections are JSON, which PostgreSQL cannot order, so the
index holds their text (``''`` where none is stored), as dispatch compares it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TIMING = ["briefing", "status", "timezone", "send_time", "frequency"]


def upgrade() -> None:
    op.drop_index("ix_subscriptions_cohort", table_name="subscriptions")
    op.create_index(
        "ix_subscriptions_cohort",
        "subscriptions",
        [*TIMING, sa.text("coalesce(CAST(sections AS TEXT), '')")],
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_cohort", table_name="subscriptions")
    op.create_index("ix_subscriptions_cohort", "subscriptions", TIMING)
