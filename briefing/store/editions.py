"""Store editions and their frozen variants, and answer questions about them.

A variant is inserted once per key (another process may win the race; its
row is used). An edition row and its delivery row are inserted together,
the edition's unique key deciding races, so no edition is dispatched twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from briefing.domain.models import DigestItem
from briefing.domain.states import DeliveryState
from briefing.store.queries import insert_ignore
from briefing.store.schema import Delivery, Edition, Variant, VariantItem


@dataclass(frozen=True)
class NewVariant:
    """A variant's frozen content, ready to be stored."""

    key: str
    briefing: str
    sections: Sequence[str]
    locale: str
    issue_date: date
    since: datetime | None
    cut_at: datetime
    subject: str
    item_count: int
    html_size: int
    notes: Sequence[str]
    html: str
    text: str
    message: bytes
    placeholders: Mapping[str, str]
    items: Sequence[DigestItem]


@dataclass(frozen=True)
class StoredVariant:
    """A variant as it was frozen."""

    id: int
    key: str
    sections: tuple[str, ...]
    cut_at: datetime
    subject: str
    item_count: int
    html_size: int
    notes: tuple[str, ...]
    html: str
    text: str
    message: bytes
    placeholders: dict[str, Any]


def _stored(row: Variant) -> StoredVariant:
    return StoredVariant(
        id=row.id,
        key=row.key,
        sections=tuple(row.sections),
        cut_at=row.cut_at,
        subject=row.subject,
        item_count=row.item_count,
        html_size=row.html_size,
        notes=tuple(row.notes),
        html=row.html,
        text=row.text,
        message=row.message,
        placeholders=dict(row.placeholders),
    )


def freeze_variant(session: Session, variant: NewVariant, now: datetime) -> int:
    """Store a variant frozen; return its id (another process's if it won the race)."""
    inserted = insert_ignore(
        session,
        Variant,
        {
            "key": variant.key,
            "briefing": variant.briefing,
            "sections": list(variant.sections),
            "locale": variant.locale,
            "issue_date": variant.issue_date,
            "since": variant.since,
            "cut_at": variant.cut_at,
            "created_at": now,
            "subject": variant.subject,
            "item_count": variant.item_count,
            "html_size": variant.html_size,
            "notes": list(variant.notes),
            "html": variant.html,
            "text": variant.text,
            "message": variant.message,
            "placeholders": dict(variant.placeholders),
        },
    )
    variant_id = session.scalar(select(Variant.id).where(Variant.key == variant.key))
    assert variant_id is not None
    if inserted:
        session.add_all(
            VariantItem(
                variant_id=variant_id,
                position=position,
                section=item.article.section,
                article_id=item.article.id,
                summary=item.summary,
                related=[link.model_dump(mode="json") for link in item.related],
                also_covered=[link.model_dump(mode="json") for link in item.also_covered],
            )
            for position, item in enumerate(variant.items)
        )
    return variant_id


def find_variant(session: Session, key: str) -> StoredVariant | None:
    """Return the stored variant with ``key``, if it was cut already."""
    row = session.scalar(select(Variant).where(Variant.key == key))
    return _stored(row) if row is not None else None


def variant_of_edition(
    session: Session, briefing: str, subscriber_id: int, issue_date: date
) -> StoredVariant | None:
    """Return the variant a subscriber's edition of ``issue_date`` was cut to, if any."""
    row = session.scalar(
        select(Variant)
        .join(Edition, Edition.variant_id == Variant.id)
        .where(
            Edition.briefing == briefing,
            Edition.subscriber_id == subscriber_id,
            Edition.issue_date == issue_date,
        )
    )
    return _stored(row) if row is not None else None


def existing_editions(
    session: Session, briefing: str, dates: Collection[date]
) -> set[tuple[int, date]]:
    """Return (subscriber id, issue date) of the editions of ``briefing`` on ``dates``."""
    rows = session.execute(
        select(Edition.subscriber_id, Edition.issue_date).where(
            Edition.briefing == briefing, Edition.issue_date.in_(dates)
        )
    )
    return {(subscriber_id, issue_date) for subscriber_id, issue_date in rows if subscriber_id}


def dispatched_dates(session: Session, briefing: str, since: date) -> dict[int, set[date]]:
    """Return each subscriber's issue dates of ``briefing`` from ``since`` on."""
    dispatched: dict[int, set[date]] = {}
    for subscriber_id, issue_date in session.execute(
        select(Edition.subscriber_id, Edition.issue_date).where(
            Edition.briefing == briefing, Edition.issue_date >= since
        )
    ):
        if subscriber_id is not None:
            dispatched.setdefault(subscriber_id, set()).add(issue_date)
    return dispatched


def previous_cuts(
    session: Session, briefing: str, subscriber_ids: Collection[int]
) -> dict[int, datetime]:
    """Return each subscriber's latest cut time of ``briefing`` (subscribers never cut: absent)."""
    rows = session.execute(
        select(Edition.subscriber_id, func.max(Edition.cut_at))
        .where(
            Edition.briefing == briefing,
            Edition.subscriber_id.in_(subscriber_ids),
            Edition.variant_id.is_not(None),
        )
        .group_by(Edition.subscriber_id)
    )
    return {
        subscriber_id: cut
        for subscriber_id, cut in rows
        if subscriber_id is not None and cut is not None
    }


def last_cut_before(
    session: Session, briefing: str, subscriber_id: int, before: datetime
) -> datetime | None:
    """Return a subscriber's latest cut time of ``briefing`` before ``before``."""
    return session.scalar(
        select(func.max(Edition.cut_at)).where(
            Edition.briefing == briefing,
            Edition.subscriber_id == subscriber_id,
            Edition.variant_id.is_not(None),
            Edition.cut_at < before,
        )
    )


@dataclass(frozen=True)
class NewEdition:
    """One edition to put in the ledger, with its delivery's first state."""

    briefing: str
    subscriber_id: int
    subscription_id: int
    issue_date: date
    scheduled_at: datetime
    variant_id: int | None
    cut_at: datetime | None
    status: DeliveryState
    reason: str | None
    message_id: str


def insert_edition(session: Session, edition: NewEdition, now: datetime) -> bool:
    """Insert an edition and its delivery row unless it exists; tell whether it was inserted."""
    inserted = insert_ignore(
        session,
        Edition,
        {
            "briefing": edition.briefing,
            "subscriber_id": edition.subscriber_id,
            "subscription_id": edition.subscription_id,
            "issue_date": edition.issue_date,
            "scheduled_at": edition.scheduled_at,
            "variant_id": edition.variant_id,
            "cut_at": edition.cut_at,
            "created_at": now,
        },
    )
    if not inserted:
        return False
    edition_id = session.scalar(
        select(Edition.id).where(
            Edition.briefing == edition.briefing,
            Edition.subscriber_id == edition.subscriber_id,
            Edition.issue_date == edition.issue_date,
        )
    )
    session.add(
        Delivery(
            edition_id=edition_id,
            status=edition.status,
            reason=edition.reason,
            message_id=edition.message_id,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return True


def delivery_counts(session: Session, briefing: str, since: datetime) -> Counter[DeliveryState]:
    """Count the deliveries of ``briefing``'s editions created from ``since`` on, by state."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Edition.briefing == briefing, Edition.created_at >= since)
        .group_by(Delivery.status)
    )
    return Counter({DeliveryState(status): int(count) for status, count in rows})
