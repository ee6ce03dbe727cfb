"""Add the desk's accounts, sessions, failed logins and activity list

- ``desk_users``: name, role (editor, ops or admin) and an Argon2 hash;
- ``desk_sessions``: the SHA-256 of each logged-in browser's random id,
  removed with its user (cascade);
- ``desk_login_failures``: keyed hashes of the account name and the client
  network of each failed login, which the login limits count;
- ``desk_activity``: who did what and when; the name stays after the
  account is removed.

The roles are spelled out here, not imported: a migration describes the
schema as it was when it ran.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROLES = ("editor", "ops", "admin")


def upgrade() -> None:
    listed = ", ".join(f"'{role}'" for role in ROLES)
    op.create_table(
        "desk_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(f"role IN ({listed})", name="ck_desk_users_role"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "desk_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("desk_users.id", ondelete="CASCADE", name="fk_desk_sessions_user_id"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("id_hash"),
    )
    op.create_index("ix_desk_sessions_user_id", "desk_sessions", ["user_id"])
    op.create_table(
        "desk_login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("account_hash", sa.String(length=64), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_desk_login_failures_at", "desk_login_failures", ["at"])
    op.create_index(
        "ix_desk_login_failures_account_hash", "desk_login_failures", ["account_hash"]
    )
    op.create_index("ix_desk_login_failures_client_hash", "desk_login_failures", ["client_hash"])
    op.create_table(
        "desk_activity",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("desk_users.id", ondelete="SET NULL", name="fk_desk_activity_user_id"),
            nullable=True,
        ),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_desk_activity_at", "desk_activity", ["at"])
    op.create_index("ix_desk_activity_user_id", "desk_activity", ["user_id"])


def downgrade() -> None:
    op.drop_table("desk_activity")
    op.drop_table("desk_login_failures")
    op.drop_table("desk_sessions")
    op.drop_table("desk_users")
