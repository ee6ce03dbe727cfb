"""Mail an edition as a test: the preview, to an editor, through the one delivery path.

A test send is the edition a subscriber (or a set of sections) would get,
exactly as :func:`~briefing.editions.preview.addressed_copies` previews it
(inert links that act on nobody), addressed to each test recipient with a
``[TEST] `` subject and an ``X-Briefing-Test`` header. It goes on the ledger
as rows of kind ``test`` (never the subscriber's digest row), in the same
transaction as the activity-list line saying who asked, and is sent by the
transactional drain of ``web``, ``serve``, ``send`` or ``deliver`` with the
same transport, envelope, DKIM and retries as any mail.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from briefing.config import Config
from briefing.domain.addresses import AddressError, normalise_address
from briefing.domain.states import DeskAction
from briefing.domain.tokens import Signer
from briefing.editions.preview import Addressing, PreviewContent, addressed_copies
from briefing.errors import BriefingError
from briefing.store import Database
from briefing.store.messages import (
    NewTestSend,
    TestSendStatus,
    queue_test_sends,
    statuses_of_test_sends,
)
from briefing.store.users import record_activity

SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = "X-Briefing-Test"
# A test the relay could not take within a day is no use to the editor who asked.
KEEP = timedelta(days=1)
MAX_RECIPIENTS = 50


@dataclass(frozen=True)
class TestSendResult:
    """What was queued: the subject, to whom, the ledger rows, and the preview's warnings."""

    __test__ = False  # not a test class, whatever its name says to pytest

    briefing: str
    issue_date: date
    shown_as: str
    subject: str
    recipients: tuple[str, ...]
    delivery_ids: tuple[int, ...]
    warnings: tuple[str, ...]


def _recipients(addresses: Sequence[str], *, smtputf8: bool) -> list[str]:
    found: list[str] = []
    for address in addresses:
        try:
            key = normalise_address(address, smtputf8=smtputf8)
        except AddressError as exc:
            raise BriefingError(f"test recipient {address!r}: {exc}") from None
        if key not in found:
            found.append(key)
    if not found:
        raise BriefingError("a test send needs at least one recipient")
    if len(found) > MAX_RECIPIENTS:
        raise BriefingError(f"a test send goes to at most {MAX_RECIPIENTS} addresses")
    return found


def send_test(
    config: Config,
    database: Database,
    signer: Signer,
    *,
    briefing: str,
    recipients: Sequence[str],
    requested_by: str,
    now: datetime,
    user_id: int | None = None,
    subscriber: str | None = None,
    sections: list[str] | None = None,
    issue_date: date | None = None,
) -> TestSendResult:
    """Queue an edition as a test to ``recipients``; record who asked; return what was queued."""
    addresses = _recipients(recipients, smtputf8=config.delivery.smtputf8)
    domain = config.site.from_address.rpartition("@")[2]
    addressing = [
        Addressing(
            recipient=address,
            message_id=f"<test-{uuid.uuid4().hex}@{domain}>",
            date=now,
            subject_prefix=SUBJECT_PREFIX,
            extra_headers={TEST_HEADER: f"asked for by {requested_by}; inert links"},
        )
        for address in addresses
    ]
    copies: list[PreviewContent] = addressed_copies(
        config,
        database,
        signer,
        briefing=briefing,
        at=now,
        subscriber=subscriber,
        sections=sections,
        issue_date=issue_date,
        to=addressing,
    )
    first = copies[0]
    # Kept in test_sends and the activity list: a subscriber by number, never by address,
    # so erasing them leaves no address behind.
    chosen = "sections " + ", ".join(first.sections)
    shown = f"as subscriber #{first.subscriber_id} ({chosen})" if first.subscriber else chosen
    with database.transaction() as session:
        ids = queue_test_sends(
            session,
            [
                NewTestSend(
                    briefing=briefing,
                    issue_date=copy.issue_date,
                    shown_as=shown[:400],
                    recipient=copy.recipient,
                    requested_by=requested_by[:200],
                    subject=copy.subject,
                    message=copy.message,
                    message_id=envelope.message_id,
                )
                for copy, envelope in zip(copies, addressing, strict=True)
            ],
            now,
            keep=KEEP,
        )
        record_activity(
            session,
            at=now,
            user_id=user_id,
            user_name=requested_by,
            action=DeskAction.TEST_SENT,
            detail=(f"{briefing} {first.issue_date.isoformat()} {shown} to {', '.join(addresses)}"),
        )
    return TestSendResult(
        briefing=briefing,
        issue_date=first.issue_date,
        shown_as=shown,
        subject=first.subject,
        recipients=tuple(addresses),
        delivery_ids=tuple(ids),
        warnings=first.warnings,
    )


def queued_tests(database: Database, delivery_ids: Sequence[int]) -> list[TestSendStatus]:
    """Return where the test sends among ``delivery_ids`` stand on the ledger."""
    with database.transaction() as session:
        return statuses_of_test_sends(session, list(delivery_ids))
