"""Drain the delivery ledger: claim due deliveries, personalise, send, record.

The ledger is the truth. A run claims a batch of pending or deferred rows
(status ``sending`` with its owner and a lease), sends each message outside
any transaction, and records the outcome right after the transport answers,
so a crash loses nothing: a claim whose lease ran out is claimed again and
only messages in flight at the crash can go twice (with the same Message-ID
and bytes). Every recipient is checked against the suppression list and their
subscription's status just before sending.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from briefing.addresses import suppression_for
from briefing.compose import MessageTemplate
from briefing.config import Config
from briefing.deliver.transports import Transport, TransportResult
from briefing.render import personal_link
from briefing.store import Database
from briefing.store.schema import (
    Delivery,
    DeliveryAttempt,
    Edition,
    Subscriber,
    Subscription,
    Variant,
)
from briefing.tokens import Purpose, Signer

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
RETRY_AFTER = timedelta(minutes=5)
CLAIMABLE = ("pending", "deferred")


def new_owner() -> str:
    """Name this run in claims: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    cancelled: int = 0
    suppressed: int = 0
    expired: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        """Count deliveries this run settled or deferred."""
        return (
            self.sent
            + self.deferred
            + self.failed
            + self.cancelled
            + self.suppressed
            + self.expired
        )


@dataclass(frozen=True)
class Outgoing:
    """One claimed delivery with what is needed to personalise it."""

    delivery_id: int
    edition_id: int
    subscription_id: int
    briefing: str
    recipient: str
    name: str | None
    message_id: str
    variant_id: int


def claim(
    session: Session,
    owner: str,
    now: datetime,
    limit: int,
    briefing: str | None = None,
) -> list[int]:
    """Claim up to ``limit`` due deliveries for ``owner``; a lapsed lease is claimable again."""
    due = or_(
        Delivery.status.in_(CLAIMABLE)
        & or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        (Delivery.status == "sending") & (Delivery.lease_until < now),
    )
    query = select(Delivery.id).join(Edition, Edition.id == Delivery.edition_id).where(due)
    if briefing:
        query = query.where(Edition.briefing == briefing)
    ids = list(session.scalars(query.order_by(Delivery.id).limit(limit)))
    if not ids:
        return []
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), due)
        .values(status="sending", owner=owner, lease_until=now + LEASE, heartbeat_at=now,
                updated_at=now)
    )  # fmt: skip
    return list(
        session.scalars(select(Delivery.id).where(Delivery.id.in_(ids), Delivery.owner == owner))
    )


def _settle(
    session: Session,
    delivery_id: int,
    status: str,
    now: datetime,
    *,
    owner: str,
    reason: str | None = None,
    result: TransportResult | None = None,
    started: datetime | None = None,
) -> None:
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    delivery.status = status
    delivery.reason = reason
    delivery.owner = None
    delivery.lease_until = None
    delivery.updated_at = now
    if result is not None:
        delivery.attempts += 1
        delivery.last_code = result.code
        delivery.last_reply = result.reply
        session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                owner=owner,
                started_at=started or now,
                finished_at=now,
                outcome=result.outcome,
                stage=result.stage,
                code=result.code,
                reply=result.reply,
            )
        )
    if status == "sent":
        delivery.sent_at = now
    delivery.next_attempt_at = now + RETRY_AFTER if status == "deferred" else None


def _load(session: Session, delivery_id: int) -> tuple[Outgoing | None, str | None]:
    row = session.execute(
        select(Delivery, Edition, Subscription, Subscriber)
        .join(Edition, Edition.id == Delivery.edition_id)
        .outerjoin(Subscription, Subscription.id == Edition.subscription_id)
        .outerjoin(Subscriber, Subscriber.id == Edition.subscriber_id)
        .where(Delivery.id == delivery_id)
    ).one()
    delivery, edition, subscription, subscriber = row
    if subscriber is None or subscription is None:
        return None, "subscriber was removed before sending"
    if subscription.status != "active":
        return None, f"subscription is {subscription.status}"
    if edition.variant_id is None:
        return None, "edition has no content"
    return (
        Outgoing(
            delivery_id=delivery.id,
            edition_id=edition.id,
            subscription_id=subscription.id,
            briefing=edition.briefing,
            recipient=subscriber.email,
            name=subscriber.name,
            message_id=delivery.message_id,
            variant_id=edition.variant_id,
        ),
        None,
    )


def personal_tokens(signer: Signer, subscription_id: int, edition_id: int) -> dict[str, str]:
    """Return the tokens of one recipient's links, keyed by purpose."""
    return {
        Purpose.UNSUBSCRIBE.value: signer.sign(Purpose.UNSUBSCRIBE, subscription_id),
        Purpose.PREFERENCES.value: signer.sign(Purpose.PREFERENCES, subscription_id),
        Purpose.VIEW.value: signer.sign(Purpose.VIEW, edition_id),
    }


def list_unsubscribe(config: Config, token: str) -> tuple[str, ...]:
    """Return the List-Unsubscribe URIs: the one-click https URL, then an optional mailto."""
    uris = [personal_link(config.site.base_url, Purpose.UNSUBSCRIBE, token)]
    if config.site.unsubscribe_mailto:
        uris.append(f"mailto:{config.site.unsubscribe_mailto}?subject=unsubscribe%20{token}")
    return tuple(uris)


class TemplateCache:
    """Load each variant's message template once per run."""

    def __init__(self) -> None:
        self._templates: dict[int, MessageTemplate] = {}

    def get(self, session: Session, variant_id: int) -> MessageTemplate:
        """Return the template of a variant."""
        if variant_id not in self._templates:
            variant = session.get(Variant, variant_id)
            assert variant is not None
            self._templates[variant_id] = MessageTemplate.from_bytes(
                variant.message, variant.placeholders
            )
        return self._templates[variant_id]


def message_for(
    config: Config,
    signer: Signer,
    template: MessageTemplate,
    outgoing: Outgoing,
    now: datetime,
) -> bytes:
    """Personalise a variant's message for one recipient."""
    tokens = personal_tokens(signer, outgoing.subscription_id, outgoing.edition_id)
    return template.personalise(
        recipient=outgoing.recipient,
        name=outgoing.name,
        message_id=outgoing.message_id,
        date=now,
        tokens=tokens,
        list_unsubscribe=list_unsubscribe(config, tokens[Purpose.UNSUBSCRIBE.value]),
    )


def deliver(
    config: Config,
    database: Database,
    signer: Signer,
    transport: Transport,
    *,
    briefing: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    owner: str | None = None,
) -> DeliveryReport:
    """Send every due delivery in the ledger; return what happened."""
    owner = owner or new_owner()
    report = DeliveryReport()
    templates = TemplateCache()
    while True:
        with database.transaction() as session:
            claimed = claim(session, owner, clock(), config.delivery.batch_size, briefing)
        if not claimed:
            break
        for delivery_id in claimed:
            _deliver_one(config, database, signer, transport, templates, delivery_id, owner,
                         clock, report)  # fmt: skip
    return report


def _deliver_one(
    config: Config,
    database: Database,
    signer: Signer,
    transport: Transport,
    templates: TemplateCache,
    delivery_id: int,
    owner: str,
    clock: Callable[[], datetime],
    report: DeliveryReport,
) -> None:
    now = clock()
    with database.transaction() as session:
        outgoing, reason = _load(session, delivery_id)
        if outgoing is None:
            _settle(session, delivery_id, "cancelled", now, owner=owner, reason=reason)
            report.cancelled += 1
            return
        edition = session.get(Edition, outgoing.edition_id)
        assert edition is not None
        deadline = config.briefings[outgoing.briefing].deadline if (
            outgoing.briefing in config.briefings) else timedelta(0)  # fmt: skip
        if now > edition.scheduled_at + deadline:
            _settle(session, delivery_id, "expired", now, owner=owner,
                    reason="not sent before the briefing's deadline")  # fmt: skip
            report.expired += 1
            return
        if (hit := suppression_for(session, outgoing.recipient, outgoing.briefing)) is not None:
            _settle(session, delivery_id, "suppressed", now, owner=owner,
                    reason=f"address suppressed ({hit.reason})")  # fmt: skip
            report.suppressed += 1
            return
        template = templates.get(session, outgoing.variant_id)
    message = message_for(config, signer, template, outgoing, now)
    result = transport.send(config.site.from_address, outgoing.recipient, message)
    finished = clock()
    with database.transaction() as session:
        _settle(session, delivery_id, result.outcome, finished, owner=owner,
                reason=None if result.outcome == "sent" else result.reply,
                result=result, started=now)  # fmt: skip
    if result.outcome == "sent":
        report.sent += 1
    else:
        setattr(report, result.outcome, getattr(report, result.outcome) + 1)
        report.problems.append(f"{outgoing.recipient}: {result.outcome}: {result.reply}")
        logger.warning("delivery %d to %s: %s: %s", delivery_id, outgoing.recipient,
                       result.outcome, result.reply)  # fmt: skip
