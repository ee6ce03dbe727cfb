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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from briefing.audience.imports import COLUMNS
from briefing.domain.addresses import address_hash
from briefing.store.schema import (
    Confirmation,
    Edition,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    Suppression,
)


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
    session: Session, *, briefing: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Return every subscription (optionally of one briefing or status), by address."""
    query = select(Subscription, Subscriber).join(
        Subscriber, Subscriber.id == Subscription.subscriber_id
    )
    if briefing:
        query = query.where(Subscription.briefing == briefing)
    if status:
        query = query.where(Subscription.status == status)
    rows = session.execute(query.order_by(Subscriber.email, Subscription.briefing)).all()
    return [subscription_record(subscription, subscriber) for subscription, subscriber in rows]


def describe_subscriber(session: Session, email: str) -> dict[str, Any] | None:
    """Return everything stored about one address, or None if nothing is."""
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    suppressions = [
        {
            "briefing": row.briefing,
            "reason": row.reason,
            "source": row.source,
            "since": _time(row.created_at),
        }
        for row in session.scalars(
            select(Suppression)
            .where(Suppression.email_hash == address_hash(email))
            .order_by(Suppression.id)
        )
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
            for event in session.scalars(
                select(SubscriptionEvent)
                .where(SubscriptionEvent.subscription_id == subscription.id)
                .order_by(SubscriptionEvent.id)
            )
        ]
        record["confirmations"] = [
            {
                "sent_at": _time(row.created_at),
                "expires_at": _time(row.expires_at),
                "confirmed_at": _time(row.confirmed_at),
                "source": row.source,
            }
            for row in session.scalars(
                select(Confirmation)
                .where(Confirmation.subscription_id == subscription.id)
                .order_by(Confirmation.id)
            )
        ]
        record["editions"] = session.scalar(
            select(func.count())
            .select_from(Edition)
            .where(
                Edition.subscriber_id == subscriber.id, Edition.briefing == subscription.briefing
            )
        )
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
    for record in list_subscriptions(session, briefing=briefing, status="active"):
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
