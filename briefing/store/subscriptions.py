"""Keep subscribers, their subscriptions and the history of every subscription's state.

A subscription's status only changes through :func:`move_subscription`, which
checks the move against ``SUBSCRIPTION_MOVES`` and records it as a subscription
event with its time and source.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy import insert as plain_insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Session

from briefing.domain.states import SUBSCRIPTION_MOVES, SubscriptionState, allowed
from briefing.errors import StoreError
from briefing.store.bulk import BulkInsert
from briefing.store.schema import (
    Delivery,
    DeliveryAttempt,
    Edition,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)

REMOVED_ADDRESS = "[removed address]"
_SUBSCRIBERS = typing.cast(Table, Subscriber.__table__)
_SUBSCRIPTIONS = typing.cast(Table, Subscription.__table__)
_EVENTS = typing.cast(Table, SubscriptionEvent.__table__)


def subscriber_by_email(session: Session, email: str) -> Subscriber | None:
    """Return the subscriber of this mailbox key (:func:`~briefing.domain.addresses.mailbox_key`)."""
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def add_subscriber(session: Session, email: str, *, name: str | None, now: datetime) -> Subscriber:
    """Create a subscriber row and give it its id."""
    subscriber = Subscriber(email=email, name=name, created_at=now)
    session.add(subscriber)
    session.flush()
    return subscriber


def subscription_by_id(session: Session, ident: int) -> Subscription | None:
    """Return the subscription with this id, if it still exists."""
    return session.get(Subscription, ident)


def subscription_of(session: Session, subscriber_id: int, briefing: str) -> Subscription | None:
    """Return a subscriber's subscription to one briefing, if there is one."""
    return session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber_id, Subscription.briefing == briefing
        )
    )


def _event(
    session: Session,
    subscription: Subscription,
    to: SubscriptionState,
    *,
    source: str,
    now: datetime,
    previous: str | None,
    detail: str | None,
) -> None:
    session.add(
        SubscriptionEvent(
            subscription_id=subscription.id,
            at=now,
            status_from=previous,
            status_to=to,
            source=source,
            detail=detail,
        )
    )


def create_subscription(
    session: Session,
    subscriber_id: int,
    briefing: str,
    preferences: Mapping[str, Any],
    *,
    status: SubscriptionState,
    source: str,
    now: datetime,
    detail: str | None = None,
) -> Subscription:
    """Create a subscription in ``status`` with its consent record and first event.

    ``preferences`` holds ``sections``, ``timezone``, ``send_time`` and ``frequency``.
    """
    subscription = Subscription(
        subscriber_id=subscriber_id,
        briefing=briefing,
        status=status,
        status_changed_at=now,
        status_source=source,
        consent_source=source,
        consent_at=now,
        created_at=now,
        updated_at=now,
        **preferences,
    )
    session.add(subscription)
    session.flush()
    _event(session, subscription, status, source=source, now=now, previous=None, detail=detail)
    return subscription


def move_subscription(
    session: Session,
    subscription: Subscription,
    to: SubscriptionState,
    *,
    source: str,
    now: datetime,
    detail: str | None = None,
) -> None:
    """Move a subscription to ``to`` and record the event with its time and source.

    Raises :class:`StoreError` for a move the subscription lifecycle does not allow.
    """
    current = SubscriptionState(subscription.status)
    if not allowed(SUBSCRIPTION_MOVES, current, to):
        raise StoreError(
            f"subscription {subscription.id} cannot move from {current} to {to}",
            hint="only the moves of the subscription lifecycle are allowed",
        )
    _event(session, subscription, to, source=source, now=now, previous=current, detail=detail)
    subscription.status = to
    subscription.status_changed_at = now
    subscription.status_source = source
    subscription.updated_at = now


def note_subscription(
    session: Session, subscription: Subscription, *, source: str, now: datetime, detail: str
) -> None:
    """Record an event that changes no state (an operator's act on the address) in the history."""
    current = SubscriptionState(subscription.status)
    _event(session, subscription, current, source=source, now=now, previous=current, detail=detail)


def subscriptions_with_subscribers(
    session: Session, *, briefing: str | None = None, status: SubscriptionState | None = None
) -> list[tuple[Subscription, Subscriber]]:
    """Return every subscription (optionally of one briefing or status) with its subscriber."""
    query = select(Subscription, Subscriber).join(
        Subscriber, Subscriber.id == Subscription.subscriber_id
    )
    if briefing:
        query = query.where(Subscription.briefing == briefing)
    if status:
        query = query.where(Subscription.status == status)
    rows = session.execute(query.order_by(Subscriber.email, Subscription.briefing))
    return [(subscription, subscriber) for subscription, subscriber in rows]


def events_of(session: Session, subscription_id: int) -> list[SubscriptionEvent]:
    """Return a subscription's state changes, oldest first."""
    return list(
        session.scalars(
            select(SubscriptionEvent)
            .where(SubscriptionEvent.subscription_id == subscription_id)
            .order_by(SubscriptionEvent.id)
        )
    )


def edition_count(session: Session, subscriber_id: int, briefing: str) -> int:
    """Return how many editions of a briefing were made for a subscriber."""
    count = session.scalar(
        select(func.count())
        .select_from(Edition)
        .where(Edition.subscriber_id == subscriber_id, Edition.briefing == briefing)
    )
    return count or 0


def _scrubbed(text: str | None, email: str) -> str | None:
    # Relays quote an address in any case: replace every spelling of it.
    if text is None:
        return None
    return re.sub(re.escape(email), REMOVED_ADDRESS, text, flags=re.IGNORECASE)


def _scrub(
    session: Session, columns: Sequence[InstrumentedAttribute[str | None]], rows: Any, email: str
) -> None:
    needle = f"%{email.lower()}%"
    entity = columns[0].class_
    query = select(entity).where(
        entity.id.in_(rows), or_(*(func.lower(c).like(needle) for c in columns))
    )
    for row in session.scalars(query):
        for column in columns:
            setattr(row, column.key, _scrubbed(getattr(row, column.key), email))


def erase_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Delete a subscriber with their subscriptions, scrubbing the address from the send history.

    Editions and digest ledger rows stay; the address is replaced in their
    stored transport replies and reasons. Subscriptions, their events and
    confirmations go with the subscriber, and so do the confirmations' ledger
    rows and attempts (their foreign keys cascade).
    """
    email = subscriber.email
    edition_ids = select(Edition.id).where(Edition.subscriber_id == subscriber.id)
    delivery_ids = select(Delivery.id).where(Delivery.edition_id.in_(edition_ids))
    _scrub(session, (Delivery.reason, Delivery.last_reply), delivery_ids, email)
    attempt_ids = select(DeliveryAttempt.id).where(DeliveryAttempt.delivery_id.in_(delivery_ids))
    _scrub(session, (DeliveryAttempt.reply,), attempt_ids, email)
    subscription_ids = select(Subscription.id).where(Subscription.subscriber_id == subscriber.id)
    session.execute(
        delete(SubscriptionEvent).where(SubscriptionEvent.subscription_id.in_(subscription_ids))
    )
    session.delete(subscriber)
    session.flush()


# --- bulk, for list imports ----------------------------------------------------------------
#
# An import applies a chunk of rows in one short transaction with a handful of statements
# (read what exists for the chunk's addresses, insert what is new in bulk), so a list of
# 100,000 never holds the database for long and never costs a round trip per row.


# On SQLite the bulk inserts of an import go to the driver as plain tuples (store/bulk.py):
# SQLAlchemy's per-row work would cost more than SQLite's. PostgreSQL takes them as they are.
_NEW_SUBSCRIBERS = BulkInsert.of(_SUBSCRIBERS, ("email", "name", "created_at"), skip_existing=True)
_NEW_SUBSCRIPTIONS = BulkInsert.of(
    _SUBSCRIPTIONS,
    (
        "subscriber_id",
        "briefing",
        "sections",
        "timezone",
        "send_time",
        "frequency",
        "status",
        "status_changed_at",
        "status_source",
        "consent_source",
        "consent_at",
        "created_at",
        "updated_at",
    ),
)
_NEW_EVENTS = BulkInsert.of(
    _EVENTS, ("subscription_id", "at", "status_from", "status_to", "source", "detail")
)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


@dataclass(frozen=True)
class Person:
    """A subscriber as an import sees it."""

    id: int
    name: str | None


def subscribers_by_email(session: Session, emails: Collection[str]) -> dict[str, Person]:
    """Return the subscribers of these mailbox keys, by key."""
    if not emails:
        return {}
    rows = session.execute(
        select(Subscriber.email, Subscriber.id, Subscriber.name).where(Subscriber.email.in_(emails))
    )
    return {email: Person(ident, name) for email, ident, name in rows}


def add_subscribers(
    session: Session, people: Mapping[str, str | None], now: datetime
) -> dict[str, Person]:
    """Insert subscribers (key -> name) in bulk unless present; return every one of them, by key."""
    if people:
        if _is_sqlite(session):
            stamp = _NEW_SUBSCRIBERS.bound("created_at", now)
            _NEW_SUBSCRIBERS.run(session, ((email, name, stamp) for email, name in people.items()))
        else:
            session.execute(
                postgresql.insert(_SUBSCRIBERS).on_conflict_do_nothing(),
                [{"email": e, "name": name, "created_at": now} for e, name in people.items()],
            )
    return subscribers_by_email(session, list(people))


def name_subscribers(session: Session, names: Mapping[int, str]) -> None:
    """Give subscribers (id -> name) their name in one statement."""
    if names:
        session.execute(
            update(_SUBSCRIBERS).where(_SUBSCRIBERS.c.id == bindparam("ident")),
            [{"ident": ident, "name": name} for ident, name in names.items()],
        )


@dataclass(frozen=True)
class Standing:
    """A subscription as an import compares it with a row."""

    id: int
    status: str
    preferences_set: bool
    preferences: dict[str, Any]


def subscriptions_by_key(
    session: Session, subscriber_ids: Collection[int]
) -> dict[tuple[int, str], Standing]:
    """Return the subscriptions of these subscribers, by (subscriber id, briefing)."""
    if not subscriber_ids:
        return {}
    rows = session.execute(
        select(
            Subscription.subscriber_id,
            Subscription.briefing,
            Subscription.id,
            Subscription.status,
            Subscription.preferences_set_at,
            Subscription.sections,
            Subscription.timezone,
            Subscription.send_time,
            Subscription.frequency,
        ).where(Subscription.subscriber_id.in_(subscriber_ids))
    )
    return {
        (row.subscriber_id, row.briefing): Standing(
            row.id,
            row.status,
            row.preferences_set_at is not None,
            {
                "sections": row.sections,
                "timezone": row.timezone,
                "send_time": row.send_time,
                "frequency": row.frequency,
            },
        )
        for row in rows
    }


@dataclass(frozen=True)
class NewSubscription:
    """A subscription an import creates: who, which briefing, preferences, and its line."""

    subscriber_id: int
    briefing: str
    preferences: Mapping[str, Any]
    detail: str


def _subscription_ids(
    session: Session, subscriber_ids: Collection[int]
) -> dict[tuple[int, str], int]:
    """Return the ids of these subscribers' subscriptions, by (subscriber id, briefing)."""
    rows = session.execute(
        select(Subscription.subscriber_id, Subscription.briefing, Subscription.id).where(
            Subscription.subscriber_id.in_(subscriber_ids)
        )
    )
    return {(subscriber_id, briefing): ident for subscriber_id, briefing, ident in rows}


def create_subscriptions(
    session: Session,
    new: Sequence[NewSubscription],
    *,
    status: SubscriptionState,
    source: str,
    now: datetime,
) -> None:
    """Create subscriptions in bulk, each with its consent record and first event."""
    if not new:
        return
    if _is_sqlite(session):
        _create_subscriptions_sqlite(session, new, status=status, source=source, now=now)
        return
    session.execute(
        plain_insert(_SUBSCRIPTIONS),
        [
            {
                "subscriber_id": item.subscriber_id,
                "briefing": item.briefing,
                "status": status.value,
                "status_changed_at": now,
                "status_source": source,
                "consent_source": source,
                "consent_at": now,
                "created_at": now,
                "updated_at": now,
                **item.preferences,
            }
            for item in new
        ],
    )
    created = _subscription_ids(session, {item.subscriber_id for item in new})
    session.execute(
        plain_insert(_EVENTS),
        [
            {
                "subscription_id": created[(item.subscriber_id, item.briefing)],
                "at": now,
                "status_from": None,
                "status_to": status.value,
                "source": source,
                "detail": item.detail,
            }
            for item in new
        ],
    )


def _create_subscriptions_sqlite(
    session: Session,
    new: Sequence[NewSubscription],
    *,
    status: SubscriptionState,
    source: str,
    now: datetime,
) -> None:
    """Do :func:`create_subscriptions` on SQLite, rows as tuples through the driver."""
    stamp = _NEW_SUBSCRIPTIONS.bound("created_at", now)
    sections = functools.partial(_NEW_SUBSCRIPTIONS.bound, "sections")
    _NEW_SUBSCRIPTIONS.run(
        session,
        (
            (
                item.subscriber_id,
                item.briefing,
                sections(item.preferences["sections"]),
                item.preferences["timezone"],
                item.preferences["send_time"],
                item.preferences["frequency"],
                status.value,
                stamp,
                source,
                source,
                stamp,
                stamp,
                stamp,
            )
            for item in new
        ),
    )
    created = _subscription_ids(session, {item.subscriber_id for item in new})
    _NEW_EVENTS.run(
        session,
        (
            (
                created[(item.subscriber_id, item.briefing)],
                stamp,
                None,
                status.value,
                source,
                item.detail,
            )
            for item in new
        ),
    )
