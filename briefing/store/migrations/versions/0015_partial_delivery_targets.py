"""Index a delivery's confirmation, account request and test send only where it has one

The three unique constraints on ``deliveries`` (one row per confirmation,
account request and test send) indexed every row, a digest's NULLs included:
each claim and each outcome of a digest, an update of an indexed column
(``status``), added an entry to all three on PostgreSQL. Partial unique
indexes (``WHERE ... IS NOT NULL``) keep the same rule and hold only the
rows of their kind.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TARGETS = ("confirmation_id", "request_id", "test_id")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        for column in TARGETS:
            batch.drop_constraint(f"uq_deliveries_{column}", type_="unique")
    for column in TARGETS:
        op.create_index(
            f"uq_deliveries_{column}",
            "deliveries",
            [column],
            unique=True,
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for column in TARGETS:
        op.drop_index(f"uq_deliveries_{column}", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        for column in TARGETS:
            batch.create_unique_constraint(f"uq_deliveries_{column}", [column])
