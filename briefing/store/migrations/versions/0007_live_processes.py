"""Add the table of live processes: serve, deliver workers and web, with heartbeats

Each long-running process registers a row at start (kind, host, pid, a
little detail), renews ``heartbeat_at`` by the database's clock every few
seconds and deletes its row at a clean exit. Delivery leases need no new
column: ``deliveries.lease_until`` and ``heartbeat_at`` are now set by the
database's clock.

The kinds are spelled out here, not imported: a migration describes the
schema as it was when it ran.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PROCESS_KINDS = ("serve", "deliver", "web")


def upgrade() -> None:
    listed = ", ".join(f"'{kind}'" for kind in PROCESS_KINDS)
    op.create_table(
        "live_processes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint(f"kind IN ({listed})", name="ck_live_processes_kind"),
    )
    op.create_index(
        "ix_live_processes_kind_heartbeat", "live_processes", ["kind", "heartbeat_at"]
    )


def downgrade() -> None:
    op.drop_table("live_processes")
