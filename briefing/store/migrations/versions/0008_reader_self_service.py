"""Sign up to several briefings with one mail; single-use self-service links

A confirmation may name a *lead* confirmation whose link (one mail) confirms
it too. ``account_requests`` holds the single-use links a reader asks for
from the preferences page (download, delete, change of address in two
steps, undo); their
mail is a ledger row of the new kind ``account``, deleted with its request.

The kinds are spelled out here, not imported: a migration describes the
schema as it was when it ran.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import briefing.store.schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MESSAGE_KINDS = ("digest", "confirmation", "test", "account")
ACCOUNT_ACTIONS = ("export", "delete", "move", "adopt", "undo")
OLD_MESSAGE_KINDS = ("digest", "confirmation", "test")
TARGET = (
    "(kind <> 'digest' OR edition_id IS NOT NULL) AND "
    "(kind <> 'confirmation' OR confirmation_id IS NOT NULL)"
)


def one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


def upgrade() -> None:
    op.create_table(
        "account_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("new_email", sa.String(length=320), nullable=True),
        sa.Column("created_at", briefing.store.schema.UTCDateTime(), nullable=False),
        sa.Column("expires_at", briefing.store.schema.UTCDateTime(), nullable=False),
        sa.Column("used_at", briefing.store.schema.UTCDateTime(), nullable=True),
        sa.CheckConstraint(one_of("action", ACCOUNT_ACTIONS), name="ck_account_requests_action"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account_requests") as batch:
        batch.create_index("ix_account_requests_subscriber_id", ["subscriber_id"])
        batch.create_index("ix_account_requests_expires_at", ["expires_at"])
    with op.batch_alter_table("confirmations") as batch:
        batch.add_column(
            sa.Column(
                "lead_id",
                sa.Integer(),
                nullable=True,
                comment="The confirmation whose link (one mail) confirms this one too: "
                "one sign-up of several briefings.",
            )
        )
        batch.create_foreign_key(
            "fk_confirmations_lead_id", "confirmations", ["lead_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_confirmations_lead_id", ["lead_id"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("request_id", sa.Integer(), nullable=True))
        batch.create_unique_constraint("uq_deliveries_request_id", ["request_id"])
        batch.create_foreign_key(
            "fk_deliveries_request_id",
            "account_requests",
            ["request_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.drop_constraint("ck_deliveries_kind", type_="check")
        batch.drop_constraint("ck_deliveries_target", type_="check")
        batch.create_check_constraint("ck_deliveries_kind", one_of("kind", MESSAGE_KINDS))
        batch.create_check_constraint(
            "ck_deliveries_target",
            f"{TARGET} AND (kind <> 'account' OR request_id IS NOT NULL)",
        )


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE kind = 'account'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_target", type_="check")
        batch.drop_constraint("ck_deliveries_kind", type_="check")
        batch.create_check_constraint("ck_deliveries_kind", one_of("kind", OLD_MESSAGE_KINDS))
        batch.create_check_constraint("ck_deliveries_target", TARGET)
        batch.drop_constraint("fk_deliveries_request_id", type_="foreignkey")
        batch.drop_constraint("uq_deliveries_request_id", type_="unique")
        batch.drop_column("request_id")
    with op.batch_alter_table("confirmations") as batch:
        batch.drop_index("ix_confirmations_lead_id")
        batch.drop_constraint("fk_confirmations_lead_id", type_="foreignkey")
        batch.drop_column("lead_id")
    with op.batch_alter_table("account_requests") as batch:
        batch.drop_index("ix_account_requests_expires_at")
        batch.drop_index("ix_account_requests_subscriber_id")
    op.drop_table("account_requests")
