"""Queue, claim and check transactional mail on the ledger: every kind but the digest.

Kinds: ``confirmation`` (a sign-up's link), ``account`` (a reader's
self-service link) and ``test`` (an edition mailed to an editor, its message
composed when asked for and kept in ``test_sends``).

A confirmation is a ledger row like a digest (``deliveries`` with
``kind = 'confirmation'``): it is claimed, sent and recorded with the same
owner, lease and outcome functions of :mod:`briefing.store.ledger`, so it gets
the same crash safety and retries. It differs in three ways: it points at its
confirmation instead of an edition (and is deleted with it), a paused briefing
does not hold it, and its deadline is the confirmation's own expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from briefing.domain.states import CLAIMABLE, DeliveryState, MessageKind
from briefing.store.dbclock import db_now
from briefing.store.ledger import Settlement, take_claims
from briefing.store.schema import (
    AccountRequest,
    Confirmation,
    Delivery,
    Subscriber,
    Subscription,
    TestSend,
)


def queue_confirmation(
    session: Session, confirmation_id: int, message_id: str, now: datetime
) -> int:
    """Put one confirmation mail on the ledger, due at once; return the delivery id."""
    return queue_transactional(
        session, MessageKind.CONFIRMATION, message_id, now, confirmation_id=confirmation_id
    )


def queue_transactional(
    session: Session, kind: MessageKind, message_id: str, now: datetime, **target: int
) -> int:
    """Put one transactional mail of ``kind`` on the ledger, due at once; return its id.

    ``target`` names what it is about (``confirmation_id=`` or ``request_id=``).
    """
    delivery = Delivery(
        kind=kind.value,
        status=DeliveryState.PENDING.value,
        message_id=message_id,
        attempts=0,
        created_at=now,
        updated_at=now,
        **target,
    )
    session.add(delivery)
    session.flush()
    return delivery.id


@dataclass(frozen=True)
class NewTestSend:
    """One edition to mail as a test: to whom, the composed message, and what it shows."""

    briefing: str
    issue_date: date
    shown_as: str
    recipient: str
    requested_by: str
    subject: str
    message: bytes
    message_id: str


def queue_test_sends(
    session: Session, sends: list[NewTestSend], now: datetime, *, keep: timedelta
) -> list[int]:
    """Put test sends on the ledger (kind ``test``), due at once; return their delivery ids.

    A test not sent within ``keep`` (a relay down for that long) expires: it
    is no use to its editor by then.
    """
    rows = [
        TestSend(
            briefing=send.briefing,
            issue_date=send.issue_date,
            shown_as=send.shown_as,
            recipient=send.recipient,
            requested_by=send.requested_by,
            subject=send.subject,
            message=send.message,
            created_at=now,
            expires_at=now + keep,
        )
        for send in sends
    ]
    session.add_all(rows)
    session.flush()
    return [
        queue_transactional(session, MessageKind.TEST, send.message_id, now, test_id=row.id)
        for send, row in zip(sends, rows, strict=True)
    ]


def _transactional_due(now: datetime, dialect: str) -> Any:
    return (Delivery.kind != MessageKind.DIGEST.value) & or_(
        Delivery.status.in_(CLAIMABLE)
        & or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        (Delivery.status == DeliveryState.SENDING.value) & (Delivery.lease_until < db_now(dialect)),
    )


def claim_transactional(
    session: Session, owner: str, now: datetime, limit: int, *, lease: timedelta
) -> list[int]:
    """Claim up to ``limit`` due transactional rows for ``owner`` (pauses do not hold them)."""
    dialect = session.get_bind().dialect.name
    due = _transactional_due(now, dialect)
    query = select(Delivery.id).where(due).order_by(Delivery.id).limit(limit)
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    return take_claims(session, ids, due, owner, now, lease)


@dataclass(frozen=True)
class Queued:
    """One claimed transactional message with what composing and sending it needs."""

    delivery_id: int
    kind: MessageKind
    message_id: str
    attempts: int  # tries recorded before this one
    recipient: str
    briefing: str
    subscription_id: int
    confirmation_id: int
    deadline: datetime
    # Every briefing the one confirmation link covers (a sign-up of several at once).
    briefings: tuple[str, ...] = ()
    # An account message (kind ``account``): its request and what the link does.
    request_id: int | None = None
    action: str | None = None
    # A test send (kind ``test``): the message as composed when it was asked for.
    message: bytes | None = None


# How the transactional drain composes each kind of message: the queued row and now, to bytes.
Composer = Callable[[Queued, datetime], bytes]
Composers = Mapping[MessageKind, Composer]


def as_composed(queued: Queued, now: datetime) -> bytes:
    """Return a test send's message as it was composed when asked for (the ``test`` composer)."""
    if queued.message is None:
        raise ValueError(f"delivery {queued.delivery_id} carries no composed message")
    return queued.message


def _covered(session: Session, leads: list[int]) -> dict[int, list[str]]:
    """Return the briefings each lead confirmation's link covers, the lead's own first."""
    covered: dict[int, list[str]] = {}
    if not leads:
        return covered
    rows = session.execute(
        select(Confirmation.id, Confirmation.lead_id, Subscription.briefing)
        .join(Subscription, Subscription.id == Confirmation.subscription_id)
        .where(or_(Confirmation.id.in_(leads), Confirmation.lead_id.in_(leads)))
        .order_by(Confirmation.id)
    )
    for ident, lead, briefing in rows:
        covered.setdefault(lead if lead is not None else ident, []).append(briefing)
    return covered


def _load_requests(
    session: Session, ids: list[int], now: datetime
) -> tuple[list[Queued], list[Settlement]]:
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.message_id,
            Delivery.attempts,
            AccountRequest.id,
            AccountRequest.action,
            AccountRequest.email,
            AccountRequest.expires_at,
            AccountRequest.used_at,
        )
        .join(AccountRequest, AccountRequest.id == Delivery.request_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    queued: list[Queued] = []
    settled: list[Settlement] = []
    for delivery_id, message_id, attempts, request_id, action, email, expires, used in rows:
        if used is not None:
            settled.append(Settlement(delivery_id, DeliveryState.CANCELLED, "already used", email))
        elif now > expires:
            settled.append(
                Settlement(delivery_id, DeliveryState.EXPIRED, "the link expired", email)
            )
        else:
            queued.append(
                Queued(
                    delivery_id,
                    MessageKind.ACCOUNT,
                    message_id,
                    attempts,
                    email,
                    "",
                    0,
                    0,
                    expires,
                    request_id=request_id,
                    action=action,
                )
            )
    return queued, settled


def _load_tests(
    session: Session, ids: list[int], now: datetime
) -> tuple[list[Queued], list[Settlement]]:
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.message_id,
            Delivery.attempts,
            TestSend.recipient,
            TestSend.briefing,
            TestSend.message,
            TestSend.expires_at,
        )
        .join(TestSend, TestSend.id == Delivery.test_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    queued: list[Queued] = []
    settled: list[Settlement] = []
    for delivery_id, message_id, attempts, recipient, briefing, message, expires in rows:
        if now > expires:
            settled.append(
                Settlement(delivery_id, DeliveryState.EXPIRED, "the test send is stale", recipient)
            )
            continue
        queued.append(
            Queued(
                delivery_id,
                MessageKind.TEST,
                message_id,
                attempts,
                recipient,
                briefing,
                0,
                0,
                expires,
                message=message,
            )
        )
    return queued, settled


def load_transactional(
    session: Session, ids: list[int], now: datetime
) -> tuple[list[Queued], list[Settlement]]:
    """Load claimed transactional rows; sort out those that must no longer be sent, and why."""
    requests = list(
        session.scalars(
            select(Delivery.id).where(
                Delivery.id.in_(ids), Delivery.kind == MessageKind.ACCOUNT.value
            )
        )
    )
    tests = list(
        session.scalars(
            select(Delivery.id).where(Delivery.id.in_(ids), Delivery.kind == MessageKind.TEST.value)
        )
    )
    queued, settled = _load_requests(session, requests, now)
    more, stale = _load_tests(session, tests, now)
    queued.extend(more)
    settled.extend(stale)
    taken = set(requests) | set(tests)
    ids = [ident for ident in ids if ident not in taken]
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.kind,
            Delivery.message_id,
            Delivery.attempts,
            Confirmation.id,
            Confirmation.expires_at,
            Confirmation.confirmed_at,
            Subscription.id,
            Subscription.briefing,
            Subscriber.email,
        )
        .outerjoin(Confirmation, Confirmation.id == Delivery.confirmation_id)
        .outerjoin(Subscription, Subscription.id == Confirmation.subscription_id)
        .outerjoin(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    covered = _covered(session, [row[4] for row in rows if row[4] is not None])
    for (
        delivery_id,
        kind,
        message_id,
        attempts,
        confirmation_id,
        expires_at,
        confirmed_at,
        subscription_id,
        briefing,
        email,
    ) in rows:
        if kind != MessageKind.CONFIRMATION or confirmation_id is None or email is None:
            settled.append(
                Settlement(delivery_id, DeliveryState.CANCELLED, f"nothing to send for a {kind}")
            )
        elif confirmed_at is not None:
            settled.append(
                Settlement(delivery_id, DeliveryState.CANCELLED, "already confirmed", email)
            )
        elif now > expires_at:
            settled.append(
                Settlement(
                    delivery_id, DeliveryState.EXPIRED, "the confirmation link expired", email
                )
            )
        else:
            queued.append(
                Queued(
                    delivery_id,
                    MessageKind(kind),
                    message_id,
                    attempts,
                    email,
                    briefing,
                    subscription_id,
                    confirmation_id,
                    expires_at,
                    briefings=tuple(covered.get(confirmation_id, [briefing])),
                )
            )
    queued.sort(key=lambda q: q.delivery_id)
    return queued, settled


def transactional_rows(session: Session) -> list[tuple[int, str, str, int | None]]:
    """List every transactional row: id, kind, status and confirmation id (for checks)."""
    return [
        (row[0], row[1], row[2], row[3])
        for row in session.execute(
            select(Delivery.id, Delivery.kind, Delivery.status, Delivery.confirmation_id)
            .where(Delivery.kind != MessageKind.DIGEST.value)
            .order_by(Delivery.id)
        )
    ]


@dataclass(frozen=True)
class TestSendStatus:
    """Where one test send stands on the ledger."""

    __test__ = False  # not a test class, whatever its name says to pytest

    delivery_id: int
    recipient: str
    subject: str
    status: DeliveryState
    reply: str | None


def statuses_of_test_sends(session: Session, delivery_ids: list[int]) -> list[TestSendStatus]:
    """Return the test sends among ``delivery_ids``, with their ledger states."""
    rows = session.execute(
        select(
            Delivery.id, TestSend.recipient, TestSend.subject, Delivery.status, Delivery.last_reply
        )
        .join(TestSend, TestSend.id == Delivery.test_id)
        .where(Delivery.id.in_(delivery_ids), Delivery.kind == MessageKind.TEST.value)
        .order_by(Delivery.id)
    )
    return [
        TestSendStatus(ident, recipient, subject, DeliveryState(status), reply)
        for ident, recipient, subject, status, reply in rows
    ]
