"""Change a subscription's lifecycle: sign up, confirm, unsubscribe, set preferences, remove.

    pending -> active -> unsubscribed | bounced | complained

Every status change is recorded as a subscription event with its time and
source. Leaving puts the address on the suppression list; nothing but a fresh
confirmed opt-in (:func:`confirm`) takes it off again, and only for the
briefing confirmed. The web endpoints and the CLI both call these functions;
each runs inside the caller's transaction and never sends mail itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from briefing.audience.imports import ENDED, create_subscription
from briefing.config import Config
from briefing.domain.addresses import ALL_BRIEFINGS, address_hash
from briefing.errors import BriefingError
from briefing.store.schema import (
    Confirmation,
    Delivery,
    DeliveryAttempt,
    Edition,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    Suppression,
)
from briefing.store.suppressions import suppress, suppression_for


@dataclass(frozen=True)
class Preferences:
    """What a subscriber chooses for one briefing: sections, send time, timezone, frequency."""

    sections: tuple[str, ...] | None
    timezone: str
    send_time: str
    frequency: str

    @classmethod
    def of(cls, subscription: Subscription) -> Preferences:
        """Return a subscription's current preferences."""
        sections = tuple(subscription.sections) if subscription.sections else None
        return cls(sections, subscription.timezone, subscription.send_time, subscription.frequency)

    def columns(self) -> dict[str, Any]:
        """Return the preferences as the subscription's column values."""
        return {
            "sections": list(self.sections) if self.sections else None,
            "timezone": self.timezone,
            "send_time": self.send_time,
            "frequency": self.frequency,
        }

    @classmethod
    def defaults(cls, config: Config, briefing: str) -> Preferences:
        """Return a briefing's defaults for a new subscription."""
        settings = config.briefings[briefing]
        return cls(
            None, settings.timezone, settings.send_time.strftime("%H:%M"), settings.frequency
        )


def change_status(
    session: Session,
    subscription: Subscription,
    status: str,
    *,
    source: str,
    now: datetime,
    detail: str | None = None,
) -> None:
    """Move a subscription to ``status`` and record the event with its time and source."""
    session.add(
        SubscriptionEvent(
            subscription_id=subscription.id,
            at=now,
            status_from=subscription.status,
            status_to=status,
            source=source,
            detail=detail,
        )
    )
    subscription.status = status
    subscription.status_changed_at = now
    subscription.status_source = source
    subscription.updated_at = now


def unsubscribe(
    session: Session, subscription: Subscription, *, source: str, now: datetime
) -> bool:
    """End a subscription and suppress its address for that briefing; tell whether it changed.

    Repeating it is harmless: an ended subscription keeps its status and its
    suppression entry, and no second event is recorded.
    """
    email = subscription.subscriber.email
    suppress(
        session,
        email,
        reason="unsubscribed",
        source=source,
        now=now,
        briefing=subscription.briefing,
    )
    if subscription.status in ENDED:
        return False
    change_status(session, subscription, "unsubscribed", source=source, now=now)
    return True


def leave_all(session: Session, subscriber: Subscriber, *, source: str, now: datetime) -> int:
    """End every subscription of a subscriber and suppress the address for all briefings."""
    changed = sum(
        unsubscribe(session, subscription, source=source, now=now)
        for subscription in subscriber.subscriptions
    )
    suppress(session, subscriber.email, reason="unsubscribed", source=source, now=now)
    return changed


def set_preferences(
    session: Session, subscription: Subscription, preferences: Preferences, *, now: datetime
) -> bool:
    """Save a subscriber's own choices; a list import never overwrites them afterwards."""
    wanted = preferences.columns()
    changed = any(getattr(subscription, key) != value for key, value in wanted.items())
    for key, value in wanted.items():
        setattr(subscription, key, value)
    subscription.preferences_set_at = now
    subscription.updated_at = now
    return changed


SignupKind = Literal["confirmation", "active"]


@dataclass(frozen=True)
class Signup:
    """What a sign-up did: a confirmation to send, or nothing (already active)."""

    kind: SignupKind
    email: str
    briefing: str
    subscription_id: int
    confirmation_id: int | None
    expires_at: datetime | None
    suppressed: str | None


def start_signup(
    session: Session,
    config: Config,
    *,
    email: str,
    briefing: str,
    source: str,
    now: datetime,
    name: str | None = None,
    preferences: Preferences | None = None,
) -> Signup:
    """Record a sign-up as pending and create its confirmation; an active one needs none.

    The subscription stays as it is (pending, or ended and suppressed) until
    the address confirms. A name given now is kept on the confirmation and
    only applied once the owner of the address confirms it.
    """
    config.briefing(briefing)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        subscriber = Subscriber(email=email, name=None, created_at=now)
        session.add(subscriber)
        session.flush()
    subscription = session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber.id, Subscription.briefing == briefing
        )
    )
    if subscription is None:
        chosen = preferences or Preferences.defaults(config, briefing)
        subscription = create_subscription(
            session,
            subscriber.id,
            briefing,
            chosen.columns(),
            status="pending",
            source=source,
            now=now,
        )
    hit = suppression_for(session, email, briefing)
    if subscription.status == "active" and hit is None:
        return Signup("active", email, briefing, subscription.id, None, None, None)
    confirmation = Confirmation(
        subscription_id=subscription.id,
        source=source,
        name=name,
        created_at=now,
        expires_at=now + config.web.confirm_within,
    )
    session.add(confirmation)
    session.flush()
    return Signup(
        "confirmation",
        email,
        briefing,
        subscription.id,
        confirmation.id,
        confirmation.expires_at,
        hit.reason if hit is not None else None,
    )


ConfirmOutcome = Literal["confirmed", "already", "expired", "unknown"]


@dataclass(frozen=True)
class Confirmed:
    """What following a confirmation link did."""

    outcome: ConfirmOutcome
    briefing: str | None = None
    subscription_id: int | None = None


def _lift_suppression(session: Session, config: Config, email: str, briefing: str) -> None:
    """Take ``email`` off the suppression list for ``briefing`` only.

    An entry for every briefing is replaced by one per *other* configured
    briefing, so confirming one briefing brings back no other.
    """
    digest = address_hash(email)
    rows = list(session.scalars(select(Suppression).where(Suppression.email_hash == digest)))
    for row in rows:
        if row.briefing == ALL_BRIEFINGS:
            for other in config.briefings:
                if other != briefing and not any(r.briefing == other for r in rows):
                    suppress(
                        session,
                        email,
                        reason=row.reason,
                        source=row.source,
                        now=row.created_at,
                        briefing=other,
                    )
        if row.briefing in (briefing, ALL_BRIEFINGS):
            session.delete(row)


def confirm(session: Session, config: Config, confirmation_id: int, now: datetime) -> Confirmed:
    """Activate the subscription a confirmation link names, unless it expired or was used."""
    confirmation = session.get(Confirmation, confirmation_id)
    if confirmation is None:
        return Confirmed("unknown")
    subscription = session.get(Subscription, confirmation.subscription_id)
    assert subscription is not None  # the foreign key cascades deletes
    found = Confirmed("already", subscription.briefing, subscription.id)
    if confirmation.confirmed_at is not None:
        return found
    if now > confirmation.expires_at:
        return Confirmed("expired", subscription.briefing, subscription.id)
    subscriber = subscription.subscriber
    if (
        subscription.status == "active"
        and suppression_for(session, subscriber.email, subscription.briefing) is None
    ):
        confirmation.confirmed_at = now
        return found
    source = f"confirmed:{confirmation.source}"
    if subscription.status != "active":
        change_status(
            session,
            subscription,
            "active",
            source=source,
            now=now,
            detail=f"confirmation {confirmation.id}",
        )
    subscription.consent_source = f"double opt-in ({confirmation.source})"
    subscription.consent_at = now
    _lift_suppression(session, config, subscriber.email, subscription.briefing)
    if confirmation.name and not subscriber.name:
        subscriber.name = confirmation.name
    confirmation.confirmed_at = now
    return Confirmed("confirmed", subscription.briefing, subscription.id)


@dataclass(frozen=True)
class Removal:
    """What removing a subscriber deleted and kept."""

    email: str
    subscriptions: int
    suppressions: int


def _scrub(text_column: object, email: str) -> object:
    return func.replace(text_column, email, "[removed address]")


def remove_subscriber(session: Session, email: str, *, source: str, now: datetime) -> Removal:
    """Delete a subscriber's personal data, keeping (or adding) the hashed suppression entry.

    The subscriber row, their subscriptions and pending confirmations go; their
    editions and ledger rows stay for the send history with the address
    scrubbed from transport replies; the suppression list keeps only the
    address's hash, so the address is never mailed or imported again.
    """
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    digest = address_hash(email)
    if subscriber is None:
        raise BriefingError(
            f"{email} is not a subscriber",
            hint="`briefing subscribers list` shows who is; addresses are matched normalised",
        )
    count = len(subscriber.subscriptions)
    suppress(session, email, reason="removed", source=source, now=now)
    edition_ids = select(Edition.id).where(Edition.subscriber_id == subscriber.id)
    delivery_ids = select(Delivery.id).where(Delivery.edition_id.in_(edition_ids))
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids))
        .values(
            reason=_scrub(Delivery.reason, email), last_reply=_scrub(Delivery.last_reply, email)
        )
    )
    session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
        .values(reply=_scrub(DeliveryAttempt.reply, email))
    )
    session.delete(subscriber)
    session.flush()
    session.execute(update(Suppression).where(Suppression.email_hash == digest).values(email=None))
    kept = session.scalar(
        select(func.count()).select_from(Suppression).where(Suppression.email_hash == digest)
    )
    return Removal(email, count, kept or 0)
