"""Find a delivery by its Message-ID without a scan; remember the webhook tokens already used

An index on ``deliveries.message_id``: a report that names our Message-ID
(a DSN, an SES or Mailgun event) is tied to its delivery by it.

``webhook_tokens`` holds a hash of each signed token a provider webhook
carried (Mailgun's ``signature.token``), so a captured request replayed within
the timestamp window is refused, across processes; rows older than the
window are pruned as new ones arrive.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
    op.create_table(
        "webhook_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("provider", "token_hash", name="uq_webhook_tokens_provider_token"),
    )
    op.create_index("ix_webhook_tokens_seen_at", "webhook_tokens", ["seen_at"])


def downgrade() -> None:
    op.drop_table("webhook_tokens")
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
