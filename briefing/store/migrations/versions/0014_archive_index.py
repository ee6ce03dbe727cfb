"""Index variants by briefing and issue date, for the archive

The desk's archive and the public archive page a briefing's issue dates
newest first and read the variants of a page's dates; this index lets both
read only the entries of that briefing's dates, however long its history.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_variants_briefing_issue_date", "variants", ["briefing", "issue_date"])


def downgrade() -> None:
    op.drop_index("ix_variants_briefing_issue_date", table_name="variants")
