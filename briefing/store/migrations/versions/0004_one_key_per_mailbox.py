"""Key subscribers and suppressions by mailbox: merge the spellings of one address

A mailbox's key is the whole address lower-cased with its domain in IDNA
ASCII form. Subscribers whose addresses share a key are merged into the
earliest one: its subscriptions and their history are kept, the others'
subscriptions move to it, and where both had the same briefing the earlier
subscription is kept with every event of both. The merged state is the most
restrictive one (complained, bounced, unsubscribed before active, active
before pending), so a merge never brings back anyone who left; each merge is
recorded as a subscription event with source ``merge``. Suppression entries
that still hold their address are re-hashed by key.

The key rule and the states are spelled out here, not imported: a migration
describes the schema and its rules as they were when it ran.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Most restrictive first: the merged subscription takes the first state either had.
RESTRICTIVE = ("complained", "bounced", "unsubscribed", "active", "pending")

EVENTS = sa.table(
    "subscription_events",
    sa.column("subscription_id", sa.Integer),
    sa.column("at", sa.DateTime),
    sa.column("status_from", sa.String),
    sa.column("status_to", sa.String),
    sa.column("source", sa.String),
    sa.column("detail", sa.String),
)


def mailbox_key(address: str) -> str:
    try:
        valid = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError:
        return address.strip().lower()
    return f"{(valid.local_part or '').lower()}@{valid.ascii_domain}"


def _record(connection: sa.Connection, subscription: Any, to: str, detail: str) -> None:
    connection.execute(
        EVENTS.insert().values(
            subscription_id=subscription.id,
            at=datetime.now(UTC).replace(tzinfo=None),
            status_from=subscription.status,
            status_to=to,
            source="merge",
            detail=detail[:500],
        )
    )


def _merge_subscriptions(
    connection: sa.Connection, survivor_id: int, kept: Any, gone: Any, merged_email: str
) -> None:
    """Fold subscription ``gone`` into ``kept`` (the earlier one), both of one briefing."""
    for table in ("subscription_events", "confirmations"):
        connection.execute(
            sa.text(f"UPDATE {table} SET subscription_id = :kept WHERE subscription_id = :gone"),
            {"kept": kept.id, "gone": gone.id},
        )
    connection.execute(
        sa.text("UPDATE editions SET subscription_id = :kept WHERE subscription_id = :gone"),
        {"kept": kept.id, "gone": gone.id},
    )
    connection.execute(sa.text("DELETE FROM subscriptions WHERE id = :gone"), {"gone": gone.id})
    state = min(kept.status, gone.status, key=RESTRICTIVE.index)
    values: dict[str, Any] = {"id": kept.id, "survivor": survivor_id}
    assignments = ["subscriber_id = :survivor"]
    if state != kept.status:
        source = gone if state == gone.status else kept
        values |= {
            "status": state,
            "changed": source.status_changed_at,
            "source": "merge",
            "consent_source": source.consent_source,
            "consent_at": source.consent_at,
        }
        assignments += [
            "status = :status",
            "status_changed_at = :changed",
            "status_source = :source",
            "consent_source = :consent_source",
            "consent_at = :consent_at",
        ]
    connection.execute(
        sa.text(f"UPDATE subscriptions SET {', '.join(assignments)} WHERE id = :id"), values
    )
    _record(
        connection,
        kept,
        state,
        f"merged subscription {gone.id} ({gone.status}) of {merged_email}, the same mailbox",
    )


def _merge_subscriber(connection: sa.Connection, survivor: Any, other: Any) -> None:
    """Move everything of subscriber ``other`` to ``survivor`` and delete ``other``."""
    subscriptions = sa.text(
        "SELECT id, subscriber_id, briefing, status, status_changed_at, consent_source, "
        "consent_at, created_at FROM subscriptions WHERE subscriber_id = :id ORDER BY id"
    )
    mine = {row.briefing: row for row in connection.execute(subscriptions, {"id": survivor.id})}
    for theirs in connection.execute(subscriptions, {"id": other.id}).all():
        ours = mine.get(theirs.briefing)
        if ours is None:
            connection.execute(
                sa.text("UPDATE subscriptions SET subscriber_id = :survivor WHERE id = :id"),
                {"survivor": survivor.id, "id": theirs.id},
            )
            _record(connection, theirs, theirs.status, f"moved from {other.email}, the same mailbox")
            continue
        kept, gone = sorted((ours, theirs), key=lambda row: (str(row.created_at), row.id))
        _merge_subscriptions(connection, survivor.id, kept, gone, other.email)
    connection.execute(
        sa.text(
            "UPDATE editions SET subscriber_id = :survivor WHERE subscriber_id = :other "
            "AND NOT EXISTS (SELECT 1 FROM editions AS mine WHERE mine.subscriber_id = :survivor "
            "AND mine.briefing = editions.briefing AND mine.issue_date = editions.issue_date)"
        ),
        {"survivor": survivor.id, "other": other.id},
    )
    connection.execute(
        sa.text("UPDATE editions SET subscriber_id = NULL WHERE subscriber_id = :other"),
        {"other": other.id},
    )
    if other.name and not survivor.name:
        connection.execute(
            sa.text("UPDATE subscribers SET name = :name WHERE id = :id"),
            {"name": other.name, "id": survivor.id},
        )
    connection.execute(sa.text("DELETE FROM subscribers WHERE id = :id"), {"id": other.id})


def _rehash_suppressions(connection: sa.Connection) -> None:
    rows = connection.execute(
        sa.text(
            "SELECT id, email_hash, email, briefing FROM suppressions "
            "WHERE email IS NOT NULL ORDER BY created_at, id"
        )
    ).all()
    taken = {
        (row.email_hash, row.briefing)
        for row in connection.execute(sa.text("SELECT email_hash, briefing FROM suppressions"))
    }
    for row in rows:
        key = mailbox_key(row.email)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        if digest == row.email_hash and key == row.email:
            continue
        if digest != row.email_hash and (digest, row.briefing) in taken:
            connection.execute(sa.text("DELETE FROM suppressions WHERE id = :id"), {"id": row.id})
            continue
        taken.add((digest, row.briefing))
        connection.execute(
            sa.text("UPDATE suppressions SET email_hash = :digest, email = :key WHERE id = :id"),
            {"digest": digest, "key": key, "id": row.id},
        )


def upgrade() -> None:
    connection = op.get_bind()
    subscribers = connection.execute(
        sa.text("SELECT id, email, name, created_at FROM subscribers ORDER BY created_at, id")
    ).all()
    by_key: dict[str, list[Any]] = defaultdict(list)
    for row in subscribers:
        by_key[mailbox_key(row.email)].append(row)
    for rows in by_key.values():
        survivor, *others = rows
        for other in others:
            _merge_subscriber(connection, survivor, other)
    for key, rows in by_key.items():
        if rows[0].email != key:
            connection.execute(
                sa.text("UPDATE subscribers SET email = :key WHERE id = :id"),
                {"key": key, "id": rows[0].id},
            )
    _rehash_suppressions(connection)


def downgrade() -> None:
    # Merged subscribers cannot be split again; the keyed addresses stay valid addresses.
    pass
