"""Read the subscriber list back: list, show one subscriber, export as importable CSV.

Export writes exactly the columns the import reads (``subscribers.COLUMNS``)
for active subscriptions only, so exporting and importing the file elsewhere
gives the same subscriptions — an import makes rows active, so a pending or
ended subscription is never exported.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from briefing.audience.imports import COLUMNS
from briefing.domain.states import SubscriptionState
from briefing.store import Session
from briefing.store.schema import Subscriber, Subscription
from briefing.store.signups import confirmations_of
from briefing.store.subscriptions import (
    edition_count,
    events_of,
    subscriber_by_email,
    subscriptions_with_subscribers,
)
from briefing.store.suppressions import suppressions_of


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def subscription_record(subscription: Subscription, subscriber: Subscriber) -> dict[str, Any]:
    """Describe one subscription as plain values (for listing and JSON)."""
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "briefing": subscription.briefing,
        "status": subscription.status,
        "status_changed_at": _time(subscription.status_changed_at),
        "status_source": subscription.status_source,
        "sections": subscription.sections,
        "timezone": subscription.timezone,
        "send_time": subscription.send_time,
        "frequency": subscription.frequency,
        "consent_source": subscription.consent_source,
        "consent_at": _time(subscription.consent_at),
        "preferences_set_at": _time(subscription.preferences_set_at),
    }


def list_subscriptions(
    session: Session,
    *,
    briefing: str | None = None,
    status: SubscriptionState | None = None,
) -> list[dict[str, Any]]:
    """Return every subscription (optionally of one briefing or status), by address."""
    rows = subscriptions_with_subscribers(session, briefing=briefing, status=status)
    return [subscription_record(subscription, subscriber) for subscription, subscriber in rows]


def describe_subscriber(session: Session, email: str) -> dict[str, Any] | None:
    """Return everything stored about one address, or None if nothing is."""
    subscriber = subscriber_by_email(session, email)
    suppressions = [
        {
            "briefing": row.briefing,
            "reason": row.reason,
            "source": row.source,
            "since": _time(row.created_at),
        }
        for row in suppressions_of(session, email)
    ]
    if subscriber is None:
        return (
            {"email": email, "subscriptions": [], "suppressions": suppressions}
            if (suppressions)
            else None
        )
    subscriptions = []
    for subscription in sorted(subscriber.subscriptions, key=lambda s: s.briefing):
        record = subscription_record(subscription, subscriber)
        record["events"] = [
            {
                "at": _time(event.at),
                "from": event.status_from,
                "to": event.status_to,
                "source": event.source,
                "detail": event.detail,
            }
            for event in events_of(session, subscription.id)
        ]
        record["confirmations"] = [
            {
                "sent_at": _time(row.created_at),
                "expires_at": _time(row.expires_at),
                "confirmed_at": _time(row.confirmed_at),
                "source": row.source,
            }
            for row in confirmations_of(session, subscription.id)
        ]
        record["editions"] = edition_count(session, subscriber.id, subscription.briefing)
        subscriptions.append(record)
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "created_at": _time(subscriber.created_at),
        "subscriptions": subscriptions,
        "suppressions": suppressions,
    }


def export_csv(session: Session, *, briefing: str | None = None) -> str:
    """Return the active subscriptions as a CSV file the import reads back unchanged."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in list_subscriptions(session, briefing=briefing, status=SubscriptionState.ACTIVE):
        writer.writerow(
            [
                record["email"],
                record["name"] or "",
                record["briefing"],
                ";".join(record["sections"] or ()),
                record["timezone"],
                record["send_time"],
                record["frequency"],
            ]
        )
    return out.getvalue()
