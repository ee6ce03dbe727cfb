"""Find the subscriptions that get editions: the active ones of a briefing, or one by address."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from briefing.domain.states import SubscriptionState
from briefing.store.schema import Subscriber, Subscription


@dataclass(frozen=True)
class ScheduledSubscription:
    """A subscription with what decides its editions and who gets them."""

    id: int
    subscriber_id: int
    briefing: str
    email: str
    name: str | None
    sections: tuple[str, ...] | None
    timezone: str
    send_time: str
    frequency: str
    created_at: datetime


def _scheduled(subscription: Subscription, person: Subscriber) -> ScheduledSubscription:
    return ScheduledSubscription(
        id=subscription.id,
        subscriber_id=subscription.subscriber_id,
        briefing=subscription.briefing,
        email=person.email,
        name=person.name,
        sections=tuple(subscription.sections) if subscription.sections is not None else None,
        timezone=subscription.timezone,
        send_time=subscription.send_time,
        frequency=subscription.frequency,
        created_at=subscription.created_at,
    )


def active_subscriptions(session: Session, briefing: str) -> list[ScheduledSubscription]:
    """Return the active subscriptions of ``briefing``, oldest first."""
    rows = session.execute(
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.briefing == briefing,
            Subscription.status == SubscriptionState.ACTIVE,
        )
        .order_by(Subscription.id)
    ).all()
    return [_scheduled(subscription, person) for subscription, person in rows]


def active_timings(
    session: Session, briefing: str
) -> Iterator[tuple[int, str, str, str, datetime]]:
    """Yield each active subscription's subscriber id, timezone, send time, frequency, start.

    Only the columns that decide send moments, as plain rows streamed in
    batches: a timetable of a large list holds no subscription objects.
    """
    result = session.execute(
        select(
            Subscription.subscriber_id,
            Subscription.timezone,
            Subscription.send_time,
            Subscription.frequency,
            Subscription.created_at,
        )
        .where(Subscription.briefing == briefing, Subscription.status == SubscriptionState.ACTIVE)
        .execution_options(yield_per=5000)
    )
    yield from result


def subscription_of(session: Session, briefing: str, email: str) -> ScheduledSubscription | None:
    """Return the subscription of a normalised address to ``briefing``, whatever its state."""
    row = session.execute(
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscriber.email == email, Subscription.briefing == briefing)
    ).first()
    return _scheduled(*row) if row is not None else None
