"""Delivery: the ledger drives the outbox; resends are identical but for Date."""

from __future__ import annotations

import mailbox
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.deliver import OutboxTransport, deliver
from briefing.domain.tokens import Purpose, Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database
from briefing.store.dbclock import database_time
from briefing.store.ledger import claim
from briefing.store.schema import Delivery, Subscriber, Subscription
from briefing.store.suppressions import suppress
from tests.support.delivery import statuses
from tests.support.factories import NOW
from tests.support.message_checks import check_message

AT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


@pytest.fixture
def dispatched(project: Config, database: Database, signer: Signer) -> tuple[Config, Database]:
    ingest(project, database, NOW - timedelta(hours=1))
    path = project.base_dir / "subs.csv"
    path.write_text(
        "email,name,briefing,sections,timezone,send_time,frequency\n"
        "ann@example.com,Ann,daily,world,Europe/London,07:00,daily\n"
        "bob@example.com,Bob Ünal,daily,world;sport,Europe/London,07:00,daily\n"
        "cy@example.com,,daily,business,Europe/London,07:00,daily\n"
    )
    import_subscribers(project, database, path, datetime(2026, 11, 26, tzinfo=UTC))
    dispatch(project, database, signer, AT)
    return project, database


def outbox(config: Config) -> list[bytes]:
    box = mailbox.Maildir(str(config.outbox_path), create=True)
    return [box.get_bytes(key) for key in sorted(box.keys())]


def test_deliver_writes_each_message_once(
    dispatched: tuple[Config, Database], signer: Signer
) -> None:
    config, database = dispatched
    report = deliver(
        config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: AT
    )
    assert report.sent == 3
    assert statuses(database) == dict.fromkeys(
        ("ann@example.com", "bob@example.com", "cy@example.com"), "sent"
    )
    messages = outbox(config)
    assert len(messages) == 3
    with database.transaction() as session:
        expected = {s.subscriber.email: s.id for s in session.scalars(select(Subscription))}
    for raw in messages:
        message, text, html = check_message(raw, config.site.base_url)
        recipient = re.search(r"<?([\w.]+@example\.com)>?$", str(message["To"])).group(1)
        token = re.search(r"/u/([A-Za-z0-9_-]{32})", str(message["List-Unsubscribe"])).group(1)
        assert signer.verify(token, Purpose.UNSUBSCRIBE) == expected[recipient]
        preferences = re.search(r"/p/([A-Za-z0-9_-]{32})", html).group(1)
        assert signer.verify(preferences, Purpose.PREFERENCES) == expected[recipient]
        view = re.search(r"/e/([A-Za-z0-9_-]{32})", text).group(1)
        assert signer.verify(view, Purpose.VIEW) > 0
    again = deliver(config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: AT)
    assert again.handled == 0 and len(outbox(config)) == 3


def test_resend_is_identical_but_for_date(
    dispatched: tuple[Config, Database], signer: Signer
) -> None:
    config, database = dispatched
    transport = OutboxTransport(config.outbox_path)
    deliver(config, database, signer, transport, clock=lambda: AT)
    # A crash after the server took the message but before the ledger said so.
    with database.transaction() as session:
        session.execute(update(Delivery).values(status="pending"))
    deliver(config, database, signer, transport, clock=lambda: AT + timedelta(minutes=3))
    messages = outbox(config)
    assert len(messages) == 6
    by_id: dict[bytes, list[bytes]] = {}
    for raw in messages:
        message_id = re.search(rb"^Message-ID: (.+)$", raw, re.M).group(1)
        by_id.setdefault(message_id, []).append(raw)
    assert len(by_id) == 3
    for first, second in by_id.values():
        assert first != second
        strip = lambda raw: re.sub(rb"^Date: .+\r\n", b"", raw, flags=re.M)  # noqa: E731
        assert strip(first) == strip(second)


def test_checks_just_before_sending(dispatched: tuple[Config, Database], signer: Signer) -> None:
    config, database = dispatched
    with database.transaction() as session:
        suppress(session, "ann@example.com", reason="unsubscribed", source="test", now=AT)
        bob = session.scalar(
            select(Subscription).join(Subscriber).where(Subscriber.email == "bob@example.com")
        )
        bob.status = "unsubscribed"
    report = deliver(
        config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: AT
    )
    assert (report.sent, report.suppressed, report.cancelled) == (1, 1, 1)
    assert statuses(database) == {
        "ann@example.com": "suppressed",
        "bob@example.com": "cancelled",
        "cy@example.com": "sent",
    }


def test_past_the_deadline_nothing_goes(
    dispatched: tuple[Config, Database], signer: Signer
) -> None:
    config, database = dispatched
    late = AT + timedelta(hours=3, minutes=1)
    report = deliver(
        config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: late
    )
    assert report.expired == 3 and outbox(config) == []


def test_live_claims_are_not_taken_and_lapsed_ones_are(dispatched: tuple[Config, Database]) -> None:
    _, database = dispatched
    lease = timedelta(seconds=0.5)
    with database.transaction() as session:
        mine = claim(session, "run-a", AT, 2, lease=lease)
    assert len(mine) == 2
    with database.transaction() as session:
        # A run whose clock is a day ahead still cannot take a live lease: leases are
        # judged by the database's clock, not the claiming run's.
        skewed = AT + timedelta(days=1)
        assert claim(session, "run-b", skewed, 10, lease=timedelta(minutes=10)) == [max(mine) + 1]
    time.sleep(0.6)  # run-a's lease ends by the database's clock
    with database.transaction() as session:
        assert sorted(claim(session, "run-c", AT, 10, lease=lease)) == sorted(mine)


def test_leases_are_set_by_the_database_clock(dispatched: tuple[Config, Database]) -> None:
    _, database = dispatched
    with database.transaction() as session:
        before = database_time(session)
    with database.transaction() as session:
        # The run's clock says 2026-11-26; the lease follows the server's time, not it.
        claim(session, "run-a", AT - timedelta(days=30), 1, lease=timedelta(minutes=2))
    with database.transaction() as session:
        after = database_time(session)
        lease_until = session.scalar(select(Delivery.lease_until).where(Delivery.owner == "run-a"))
    assert lease_until is not None
    assert before + timedelta(minutes=2) - timedelta(seconds=1) <= lease_until
    assert lease_until <= after + timedelta(minutes=2) + timedelta(seconds=1)


def test_a_paused_briefing_is_not_delivered_until_resumed(
    dispatched: tuple[Config, Database], signer: Signer
) -> None:
    from briefing.store.schema import BriefingControl

    config, database = dispatched
    with database.transaction() as session:
        session.add(BriefingControl(briefing="daily", paused=True, updated_at=AT))
    held = deliver(config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: AT)
    assert held.sent == 0 and outbox(config) == []
    assert set(statuses(database).values()) == {"pending"}
    with database.transaction() as session:
        control = session.get(BriefingControl, "daily")
        assert control is not None
        control.paused = False
    resumed = deliver(
        config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: AT
    )
    assert resumed.sent == 3 and len(outbox(config)) == 3
