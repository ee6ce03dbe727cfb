"""Change a subscription's lifecycle: sign up, confirm, unsubscribe, set preferences, remove.

    pending -> active -> unsubscribed | bounced | complained

Every status change is recorded as a subscription event with its time and
source. Leaving puts the address on the suppression list; nothing but a fresh
confirmed opt-in (:func:`confirm`) takes it off again, and only for the
briefing confirmed. The web endpoints and the CLI both call these functions;
each runs inside the caller's transaction and never sends mail itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from briefing.config import Config
from briefing.domain.addresses import ALL_BRIEFINGS
from briefing.domain.states import ENDED, SubscriptionState, SuppressionReason
from briefing.errors import BriefingError
from briefing.store import Database, Session
from briefing.store.account import Purged, purge_expired
from briefing.store.bounces import forget_bounce_address
from briefing.store.db import Checkpoint
from briefing.store.schema import Subscriber, Subscription
from briefing.store.signups import add_confirmation, confirmation_by_id, members_of
from briefing.store.subscriptions import (
    add_subscriber,
    create_subscription,
    erase_subscriber,
    move_subscription,
    note_subscription,
    subscriber_by_email,
    subscription_by_id,
    subscription_of,
)
from briefing.store.suppressions import (
    forget_address,
    lift,
    suppress,
    suppression_for,
    suppressions_of,
)


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


def unsubscribe(
    session: Session,
    subscription: Subscription,
    *,
    source: str,
    now: datetime,
    detail: str | None = None,
) -> bool:
    """End a subscription and suppress its address for that briefing; tell whether it changed.

    Repeating it is harmless: an ended subscription keeps its status and its
    suppression entry, and no second event is recorded.
    """
    email = subscription.subscriber.email
    suppress(
        session,
        email,
        reason=SuppressionReason.UNSUBSCRIBED,
        source=source,
        now=now,
        briefing=subscription.briefing,
    )
    if subscription.status in ENDED:
        return False
    move_subscription(
        session, subscription, SubscriptionState.UNSUBSCRIBED, source=source, now=now, detail=detail
    )
    return True


def leave_all(session: Session, subscriber: Subscriber, *, source: str, now: datetime) -> int:
    """End every subscription of a subscriber and suppress the address for all briefings."""
    changed = sum(
        unsubscribe(session, subscription, source=source, now=now)
        for subscription in subscriber.subscriptions
    )
    suppress(
        session, subscriber.email, reason=SuppressionReason.UNSUBSCRIBED, source=source, now=now
    )
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


class SignupOutcome(StrEnum):
    """What a sign-up calls for: a confirmation to send, or nothing (already active)."""

    CONFIRMATION = "confirmation"
    ALREADY_ACTIVE = "active"


@dataclass(frozen=True)
class Signup:
    """What a sign-up did: a confirmation to send, or nothing (already active)."""

    kind: SignupOutcome
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
    lead_id: int | None = None,
) -> Signup:
    """Record a sign-up as pending and create its confirmation; an active one needs none.

    The subscription stays as it is (pending, or ended and suppressed) until
    the address confirms. A name given now is kept on the confirmation and
    only applied once the owner of the address confirms it. With ``lead_id``
    the confirmation rides on that one's link (see :func:`start_signups`).
    """
    config.briefing(briefing)
    subscriber = subscriber_by_email(session, email)
    if subscriber is None:
        subscriber = add_subscriber(session, email, name=None, now=now)
    subscription = subscription_of(session, subscriber.id, briefing)
    if subscription is None:
        chosen = preferences or Preferences.defaults(config, briefing)
        subscription = create_subscription(
            session,
            subscriber.id,
            briefing,
            chosen.columns(),
            status=SubscriptionState.PENDING,
            source=source,
            now=now,
        )
    hit = suppression_for(session, email, briefing)
    if subscription.status == SubscriptionState.ACTIVE and hit is None:
        return Signup(
            SignupOutcome.ALREADY_ACTIVE, email, briefing, subscription.id, None, None, None
        )
    confirmation = add_confirmation(
        session,
        subscription.id,
        source=source,
        name=name,
        now=now,
        expires_at=now + config.web.confirm_within,
        lead_id=lead_id,
    )
    return Signup(
        SignupOutcome.CONFIRMATION,
        email,
        briefing,
        subscription.id,
        confirmation.id,
        confirmation.expires_at,
        hit.reason if hit is not None else None,
    )


def start_signups(
    session: Session,
    config: Config,
    *,
    email: str,
    briefings: list[str],
    source: str,
    now: datetime,
    name: str | None = None,
    preferences: dict[str, Preferences] | None = None,
) -> list[Signup]:
    """Sign an address up to several briefings at once; the first confirmation leads.

    Every confirmation after the first names the first as its lead, so one
    mail with one link confirms them all. Briefings already active need none.
    """
    signups: list[Signup] = []
    lead: int | None = None
    for briefing in briefings:
        signup = start_signup(
            session,
            config,
            email=email,
            briefing=briefing,
            source=source,
            now=now,
            name=name,
            preferences=(preferences or {}).get(briefing),
            lead_id=lead,
        )
        if signup.kind == SignupOutcome.CONFIRMATION and lead is None:
            lead = signup.confirmation_id
        signups.append(signup)
    return signups


class ConfirmOutcome(StrEnum):
    """What following a confirmation link did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"  # used before, or the subscription was active and unsuppressed
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # the confirmation (or its subscriber) has been removed


@dataclass(frozen=True)
class Confirmed:
    """What following a confirmation link did."""

    outcome: ConfirmOutcome
    briefing: str | None = None
    subscription_id: int | None = None
    others: tuple[int, ...] = ()  # further subscriptions the same link confirmed


def _lift_suppression(session: Session, config: Config, email: str, briefing: str) -> None:
    """Take ``email`` off the suppression list for ``briefing`` only.

    An entry for every briefing is replaced by one per *other* configured
    briefing, so confirming one briefing brings back no other.
    """
    rows = suppressions_of(session, email)
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
            lift(session, row)


def confirm(session: Session, config: Config, confirmation_id: int, now: datetime) -> Confirmed:
    """Activate the subscriptions a confirmation link names, unless it expired or was used.

    A lead confirmation's link confirms its members too (one sign-up of
    several briefings); the outcome is the lead's own.
    """
    found = _confirm_one(session, config, confirmation_id, now)
    if found.outcome in (ConfirmOutcome.UNKNOWN, ConfirmOutcome.EXPIRED):
        return found
    others = [
        _confirm_one(session, config, member.id, now)
        for member in members_of(session, confirmation_id)
    ]
    return replace(
        found,
        others=tuple(o.subscription_id for o in others if o.subscription_id is not None),
    )


def _confirm_one(
    session: Session, config: Config, confirmation_id: int, now: datetime
) -> Confirmed:
    confirmation = confirmation_by_id(session, confirmation_id)
    if confirmation is None:
        return Confirmed(ConfirmOutcome.UNKNOWN)
    subscription = subscription_by_id(session, confirmation.subscription_id)
    assert subscription is not None  # the foreign key cascades deletes
    found = Confirmed(ConfirmOutcome.ALREADY, subscription.briefing, subscription.id)
    if confirmation.confirmed_at is not None:
        return found
    if now > confirmation.expires_at:
        return Confirmed(ConfirmOutcome.EXPIRED, subscription.briefing, subscription.id)
    subscriber = subscription.subscriber
    if (
        subscription.status == SubscriptionState.ACTIVE
        and suppression_for(session, subscriber.email, subscription.briefing) is None
    ):
        confirmation.confirmed_at = now
        return found
    source = f"confirmed:{confirmation.source}"
    if subscription.status != SubscriptionState.ACTIVE:
        move_subscription(
            session,
            subscription,
            SubscriptionState.ACTIVE,
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
    return Confirmed(ConfirmOutcome.CONFIRMED, subscription.briefing, subscription.id)


@dataclass(frozen=True)
class Removal:
    """What removing a subscriber deleted and kept."""

    email: str
    subscriptions: int
    suppressions: int
    files: tuple[Path, ...] = ()  # outbox messages and previews that named them, deleted
    checkpoint: Checkpoint | None = None  # SQLite: the WAL written back and truncated


def remove_subscriber(session: Session, email: str, *, source: str, now: datetime) -> Removal:
    """Delete a subscriber's personal data, keeping (or adding) the hashed suppression entry.

    The subscriber row, their subscriptions, their history and confirmations
    (with the confirmations' ledger rows) go; their editions and digest ledger
    rows stay for the send history with the address scrubbed from transport
    replies and bounce events (which keep the hash); the suppression list keeps only the address's hash, so the
    address is never mailed or imported again.
    """
    subscriber = subscriber_by_email(session, email)
    if subscriber is None:
        raise BriefingError(
            f"{email} is not a subscriber",
            hint="`briefing subscribers list` shows who is; addresses are matched normalised",
        )
    count = len(subscriber.subscriptions)
    suppress(session, email, reason=SuppressionReason.REMOVED, source=source, now=now)
    erase_subscriber(session, subscriber)
    forget_bounce_address(session, email)
    return Removal(email, count, forget_address(session, email))


PREVIEWS = "var/preview"


def erase_files(config: Config, email: str) -> tuple[Path, ...]:
    """Delete the Maildir outbox messages and the previews that carry ``email``; return them."""
    needle = email.lower().encode("utf-8")
    outbox = config.outbox_path
    folders = [outbox / part for part in ("new", "cur", "tmp")]
    folders.append(config.resolve(PREVIEWS))
    deleted = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            try:
                if path.is_file() and needle in path.read_bytes().lower():
                    path.unlink()
                    deleted.append(path)
            except OSError as exc:
                raise BriefingError(
                    f"cannot erase {path}: {exc.strerror or exc}",
                    hint="delete it by hand: it holds the removed address",
                ) from exc
    return tuple(deleted)


def erase(config: Config, database: Database, email: str, *, source: str, now: datetime) -> Removal:
    """Remove a subscriber everywhere: the database rows, the files, then the SQLite WAL.

    The rows go in one transaction (:func:`remove_subscriber`); then outbox
    messages and previews naming the address are deleted; then the WAL is
    checkpointed and truncated so no earlier copy of a page survives in it
    (retried while other processes hold readers open, and reported if it
    cannot finish). PostgreSQL keeps dead row versions until VACUUM.
    """
    with database.transaction() as session:
        removal = remove_subscriber(session, email, source=source, now=now)
    files = erase_files(config, email)
    return replace(removal, files=files, checkpoint=database.checkpoint())


# --- operator acts: who did it and why are recorded with each -------------------------------

SOURCE_LENGTH = 200  # the suppression list's source column


def operator_source(command: str, by: str, why: str | None = None) -> str:
    """Name an operator's act for the records: ``cli:suppress by ann@host: why``."""
    text = f"cli:{command} by {by}" + (f": {why}" if why else "")
    return text[:SOURCE_LENGTH]


@dataclass(frozen=True)
class OperatorUnsubscribe:
    """What ``subscribers unsubscribe`` did, briefing by briefing."""

    email: str
    ended: tuple[str, ...]  # briefings moved to unsubscribed now
    already: tuple[str, ...]  # briefings that had ended before (kept their status)


def operator_unsubscribe(
    session: Session,
    email: str,
    *,
    briefing: str | None,
    by: str,
    why: str | None,
    now: datetime,
) -> OperatorUnsubscribe:
    """End one subscription of an address (or all), recording who and why; suppress it too."""
    subscriber = subscriber_by_email(session, email)
    if subscriber is None:
        raise BriefingError(
            f"{email} is not a subscriber",
            hint="`briefing subscribers suppress` stops mail to an address that is not one",
        )
    chosen = [s for s in subscriber.subscriptions if briefing is None or s.briefing == briefing]
    if not chosen:
        raise BriefingError(
            f"{email} has no subscription to {briefing}",
            hint=f"`briefing subscribers show {email}` lists theirs",
        )
    source = operator_source("unsubscribe", by)
    ended: list[str] = []
    already: list[str] = []
    for subscription in chosen:
        changed = unsubscribe(session, subscription, source=source, now=now, detail=why)
        (ended if changed else already).append(subscription.briefing)
    if briefing is None:
        suppress(session, email, reason=SuppressionReason.UNSUBSCRIBED, source=source, now=now)
    return OperatorUnsubscribe(email, tuple(ended), tuple(already))


@dataclass(frozen=True)
class OperatorSuppression:
    """What ``subscribers suppress`` found or added."""

    email: str
    added: bool
    reason: str
    source: str
    since: datetime


def operator_suppress(
    session: Session, email: str, *, by: str, why: str | None, now: datetime
) -> OperatorSuppression:
    """Put an address on the suppression list for every briefing, recording who and why.

    Subscriptions keep their status: nothing is sent to the address while it
    is suppressed, and it is not imported again.
    """
    existing = suppression_for(session, email, ALL_BRIEFINGS)
    if existing is not None and existing.briefing == ALL_BRIEFINGS:
        return OperatorSuppression(
            email, False, existing.reason, existing.source, existing.created_at
        )
    source = operator_source("suppress", by, why)
    row = suppress(session, email, reason=SuppressionReason.OPERATOR, source=source, now=now)
    subscriber = subscriber_by_email(session, email)
    for subscription in subscriber.subscriptions if subscriber else []:
        note_subscription(session, subscription, source=source, now=now, detail="suppressed")
    return OperatorSuppression(email, True, row.reason, row.source, row.created_at)


@dataclass(frozen=True)
class OperatorUnsuppression:
    """What ``subscribers unsuppress`` lifted and what it had to keep."""

    email: str
    lifted: tuple[tuple[str, str], ...]  # (briefing, reason) taken off the list
    kept: tuple[tuple[str, str], ...]  # (briefing, reason) kept: a removed address stays so


def operator_unsuppress(
    session: Session, email: str, *, by: str, why: str | None, now: datetime
) -> OperatorUnsuppression:
    """Take an address off the suppression list, recording who and why.

    An entry left by ``subscribers remove`` stays: a removed address comes back
    only by signing up again. Subscriptions keep their status, so an ended one
    still needs a fresh confirmed sign-up before anything is sent.
    """
    lifted: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    for row in suppressions_of(session, email):
        if row.reason == SuppressionReason.REMOVED:
            kept.append((row.briefing, row.reason))
            continue
        lifted.append((row.briefing, row.reason))
        lift(session, row)
    subscriber = subscriber_by_email(session, email)
    if lifted and subscriber is not None:
        source = operator_source("unsuppress", by, why)
        detail = "unsuppressed: " + ", ".join(f"{b} ({r})" for b, r in lifted)
        for subscription in subscriber.subscriptions:
            note_subscription(session, subscription, source=source, now=now, detail=detail)
    return OperatorUnsuppression(email, tuple(lifted), tuple(kept))


def purge(database: Database, now: datetime) -> Purged:
    """Delete sign-ups left unconfirmed past ``web.confirm_within``, with what was typed in them.

    Each expired, unconfirmed confirmation goes with the name typed into it; a
    pending subscription with no live sign-up left goes with its history; an
    address with nothing left goes too. Expired self-service links go as well.
    ``serve`` runs this every ``web.purge_interval``; ``briefing subscribers
    purge`` runs it once.
    """
    with database.transaction() as session:
        return purge_expired(session, now)
