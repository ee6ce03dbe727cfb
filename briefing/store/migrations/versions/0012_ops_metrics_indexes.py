"""Index editions by send time and by briefing and creation time, deliveries by edition and state

`/metrics` and `briefing status` count the deliveries of recent editions (send
times in a bounded window) by state and read when each briefing last
dispatched; these indexes let both queries read only the index entries of the
rows they report on (the delivery's state is in the index, so its row is not
read), however long the ledger's history.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_editions_scheduled_briefing", "editions", ["scheduled_at", "briefing", "id"]
    )
    op.create_index("ix_editions_briefing_created", "editions", ["briefing", "created_at"])
    op.create_index("ix_deliveries_edition_status", "deliveries", ["edition_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_edition_status", table_name="deliveries")
    op.drop_index("ix_editions_briefing_created", table_name="editions")
    op.drop_index("ix_editions_scheduled_briefing", table_name="editions")
