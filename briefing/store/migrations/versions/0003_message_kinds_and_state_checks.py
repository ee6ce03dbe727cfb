"""Put every mail on the ledger and check every state column

Deliveries get a message kind (``digest``, ``confirmation``, ``test``); a
digest row keeps its edition, a confirmation row points at its confirmation
and is deleted with it. Status columns get CHECK constraints listing the
states of the time. On SQLite each table is rebuilt (Alembic batch mode); PostgreSQL alters in place.

The states are spelled out here, not imported: a migration describes the
schema as it was when it ran.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DELIVERY_STATES = (
    "pending",
    "sending",
    "sent",
    "deferred",
    "failed",
    "bounced",
    "complained",
    "skipped",
    "suppressed",
    "expired",
    "cancelled",
)
SUBSCRIPTION_STATES = ("pending", "active", "unsubscribed", "bounced", "complained")
ATTEMPT_OUTCOMES = ("sent", "deferred", "failed", "bounced")
MESSAGE_KINDS = ("digest", "confirmation", "test")


def one_of(column: str, values: tuple[str, ...], *, nullable: bool = False) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    check = f"{column} IN ({listed})"
    return f"{column} IS NULL OR {check}" if nullable else check


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=20), server_default="digest", nullable=False)
        )
        batch.add_column(sa.Column("confirmation_id", sa.Integer(), nullable=True))
        batch.alter_column("edition_id", existing_type=sa.Integer(), nullable=True)
        batch.create_unique_constraint("uq_deliveries_confirmation_id", ["confirmation_id"])
        batch.create_foreign_key(
            "fk_deliveries_confirmation_id",
            "confirmations",
            ["confirmation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_check_constraint("ck_deliveries_status", one_of("status", DELIVERY_STATES))
        batch.create_check_constraint("ck_deliveries_kind", one_of("kind", MESSAGE_KINDS))
        batch.create_check_constraint(
            "ck_deliveries_target",
            "(kind <> 'digest' OR edition_id IS NOT NULL) AND "
            "(kind <> 'confirmation' OR confirmation_id IS NOT NULL)",
        )
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.create_check_constraint(
            "ck_delivery_attempts_outcome", one_of("outcome", ATTEMPT_OUTCOMES)
        )
    with op.batch_alter_table("subscriptions") as batch:
        batch.create_check_constraint(
            "ck_subscriptions_status", one_of("status", SUBSCRIPTION_STATES)
        )
    with op.batch_alter_table("subscription_events") as batch:
        batch.create_check_constraint(
            "ck_subscription_events_status_from",
            one_of("status_from", SUBSCRIPTION_STATES, nullable=True),
        )
        batch.create_check_constraint(
            "ck_subscription_events_status_to", one_of("status_to", SUBSCRIPTION_STATES)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscription_events") as batch:
        batch.drop_constraint("ck_subscription_events_status_to", type_="check")
        batch.drop_constraint("ck_subscription_events_status_from", type_="check")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_constraint("ck_subscriptions_status", type_="check")
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_constraint("ck_delivery_attempts_outcome", type_="check")
    op.execute("DELETE FROM deliveries WHERE kind <> 'digest'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_target", type_="check")
        batch.drop_constraint("ck_deliveries_kind", type_="check")
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.drop_constraint("fk_deliveries_confirmation_id", type_="foreignkey")
        batch.drop_constraint("uq_deliveries_confirmation_id", type_="unique")
        batch.alter_column("edition_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("confirmation_id")
        batch.drop_column("kind")
