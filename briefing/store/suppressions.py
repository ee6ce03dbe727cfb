"""Keep the suppression list: addresses (hashed by mailbox key) that must never be mailed again."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from briefing.domain.addresses import ALL_BRIEFINGS, address_hash, address_hashes
from briefing.store.schema import Suppression


def suppression_for(session: Session, address: str, briefing: str) -> Suppression | None:
    """Return the suppression that stops mail of ``briefing`` to ``address``, if any."""
    return session.scalar(
        select(Suppression)
        .where(
            Suppression.email_hash.in_(address_hashes(address)),
            Suppression.briefing.in_((briefing, ALL_BRIEFINGS)),
        )
        .limit(1)
    )


def suppress(
    session: Session,
    address: str,
    *,
    reason: str,
    source: str,
    now: datetime,
    briefing: str = ALL_BRIEFINGS,
) -> Suppression:
    """Put an address on the suppression list (idempotent)."""
    digest = address_hash(address)
    row = session.scalar(
        select(Suppression).where(
            Suppression.email_hash == digest, Suppression.briefing == briefing
        )
    )
    if row is None:
        row = Suppression(
            email_hash=digest,
            email=address,
            briefing=briefing,
            reason=reason,
            source=source,
            created_at=now,
        )
        session.add(row)
    return row


def suppressions_of(session: Session, address: str) -> list[Suppression]:
    """Return every suppression entry of an address (matched by its hash), oldest first."""
    return list(
        session.scalars(
            select(Suppression)
            .where(Suppression.email_hash.in_(address_hashes(address)))
            .order_by(Suppression.id)
        )
    )


def lift(session: Session, entry: Suppression) -> None:
    """Delete one suppression entry (only a confirmed opt-in does this)."""
    session.delete(entry)


def forget_address(session: Session, address: str) -> int:
    """Keep only the hash of an address on the suppression list; return its entries."""
    digests = address_hashes(address)
    session.execute(
        update(Suppression).where(Suppression.email_hash.in_(digests)).values(email=None)
    )
    kept = session.scalar(
        select(func.count()).select_from(Suppression).where(Suppression.email_hash.in_(digests))
    )
    return kept or 0


def suppressions_by_hash(
    session: Session, digests: Collection[str], briefings: Collection[str]
) -> dict[str, list[Suppression]]:
    """Return the suppression entries of these hashes for ``briefings`` (and all), by hash."""
    found: dict[str, list[Suppression]] = {}
    if not digests:
        return found
    rows = session.scalars(
        select(Suppression)
        .where(
            Suppression.email_hash.in_(digests),
            Suppression.briefing.in_({*briefings, ALL_BRIEFINGS}),
        )
        .order_by(Suppression.id)
    )
    for row in rows:
        found.setdefault(row.email_hash, []).append(row)
    return found
