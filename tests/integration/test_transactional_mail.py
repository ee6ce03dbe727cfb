"""Confirmation mail on the ledger: queued by a sign-up, sent by a drain like a digest."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import dkim
import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from briefing.audience.confirmations import composers, queue_confirmation
from briefing.audience.lifecycle import start_signup
from briefing.cli import cli
from briefing.config import Config
from briefing.deliver.transactional import drain_transactional
from briefing.domain.states import DeliveryState, MessageKind
from briefing.domain.tokens import Signer
from briefing.ops.controls import pause
from briefing.ops.scheduler import Service
from briefing.store import Database, open_database
from briefing.store.messages import transactional_rows
from briefing.store.schema import Confirmation, Delivery, DeliveryAttempt
from tests.support.delivery import delivery_settings
from tests.support.factories import KEY, make_project
from tests.support.migrations import unmigrated, upgrade_to
from tests.support.smtp_server import Handler, Rule, smtp_server
from tests.support.web import AT, Clock, form_token, message_to, outbox, serve_site
from tests.unit.deliver.test_delivery_parts import rsa_key

SUBSCRIBE = "/b/subscribe"


def sign_up(client: httpx.Client, email: str) -> int:
    page = client.get(SUBSCRIBE)
    data = {"form_token": form_token(page.text), "email": email, "name": "", "briefing": "daily"}
    return client.post(SUBSCRIBE, data=data).status_code


def queue(config: Config, database: Database, email: str, clock: Clock) -> int:
    with database.transaction() as session:
        signup = start_signup(
            session, config, email=email, briefing="daily", source="test", now=clock.now
        )
        return queue_confirmation(session, config, signup, clock.now)


def test_web_sign_up_is_mailed_by_the_drainer_signed_and_with_the_bounce_envelope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, record = rsa_key(tmp_path)
    monkeypatch.setenv("BRIEFING_DKIM_KEY_FILE", str(key_path))
    with smtp_server() as server:
        config = make_project(
            tmp_path / "site",
            delivery=delivery_settings(
                server,
                smtp={"envelope_sender": "bounces+{briefing}-{recipient}@news.example.org"},
                dkim={"selector": "brief2026"},
            ),
        )
        database = open_database(config.database)
        try:
            with serve_site(config, database, [KEY]) as site:
                assert sign_up(site.client, "new@example.com") == 200
                deadline = time.monotonic() + 5  # the drainer was woken by the sign-up
                while not server.handler.received and time.monotonic() < deadline:
                    time.sleep(0.05)
            [received] = server.handler.received
            assert received.recipient == "new@example.com"
            assert received.sender == "bounces+daily-new=example.com@news.example.org"
            assert received.data.startswith(b"DKIM-Signature:")

            def dns(name: bytes, timeout: int = 5) -> bytes:
                return record if name == b"brief2026._domainkey.news.example.org." else b""

            assert dkim.verify(received.data, dnsfunc=dns)
            assert b"Confirm your subscription" in received.data
            with database.transaction() as session:
                [(_, kind, status, confirmation_id)] = transactional_rows(session)
                delivery = session.scalar(select(Delivery).where(Delivery.kind == kind))
                assert delivery is not None
                assert received.message_id == delivery.message_id
            assert (kind, status) == (MessageKind.CONFIRMATION, DeliveryState.SENT)
            assert confirmation_id is not None
        finally:
            database.dispose()


def test_a_temporary_refusal_is_retried(tmp_path: Path, signer: Signer) -> None:
    handler = Handler(rules={"slow@example.com": Rule(rcpt="451 4.7.1 try again later", times=1)})
    with smtp_server(handler) as server:
        config = make_project(tmp_path, delivery=delivery_settings(server))
        database = open_database(config.database)
        clock = Clock()
        try:
            queue(config, database, "slow@example.com", clock)
            first = drain_transactional(config, database, composers(config, signer), clock=clock)
            assert first == {DeliveryState.DEFERRED: 1}
            assert handler.received == []
            again = drain_transactional(config, database, composers(config, signer), clock=clock)
            assert again == {}  # not due yet: it backs off
            clock.now += timedelta(seconds=1)
            second = drain_transactional(config, database, composers(config, signer), clock=clock)
            assert second == {DeliveryState.SENT: 1}
            assert [m.recipient for m in handler.received] == ["slow@example.com"]
            with database.transaction() as session:
                outcomes = session.scalars(
                    select(DeliveryAttempt.outcome).order_by(DeliveryAttempt.id)
                )
                assert list(outcomes) == ["deferred", "sent"]
        finally:
            database.dispose()


def test_a_paused_briefing_still_confirms(project: Config, database: Database) -> None:
    pause(database, "daily", AT, "ops")
    with serve_site(project, database, [KEY]) as site:
        assert sign_up(site.client, "eager@example.com") == 200
        raw = message_to(project, "eager@example.com")
    assert b"Confirm your subscription" in raw


def test_an_expired_confirmation_is_not_sent(
    project: Config, database: Database, signer: Signer
) -> None:
    clock = Clock()
    queue(project, database, "slowpoke@example.com", clock)
    clock.now += project.web.confirm_within + timedelta(minutes=1)
    counts = drain_transactional(project, database, composers(project, signer), clock=clock)
    assert counts == {DeliveryState.EXPIRED: 1}
    assert outbox(project) == []
    with database.transaction() as session:
        assert [row[2] for row in transactional_rows(session)] == [DeliveryState.EXPIRED]


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.base_dir / "config.yaml"), *args])


def test_remove_erases_queued_confirmations(
    project: Config, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())
    assert run(project, "subscribers", "add", "gone@example.com").exit_code == 0
    with database.transaction() as session:
        assert len(transactional_rows(session)) == 1
    removed = run(project, "subscribers", "remove", "gone@example.com", "--yes")
    assert removed.exit_code == 0, removed.output
    with database.transaction() as session:
        assert transactional_rows(session) == []
        assert session.scalar(select(Confirmation)) is None
    sent = run(project, "send")
    assert sent.exit_code == 0 and "confirmations:" not in sent.output
    assert outbox(project) == []


ROWS_0002 = [
    (
        "INSERT INTO subscribers (id, email, name, created_at) "
        "VALUES (1, 'old@example.com', 'Old', '2026-11-20 07:00:00')"
    ),
    (
        "INSERT INTO subscriptions (id, subscriber_id, briefing, sections, timezone, send_time, "
        "frequency, status, status_changed_at, status_source, consent_source, consent_at, "
        "created_at, updated_at) VALUES (1, 1, 'daily', NULL, 'UTC', '07:00', 'daily', 'active', "
        "'2026-11-20 07:00:00', 'import', 'import', '2026-11-20 07:00:00', "
        "'2026-11-20 07:00:00', '2026-11-20 07:00:00')"
    ),
    (
        "INSERT INTO subscription_events (id, subscription_id, at, status_from, status_to, source) "
        "VALUES (1, 1, '2026-11-20 07:00:00', NULL, 'active', 'import')"
    ),
    (
        "INSERT INTO confirmations (id, subscription_id, source, created_at, expires_at) "
        "VALUES (1, 1, 'web:subscribe', '2026-11-20 07:00:00', '2026-11-22 07:00:00')"
    ),
    (
        "INSERT INTO editions (id, briefing, subscriber_id, subscription_id, issue_date, "
        "scheduled_at, created_at) VALUES (1, 'daily', 1, 1, '2026-11-21', '2026-11-21 07:00:00', "
        "'2026-11-21 06:00:00')"
    ),
    (
        "INSERT INTO deliveries (id, edition_id, status, message_id, attempts, sent_at, "
        "created_at, updated_at) VALUES (1, 1, 'sent', '<m1@news.example.org>', 1, "
        "'2026-11-21 07:00:01', '2026-11-21 06:00:00', '2026-11-21 07:00:01')"
    ),
    (
        "INSERT INTO delivery_attempts (id, delivery_id, owner, started_at, finished_at, outcome) "
        "VALUES (1, 1, 'host:1:abc', '2026-11-21 07:00:00', '2026-11-21 07:00:01', 'sent')"
    ),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_from_0002_keeps_rows_and_checks_states(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = unmigrated(backend, tmp_path, request)
    try:
        upgrade_to(database, "0002")
        with database.engine.begin() as connection:
            for statement in ROWS_0002:
                connection.execute(text(statement))
        database.upgrade()
        with database.engine.begin() as connection:
            rows = connection.execute(
                text("SELECT kind, edition_id, confirmation_id, status FROM deliveries")
            ).all()
            assert [tuple(row) for row in rows] == [("digest", 1, None, "sent")]
            for table in ("delivery_attempts", "subscription_events", "confirmations"):
                assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1
        refused = [
            "UPDATE deliveries SET status = 'lost' WHERE id = 1",
            "UPDATE deliveries SET kind = 'letter' WHERE id = 1",
            "UPDATE deliveries SET edition_id = NULL WHERE id = 1",
            "UPDATE subscriptions SET status = 'paused' WHERE id = 1",
            "UPDATE subscription_events SET status_to = 'gone' WHERE id = 1",
            "UPDATE subscription_events SET status_from = 'gone' WHERE id = 1",
            "UPDATE delivery_attempts SET outcome = 'maybe' WHERE id = 1",
            (
                "INSERT INTO deliveries (kind, status, message_id, attempts, created_at, updated_at) "
                "VALUES ('confirmation', 'pending', '<c@x>', 0, '2026-11-21 06:00:00', "
                "'2026-11-21 06:00:00')"
            ),
        ]
        for statement in refused:
            with pytest.raises(IntegrityError), database.engine.begin() as connection:
                connection.execute(text(statement))
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO deliveries (kind, confirmation_id, status, message_id, attempts, "
                    "created_at, updated_at) VALUES ('confirmation', 1, 'pending', '<c@x>', 0, "
                    "'2026-11-21 06:00:00', '2026-11-21 06:00:00')"
                )
            )
        with database.transaction() as session:
            assert len(transactional_rows(session)) == 1
            session.delete(session.get(Confirmation, 1))
        with database.transaction() as session:
            assert transactional_rows(session) == []  # the foreign key cascades
    finally:
        database.dispose()


def test_subject_names_the_briefing(project: Config, database: Database, signer: Signer) -> None:
    queue(project, database, "who@example.com", Clock())
    drain_transactional(project, database, composers(project, signer), clock=Clock())
    raw = message_to(project, "who@example.com")
    assert re.search(rb"Subject: Confirm your subscription to ", raw)


def test_serve_sends_confirmations_in_its_mail_job(project: Config, database: Database) -> None:
    clock = Clock()
    queue(project, database, "served@example.com", clock)
    service = Service(project, database, Signer([KEY]), clock=clock)
    assert "mail" in {job.id for job in service.scheduler(clock.now).get_jobs()}
    service.send_transactional()
    assert b"Confirm your subscription" in message_to(project, "served@example.com")
