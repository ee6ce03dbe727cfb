"""Store the mail that came back (bounce events) and find the rows a report names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from briefing.domain.addresses import address_hash
from briefing.domain.states import DELIVERY_MOVES, BounceKind, BounceMatch, DeliveryState, allowed
from briefing.store.schema import (
    BounceEvent,
    Confirmation,
    Delivery,
    Edition,
    Subscriber,
    Subscription,
)


@dataclass(frozen=True)
class Target:
    """The delivery a report names, and the subscription and address it went to."""

    delivery: Delivery
    subscription: Subscription | None
    email: str | None


def delivery_target(session: Session, delivery_id: int) -> Target | None:
    """Return the delivery ``delivery_id`` with its subscription and address, if it exists."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return None
    subscription_id: int | None = None
    if delivery.edition_id is not None:
        edition = session.get(Edition, delivery.edition_id)
        subscription_id = edition.subscription_id if edition is not None else None
    elif delivery.confirmation_id is not None:
        confirmation = session.get(Confirmation, delivery.confirmation_id)
        subscription_id = confirmation.subscription_id if confirmation is not None else None
    subscription = session.get(Subscription, subscription_id) if subscription_id else None
    email = subscription.subscriber.email if subscription is not None else None
    return Target(delivery, subscription, email)


def delivery_by_message_id(session: Session, message_ids: Sequence[str]) -> int | None:
    """Return the newest delivery sent with one of ``message_ids`` (angle brackets kept)."""
    if not message_ids:
        return None
    return session.scalar(
        select(Delivery.id)
        .where(Delivery.message_id.in_(list(message_ids)))
        .order_by(Delivery.id.desc())
        .limit(1)
    )


def latest_delivery_to(session: Session, email: str) -> int | None:
    """Return the newest digest delivery to ``email`` (a match by address alone)."""
    return session.scalar(
        select(Delivery.id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .join(Subscription, Subscription.id == Edition.subscription_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(func.lower(Subscriber.email) == email.lower())
        .order_by(Delivery.id.desc())
        .limit(1)
    )


def subscriptions_of_address(session: Session, email: str) -> list[Subscription]:
    """Return every subscription of the subscriber with this address."""
    subscriber = session.scalar(
        select(Subscriber).where(func.lower(Subscriber.email) == email.lower())
    )
    return list(subscriber.subscriptions) if subscriber is not None else []


def seen(session: Session, fingerprint: str) -> bool:
    """Tell whether a report with this fingerprint was already recorded."""
    return (
        session.scalar(select(BounceEvent.id).where(BounceEvent.fingerprint == fingerprint))
        is not None
    )


def record(
    session: Session,
    *,
    fingerprint: str,
    now: datetime,
    kind: BounceKind,
    status: str | None,
    source: str,
    email: str | None,
    delivery_id: int | None,
    subscription_id: int | None,
    matched_by: BounceMatch | None,
    action: str,
) -> BounceEvent:
    """Store one event."""
    event = BounceEvent(
        fingerprint=fingerprint,
        received_at=now,
        kind=kind,
        status=status[:40] if status else None,
        source=source[:200],
        email_hash=address_hash(email) if email else None,
        email=email,
        delivery_id=delivery_id,
        subscription_id=subscription_id,
        matched_by=matched_by,
        action=action[:200],
    )
    session.add(event)
    session.flush()
    return event


def counted_soft(session: Session, email: str, since: datetime) -> int:
    """Count the bounces of an address since ``since`` that count toward the soft limit.

    Soft ones and permanent ones that are neither 5.1.x (acted on at once) nor
    5.7.x (policy: never counted), tied by our own token or Message-ID.
    """
    return (
        session.scalar(
            select(func.count())
            .select_from(BounceEvent)
            .where(
                BounceEvent.email_hash == address_hash(email),
                BounceEvent.kind.in_((BounceKind.SOFT, BounceKind.HARD)),
                or_(
                    BounceEvent.status.is_(None),
                    ~BounceEvent.status.startswith("5.7."),
                ),
                BounceEvent.matched_by.in_((BounceMatch.TOKEN, BounceMatch.MESSAGE_ID)),
                BounceEvent.received_at >= since,
            )
        )
        or 0
    )


def move_delivery(session: Session, delivery: Delivery, to: DeliveryState, now: datetime) -> bool:
    """Move a sent delivery to bounced or complained when the ledger's moves allow it."""
    current = DeliveryState(delivery.status)
    if current == to or not allowed(DELIVERY_MOVES, current, to):
        return False
    delivery.status = to
    delivery.updated_at = now
    return True


def recent(
    session: Session,
    limit: int = 50,
    email: str | None = None,
    *,
    offset: int = 0,
    kinds: Sequence[BounceKind] = (),
) -> list[BounceEvent]:
    """Return the newest events (from ``offset`` on), of one address or these kinds when given."""
    query = select(BounceEvent).order_by(BounceEvent.received_at.desc(), BounceEvent.id.desc())
    if email is not None:
        query = query.where(BounceEvent.email_hash == address_hash(email))
    if kinds:
        query = query.where(BounceEvent.kind.in_([kind.value for kind in kinds]))
    return list(session.scalars(query.limit(limit).offset(offset)))


def forget_bounce_address(session: Session, email: str) -> int:
    """Blank the address in an erased subscriber's bounce events (the hash stays); return how many."""
    result = session.execute(
        update(BounceEvent)
        .where(BounceEvent.email_hash == address_hash(email), BounceEvent.email.is_not(None))
        .values(email=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
