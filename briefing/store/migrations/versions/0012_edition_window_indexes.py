"""Index editions by issue date and by briefing and creation time, for the ops metrics

`/metrics` and `briefing status` count the deliveries of recent editions (issue
dates in a bounded window) and read when each briefing last dispatched; these
two indexes let both queries read only the rows they report on, however long
the ledger's history.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_editions_issue_date_briefing", "editions", ["issue_date", "briefing"])
    op.create_index("ix_editions_briefing_created", "editions", ["briefing", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_editions_briefing_created", table_name="editions")
    op.drop_index("ix_editions_issue_date_briefing", table_name="editions")
