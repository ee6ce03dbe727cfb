"""Test sends: an edition mailed to an editor, with inert links, on the ledger

``test_sends`` holds one test send of an edition (``briefing edition
test-send`` or the desk's preview page): the briefing and issue, what was
previewed (a subscriber or a set of sections), who asked, where it goes and
the complete message, composed with inert links and a ``[TEST]`` subject when
it was asked for, so the mail is what the editor saw. Its mail is a ledger row
of kind ``test`` (a kind the ledger has allowed since 0003, with no target
until now), deleted with its test send.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import briefing.store.schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OLD_TARGET = (
    "(kind <> 'digest' OR edition_id IS NOT NULL) AND "
    "(kind <> 'confirmation' OR confirmation_id IS NOT NULL) AND "
    "(kind <> 'account' OR request_id IS NOT NULL)"
)


def upgrade() -> None:
    op.create_table(
        "test_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("briefing", sa.String(length=100), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("shown_as", sa.String(length=400), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", briefing.store.schema.UTCDateTime(), nullable=False),
        sa.Column("expires_at", briefing.store.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("test_id", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_deliveries_test_id", ["test_id"])
        batch.create_foreign_key(
            "fk_deliveries_test_id", "test_sends", ["test_id"], ["id"], ondelete="CASCADE"
        )
        batch.drop_constraint("ck_deliveries_target", type_="check")
        batch.create_check_constraint(
            "ck_deliveries_target", f"{OLD_TARGET} AND (kind <> 'test' OR test_id IS NOT NULL)"
        )


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE kind = 'test'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_target", type_="check")
        batch.create_check_constraint("ck_deliveries_target", OLD_TARGET)
        batch.drop_constraint("fk_deliveries_test_id", type_="foreignkey")
        batch.drop_constraint("uq_deliveries_test_id", type_="unique")
        batch.drop_column("test_id")
    op.drop_table("test_sends")
