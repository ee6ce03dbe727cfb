"""Keep a reader's self-service links, gather what is stored about them, purge stale sign-ups.

An account request is used at most once: :func:`use_request` sets
``used_at`` with a conditional UPDATE (``WHERE used_at IS NULL``), so two
clicks, two tabs or two web processes racing on one link act once between
them, whatever the isolation level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from briefing.domain.addresses import address_hash
from briefing.domain.states import AccountAction, MessageKind, SubscriptionState
from briefing.store.messages import queue_transactional
from briefing.store.schema import (
    AccountRequest,
    BounceEvent,
    Confirmation,
    Delivery,
    Edition,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from briefing.store.suppressions import suppressions_of


def add_request(
    session: Session,
    subscriber_id: int,
    action: AccountAction,
    *,
    email: str,
    now: datetime,
    expires_at: datetime,
    new_email: str | None = None,
) -> AccountRequest:
    """Record a single-use link for ``action``, mailed to ``email``, and give it its id."""
    request = AccountRequest(
        subscriber_id=subscriber_id,
        action=action.value,
        email=email,
        new_email=new_email,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(request)
    session.flush()
    return request


def queue_request_mail(session: Session, request_id: int, message_id: str, now: datetime) -> int:
    """Put the mail of one account request on the ledger, due at once; return the delivery id."""
    return queue_transactional(session, MessageKind.ACCOUNT, message_id, now, request_id=request_id)


def request_by_id(session: Session, ident: int) -> AccountRequest | None:
    """Return the account request a link names, if it still exists."""
    return session.get(AccountRequest, ident)


def use_request(session: Session, ident: int, now: datetime) -> bool:
    """Mark a request used if it is unused and unexpired; tell whether this call did it."""
    result = session.execute(
        update(AccountRequest)
        .where(
            AccountRequest.id == ident,
            AccountRequest.used_at.is_(None),
            AccountRequest.expires_at >= now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def data_of(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Gather everything stored about a subscriber's address, as JSON-ready values."""
    email = subscriber.email
    subscriptions = sorted(subscriber.subscriptions, key=lambda s: s.id)
    ids = [s.id for s in subscriptions]
    events = session.scalars(
        select(SubscriptionEvent)
        .where(SubscriptionEvent.subscription_id.in_(ids))
        .order_by(SubscriptionEvent.id)
    )
    signups = session.scalars(
        select(Confirmation).where(Confirmation.subscription_id.in_(ids)).order_by(Confirmation.id)
    )
    deliveries = session.execute(
        select(Edition.briefing, Edition.issue_date, Delivery.status, Delivery.sent_at)
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(Edition.subscriber_id == subscriber.id)
        .order_by(Edition.issue_date, Edition.id)
    )
    bounces = session.scalars(
        select(BounceEvent)
        .where(BounceEvent.email_hash == address_hash(email))
        .order_by(BounceEvent.id)
    )
    requests = session.scalars(
        select(AccountRequest)
        .where(AccountRequest.subscriber_id == subscriber.id)
        .order_by(AccountRequest.id)
    )
    return {
        "email": email,
        "name": subscriber.name,
        "created_at": _when(subscriber.created_at),
        "subscriptions": [
            {
                "briefing": s.briefing,
                "status": s.status,
                "sections": s.sections,
                "timezone": s.timezone,
                "send_time": s.send_time,
                "frequency": s.frequency,
                "consent": {"source": s.consent_source, "at": _when(s.consent_at)},
                "created_at": _when(s.created_at),
                "preferences_set_at": _when(s.preferences_set_at),
            }
            for s in subscriptions
        ],
        "history": [
            {
                "subscription": e.subscription_id,
                "at": _when(e.at),
                "from": e.status_from,
                "to": e.status_to,
                "source": e.source,
                "detail": e.detail,
            }
            for e in events
        ],
        "signups": [
            {
                "subscription": c.subscription_id,
                "source": c.source,
                "name": c.name,
                "created_at": _when(c.created_at),
                "expires_at": _when(c.expires_at),
                "confirmed_at": _when(c.confirmed_at),
            }
            for c in signups
        ],
        "deliveries": [
            {"briefing": b, "issue_date": d.isoformat(), "status": st, "sent_at": _when(at)}
            for b, d, st, at in deliveries
        ],
        "bounce_events": [
            {
                "received_at": _when(b.received_at),
                "kind": b.kind,
                "status": b.status,
                "source": b.source,
                "action": b.action,
            }
            for b in bounces
        ],
        "suppressions": [
            {
                "briefing": s.briefing,
                "reason": s.reason,
                "source": s.source,
                "created_at": _when(s.created_at),
            }
            for s in suppressions_of(session, email)
        ],
        "self_service_links": [
            {
                "action": r.action,
                "mailed_to": r.email,
                "new_address": r.new_email,
                "created_at": _when(r.created_at),
                "used_at": _when(r.used_at),
            }
            for r in requests
        ],
    }


@dataclass(frozen=True)
class Purged:
    """What one purge deleted."""

    confirmations: int  # expired, unconfirmed sign-ups (with the names typed into them)
    subscriptions: int  # pending subscriptions left with no live sign-up
    subscribers: int  # addresses left with no subscription at all
    requests: int  # expired self-service links (with the addresses they were mailed to)


def purge_expired(session: Session, now: datetime) -> Purged:
    """Delete expired unconfirmed sign-ups and everything typed into them, in bulk statements.

    A pending subscription goes once none of its sign-ups is still live; a
    subscriber goes once they have no subscription left. A confirmed
    subscription, or one that ended, keeps its row: only the stale sign-up
    (and the name in it) goes. Expired self-service links go too.
    """
    live = aliased(Confirmation)
    expired = aliased(Confirmation)
    stale = (Confirmation.confirmed_at.is_(None)) & (Confirmation.expires_at < now)
    orphaned = select(Subscription.id, Subscription.subscriber_id).where(
        Subscription.status == SubscriptionState.PENDING.value,
        exists().where(
            expired.subscription_id == Subscription.id,
            expired.confirmed_at.is_(None),
            expired.expires_at < now,
        ),
        ~exists().where(
            live.subscription_id == Subscription.id,
            (live.confirmed_at.is_not(None)) | (live.expires_at >= now),
        ),
    )
    doomed = session.execute(orphaned).all()
    # Counted first: deleting a lead deletes its members by cascade, uncounted by rowcount.
    confirmations = session.scalar(select(func.count()).select_from(Confirmation).where(stale))
    session.execute(delete(Confirmation).where(stale).execution_options(synchronize_session=False))
    subscribers = 0
    if doomed:
        subscription_ids = [row[0] for row in doomed]
        owners = sorted({row[1] for row in doomed})
        session.execute(
            delete(SubscriptionEvent).where(SubscriptionEvent.subscription_id.in_(subscription_ids))
        )
        session.execute(
            delete(Subscription)
            .where(Subscription.id.in_(subscription_ids))
            .execution_options(synchronize_session=False)
        )
        subscribers = session.execute(
            delete(Subscriber)
            .where(
                Subscriber.id.in_(owners),
                ~exists().where(Subscription.subscriber_id == Subscriber.id),
                ~exists().where(Edition.subscriber_id == Subscriber.id),
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    requests = session.execute(
        delete(AccountRequest)
        .where(AccountRequest.expires_at < now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.expire_all()
    return Purged(int(confirmations or 0), len(doomed), int(subscribers or 0), int(requests or 0))
