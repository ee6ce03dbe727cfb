"""Subscriptions in the store: every status change follows the lifecycle and leaves an event."""

from __future__ import annotations

from datetime import timedelta

import pytest

from briefing.domain.states import SUBSCRIPTION_MOVES, SubscriptionState, allowed
from briefing.errors import StoreError
from briefing.store import Database
from briefing.store.subscriptions import (
    add_subscriber,
    create_subscription,
    events_of,
    move_subscription,
    subscription_by_id,
)
from tests.support.factories import NOW

PREFERENCES = {"sections": None, "timezone": "UTC", "send_time": "07:00", "frequency": "daily"}


def _pending(database: Database) -> int:
    with database.transaction() as session:
        subscriber = add_subscriber(session, "reader@example.com", name=None, now=NOW)
        subscription = create_subscription(
            session,
            subscriber.id,
            "daily",
            PREFERENCES,
            status=SubscriptionState.PENDING,
            source="test",
            now=NOW,
        )
        return subscription.id


def test_a_move_is_recorded_with_its_source_and_time(database: Database) -> None:
    ident = _pending(database)
    later = NOW + timedelta(hours=1)
    with database.transaction() as session:
        subscription = subscription_by_id(session, ident)
        assert subscription is not None
        move_subscription(
            session, subscription, SubscriptionState.ACTIVE, source="confirm", now=later
        )
    with database.transaction() as session:
        subscription = subscription_by_id(session, ident)
        assert subscription is not None
        assert (subscription.status, subscription.status_source) == ("active", "confirm")
        assert subscription.status_changed_at == later
        moves = [(e.status_from, e.status_to, e.source) for e in events_of(session, ident)]
    assert moves == [(None, "pending", "test"), ("pending", "active", "confirm")]


def test_a_move_the_lifecycle_forbids_is_refused_and_changes_nothing(database: Database) -> None:
    ident = _pending(database)
    with database.transaction() as session:
        subscription = subscription_by_id(session, ident)
        assert subscription is not None
        move_subscription(
            session, subscription, SubscriptionState.UNSUBSCRIBED, source="web", now=NOW
        )
    assert not allowed(
        SUBSCRIPTION_MOVES, SubscriptionState.UNSUBSCRIBED, SubscriptionState.COMPLAINED
    )
    refused = pytest.raises(StoreError, match="cannot move from unsubscribed to complained")
    with refused, database.transaction() as session:
        subscription = subscription_by_id(session, ident)
        assert subscription is not None
        move_subscription(
            session, subscription, SubscriptionState.COMPLAINED, source="report", now=NOW
        )
    with database.transaction() as session:
        subscription = subscription_by_id(session, ident)
        assert subscription is not None and subscription.status == "unsubscribed"
        assert len(events_of(session, ident)) == 2
