"""Record the mail that comes back: bounces, complaints, replies and mailed unsubscribes

One row per report and recipient, with the kind, the raw status (``5.1.1``,
a feedback type), where it was read from, the delivery it was tied to and
how (token, Message-ID or address alone), and what it did. The fingerprint
is unique, so the same report read twice is stored once.

The kinds are spelled out here, not imported: a migration describes the
schema as it was when it ran.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BOUNCE_KINDS = ("hard", "soft", "complaint", "auto-reply", "unsubscribe", "other")
BOUNCE_MATCHES = ("token", "message-id", "address")


def one_of(column: str, values: tuple[str, ...], *, nullable: bool = False) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    check = f"{column} IN ({listed})"
    return f"{column} IS NULL OR {check}" if nullable else check


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "delivery_id",
            sa.Integer(),
            sa.ForeignKey("deliveries.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "subscription_id",
            sa.Integer(),
            sa.ForeignKey("subscriptions.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("matched_by", sa.String(length=20), nullable=True),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.UniqueConstraint("fingerprint"),
        sa.CheckConstraint(one_of("kind", BOUNCE_KINDS), name="ck_bounce_events_kind"),
        sa.CheckConstraint(
            one_of("matched_by", BOUNCE_MATCHES, nullable=True),
            name="ck_bounce_events_matched_by",
        ),
    )
    op.create_index("ix_bounce_events_received_at", "bounce_events", ["received_at"])
    op.create_index("ix_bounce_events_email_hash", "bounce_events", ["email_hash"])
    op.create_index("ix_bounce_events_delivery_id", "bounce_events", ["delivery_id"])
    op.create_index("ix_bounce_events_subscription_id", "bounce_events", ["subscription_id"])


def downgrade() -> None:
    op.drop_table("bounce_events")
