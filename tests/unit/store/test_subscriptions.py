"""Subscriptions in the store: every status change follows the lifecycle and leaves an event."""

from __future__ import annotations

from datetime import timedelta

import pytest

from briefing.domain.states import SUBSCRIPTION_MOVES, SubscriptionState, allowed
from briefing.errors import StoreError
from briefing.store import Database
from briefing.store.subscriptions import (
    NewSubscription,
    _subscription_ids,
    add_subscriber,
    add_subscribers,
    create_subscription,
    create_subscriptions,
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


def _stored(database: Database, ident: int) -> tuple[object, ...]:
    """Return a subscription, its subscriber and its event as SQLite holds them (text, no ids)."""
    with database.transaction() as session:
        raw = session.connection().exec_driver_sql(
            "SELECT s.email, s.name, s.created_at, b.briefing, b.sections, typeof(b.sections),"
            " b.timezone, b.send_time, b.frequency, b.status, b.status_changed_at,"
            " b.status_source, b.consent_source, b.consent_at, b.preferences_set_at,"
            " b.created_at, b.updated_at, e.at, e.status_from, e.status_to, e.source, e.detail"
            " FROM subscriptions b JOIN subscribers s ON s.id = b.subscriber_id"
            " JOIN subscription_events e ON e.subscription_id = b.id WHERE b.id = ?",
            (ident,),
        )
        return tuple(raw.one())


@pytest.mark.parametrize("sections", [None, ["world", "sport"]])
def test_a_bulk_import_stores_what_one_by_one_creation_stores(
    database: Database, sections: list[str] | None
) -> None:
    # The bulk path binds its values itself on SQLite; the stored text must be the ORM's, or
    # dispatch would split one cohort in two (it groups by the sections' text).
    preferences = {**PREFERENCES, "sections": sections, "timezone": "Europe/Berlin"}
    with database.transaction() as session:
        one = add_subscriber(session, "one@example.com", name="Ana", now=NOW)
        single = create_subscription(
            session,
            one.id,
            "daily",
            preferences,
            status=SubscriptionState.ACTIVE,
            source="import:list.csv",
            now=NOW,
            detail="line 2",
        ).id
        people = add_subscribers(session, {"two@example.com": "Ana"}, NOW)
        new = NewSubscription(people["two@example.com"].id, "daily", preferences, "line 2")
        create_subscriptions(
            session, [new], status=SubscriptionState.ACTIVE, source="import:list.csv", now=NOW
        )
        bulk = _subscription_ids(session, [new.subscriber_id])[(new.subscriber_id, "daily")]
    expected = _stored(database, single)
    assert expected[0] == "one@example.com"
    assert _stored(database, bulk) == ("two@example.com", *expected[1:])


def test_a_bulk_insert_leaves_a_subscriber_already_there_as_it_was(database: Database) -> None:
    with database.transaction() as session:
        add_subscriber(session, "one@example.com", name="Ana", now=NOW)
        people = add_subscribers(
            session, {"one@example.com": "Bob", "two@example.com": None}, NOW + timedelta(days=1)
        )
    assert people["one@example.com"].name == "Ana"
    assert people["two@example.com"].name is None
