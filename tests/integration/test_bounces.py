"""The bounce loop: send over SMTP, mail comes back into a Maildir, `bounces import` acts on it."""

from __future__ import annotations

import email
import json
import smtplib
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from briefing.cli import cli
from briefing.config import Config
from briefing.deliver import deliver, make_transport
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database, open_database
from briefing.store.schema import BounceEvent, Delivery, Edition, Subscriber, Subscription
from briefing.store.suppressions import suppressions_of
from briefing.web import create_app
from tests.support.bounces import arf, auto_reply, dsn, maildir_of, unsubscribe_mail
from tests.support.delivery import AT, delivery_settings, reader, statuses, subscribe
from tests.support.factories import KEY, NOW, make_project, markdown_article
from tests.support.inbound import receiver
from tests.support.migrations import unmigrated, upgrade_to
from tests.support.smtp_server import Received, smtp_server
from tests.support.web import live_server

SIGNER = Signer([KEY])
WEBHOOK_TOKEN = "loop-webhook-token-5d0e8c3b"


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())


def run_cli(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.base_dir / "config.yaml"), *args])


def send(config: Config, database: Database) -> None:
    transport = make_transport(config)
    try:
        deliver(config, database, SIGNER, transport, clock=lambda: AT)
    finally:
        transport.close()


def subscription_states(database: Database) -> dict[str, str]:
    with database.transaction() as session:
        rows = session.execute(
            select(Subscriber.email, Subscription.status).join(
                Subscription, Subscription.subscriber_id == Subscriber.id
            )
        ).all()
    return dict(rows)


def suppressed(database: Database, address: str) -> set[tuple[str, str]]:
    with database.transaction() as session:
        return {(row.briefing, row.reason) for row in suppressions_of(session, address)}


def event_count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(BounceEvent)) or 0


def test_mail_that_comes_back_ends_the_right_subscriptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIEFING_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    with smtp_server() as server:
        config = make_project(
            tmp_path / "site",
            delivery=delivery_settings(server),
            bounces={"domain": "news.example.org", "soft_limit": 2},
            webhooks={"generic": True},
        )
        database = open_database(config.database)
        ingest(config, database, NOW - timedelta(hours=1))
        subscribe(config, database, [reader(n) for n in range(10)])
        dispatch(config, database, SIGNER, AT)
        send(config, database)
        first_run: dict[str, Received] = {m.recipient: m for m in server.handler.received}
    assert set(first_run) == {reader(n) for n in range(10)}

    # Every message names its delivery: in the envelope sender and in a header, never the address.
    with database.transaction() as session:
        ids = dict(
            session.execute(
                select(Subscriber.email, Delivery.id)
                .join(Edition, Edition.subscriber_id == Subscriber.id)
                .join(Delivery, Delivery.edition_id == Edition.id)
            ).all()
        )
    tokens = {}
    for address, received in first_run.items():
        local, _, domain = received.sender.partition("@")
        assert domain == "news.example.org" and local.startswith("bounces+")
        token = local.removeprefix("bounces+")
        assert SIGNER.verify_delivery(token) == ids[address]
        assert "reader" not in received.sender
        message = email.message_from_bytes(received.data)
        assert message["X-Briefing-Delivery"] == token
        tokens[address] = token

    def original(n: int) -> bytes:
        return first_run[reader(n)].data

    def message_id(n: int) -> str:
        return str(email.message_from_bytes(original(n))["Message-ID"])

    def unsubscribe_subject(n: int) -> str:
        unsubscribe_uri = next(
            uri
            for uri in str(email.message_from_bytes(original(n))["List-Unsubscribe"]).split(",")
            if "mailto:" in uri
        )
        return unsubscribe_uri.split("subject=")[1].rstrip(">").replace("%20", " ")

    returned = [
        # 0: no such user, to its bounce address.
        dsn(
            to=f"bounces+{tokens[reader(0)]}@news.example.org",
            recipient=reader(0),
            status="5.1.1",
            message_id="<b0@mx.example.net>",
        ),
        # 1: mailbox full twice (the soft limit), tied by the original Message-ID only.
        *(
            dsn(
                to="briefing@news.example.org",
                recipient=reader(1),
                status="4.2.2",
                action="delayed",
                original_headers=f"Message-ID: {message_id(1)}\r\n",
                message_id=f"<b1-{n}@mx.example.net>",
            )
            for n in range(2)
        ),
        # 2: a complaint with the original attached.
        arf(recipient=reader(2), original=original(2)),
        # 3: mail to the List-Unsubscribe mailto.
        unsubscribe_mail(
            sender=reader(3), to="unsubscribe@news.example.org", subject=unsubscribe_subject(3)
        ),
        # 4: out of office.
        auto_reply(sender=reader(4), in_reply_to=message_id(4)),
        # 5: a forged bounce naming an address, no token, no Message-ID of ours.
        dsn(
            to="briefing@news.example.org",
            recipient=reader(5),
            status="5.1.1",
            message_id="<forged@evil.example>",
        ),
        # 6: a policy refusal by its token: recorded, never acted on.
        dsn(
            to=f"bounces+{tokens[reader(6)]}@news.example.org",
            recipient=reader(6),
            status="5.7.1",
            message_id="<b6@mx.example.net>",
        ),
    ]
    box = maildir_of(tmp_path / "Maildir", returned)

    dry = run_cli(config, "bounces", "import", str(box), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    lines = [json.loads(line) for line in dry.output.splitlines()]
    assert len(lines) == len(returned)
    assert all(set(line) == {"file", "kind", "recipients", "status", "delivery"} for line in lines)
    by_kind = sorted((line["kind"], tuple(line["recipients"]), line["status"]) for line in lines)
    assert by_kind == sorted(
        [
            ("hard", (reader(0),), "5.1.1"),
            ("soft", (reader(1),), "4.2.2"),
            ("soft", (reader(1),), "4.2.2"),
            ("complaint", (reader(2),), None),
            ("unsubscribe", (reader(3),), None),
            ("auto-reply", (reader(4),), None),
            ("hard", (reader(5),), "5.1.1"),
            ("hard", (reader(6),), "5.7.1"),
        ]
    )
    hard0 = next(line for line in lines if line["recipients"] == [reader(0)])
    assert hard0["delivery"] == ids[reader(0)]
    assert event_count(database) == 0
    assert set(subscription_states(database).values()) == {"active"}

    result = run_cli(config, "bounces", "import", str(box))
    assert result.exit_code == 0, result.output

    # The same loop through the relay: a hard bounce to its bounce address and a mail to the
    # List-Unsubscribe mailto, handed over by LMTP as a Postfix transport map would.
    with receiver(config, database) as inbound:
        client = smtplib.LMTP(inbound.host, inbound.port)
        try:
            bounced = dsn(
                to="MAILER-DAEMON", recipient=reader(7), status="5.1.1", message_id="<b7@mx>"
            )
            assert (
                client.sendmail("", [f"bounces+{tokens[reader(7)]}@news.example.org"], bounced)
                == {}
            )
            unsubscribing = unsubscribe_mail(
                sender=reader(8),
                to="Unsubscribe <unsubscribe@news.example.org>",
                subject=unsubscribe_subject(8),
            ).replace(b"<unsub-1@example.com>", b"<unsub-8@example.com>")
            assert client.sendmail(reader(8), ["unsubscribe@news.example.org"], unsubscribing) == {}
            client.mail("")
            code, _ = client.rcpt("postmaster@news.example.org")
            assert code == 550
        finally:
            client.quit()

    # And a provider's webhook: a hard bounce posted to `briefing web` with our delivery token.
    app = create_app(config, database, [KEY], clock=lambda: NOW, drain_interval=None)
    with live_server(app) as origin:
        answer = httpx.post(
            f"{origin}/b/hooks/events",
            json=[
                {
                    "kind": "hard",
                    "recipient": reader(9),
                    "status": "5.1.1",
                    "delivery": tokens[reader(9)],
                    "id": "esp-event-9",
                }
            ],
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            timeout=10,
        )
    assert answer.status_code == 200, answer.text

    expected_subscriptions = {reader(n): "active" for n in range(10)}
    expected_subscriptions.update(
        {reader(0): "bounced", reader(1): "bounced", reader(2): "complained"}
    )
    expected_subscriptions[reader(3)] = "unsubscribed"
    expected_subscriptions.update(
        {reader(7): "bounced", reader(8): "unsubscribed", reader(9): "bounced"}
    )
    assert subscription_states(database) == expected_subscriptions
    assert suppressed(database, reader(0)) == {("*", "bounced")}
    assert suppressed(database, reader(1)) == {("*", "bounced")}
    assert suppressed(database, reader(2)) == {("*", "complained")}
    assert suppressed(database, reader(3)) == {("daily", "unsubscribed")}
    assert suppressed(database, reader(7)) == {("*", "bounced")}
    assert suppressed(database, reader(8)) == {("daily", "unsubscribed")}
    assert suppressed(database, reader(9)) == {("*", "bounced")}
    for n in (4, 5, 6):
        assert suppressed(database, reader(n)) == set()
    ledger = statuses(database)
    assert (ledger[reader(0)], ledger[reader(1)], ledger[reader(2)]) == (
        "bounced",
        "bounced",
        "complained",
    )
    assert all(ledger[reader(n)] == "sent" for n in (3, 4, 5, 6))
    with database.transaction() as session:
        events = {
            (e.email, e.kind, e.status, e.matched_by) for e in session.scalars(select(BounceEvent))
        }
    assert (reader(5), "hard", "5.1.1", "address") in events  # recorded, not acted on
    assert (reader(6), "hard", "5.7.1", "token") in events
    assert (reader(1), "soft", "4.2.2", "message-id") in events
    assert (reader(7), "hard", "5.1.1", "token") in events
    assert (reader(8), "unsubscribe", None, "token") in events
    assert (reader(9), "hard", "5.1.1", "token") in events
    assert ledger[reader(7)] == ledger[reader(9)] == "bounced"
    count = event_count(database)
    assert count == len(returned) + 3

    # The same reports again: nothing new.
    again = run_cli(config, "bounces", "import", str(box))
    assert again.exit_code == 0, again.output
    assert event_count(database) == count
    assert subscription_states(database) == expected_subscriptions

    listing = run_cli(config, "bounces", "--json")
    assert listing.exit_code == 0 and len(listing.output.splitlines()) == count
    shown = run_cli(config, "subscribers", "show", reader(0), "--json")
    assert json.loads(shown.output)["bounces"][0]["status"] == "5.1.1"
    table = run_cli(config, "bounces")
    assert table.exit_code == 0 and "matched by address" in table.output
    shown = run_cli(config, "subscribers", "show", reader(0))
    assert shown.exit_code == 0 and "hard 5.1.1 (token): bounced" in shown.output

    # The next edition is dispatched only to those still subscribed, and nothing reaches the rest.
    later = AT + timedelta(days=1)
    with smtp_server() as server:
        config = make_project(
            tmp_path / "site",
            delivery=delivery_settings(server),
            bounces={"domain": "news.example.org", "soft_limit": 2},
        )
        # A new story, so the next edition has something to send.
        markdown_article(
            tmp_path / "site" / "content" / "world",
            "next-day.md",
            title="Harbour reopens after the storm",
            url="https://news.example.org/world/next-day",
            published=(later - timedelta(hours=2)).isoformat(),
            body="The harbour reopened on Friday. Ferries resumed their crossings.",
        )
        ingest(config, database, later - timedelta(hours=1))
        dispatch(config, database, SIGNER, later)
        transport = make_transport(config)
        try:
            deliver(config, database, SIGNER, transport, clock=lambda: later)
        finally:
            transport.close()
        second = {m.recipient for m in server.handler.received}
    with database.transaction() as session:
        dispatched = set(
            session.scalars(
                select(Subscriber.email)
                .join(Edition, Edition.subscriber_id == Subscriber.id)
                .where(Edition.issue_date == later.date())
            )
        )
    assert dispatched == {reader(4), reader(5), reader(6)}
    assert second == {reader(4), reader(5), reader(6)}


def test_a_confirmation_carries_its_delivery_token_signed_with_dkim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dkim

    from briefing.audience.confirmations import composers, queue_confirmation
    from briefing.audience.lifecycle import start_signup
    from briefing.deliver.dkim import DkimSigner
    from briefing.deliver.transactional import drain_transactional
    from tests.unit.deliver.test_delivery_parts import rsa_key

    key_path, record = rsa_key(tmp_path)
    monkeypatch.setenv("BRIEFING_DKIM_KEY_FILE", str(key_path))
    with smtp_server() as server:
        config = make_project(
            tmp_path / "site",
            delivery=delivery_settings(server, dkim={"selector": "brief2026"}),
            bounces={"domain": "news.example.org"},
        )
        database = open_database(config.database)
        with database.transaction() as session:
            signup = start_signup(
                session, config, email="new@example.com", briefing="daily", source="test", now=AT
            )
            queue_confirmation(session, config, signup, AT)
        counts = drain_transactional(
            config,
            database,
            composers(config, SIGNER),
            dkim=DkimSigner.from_config(config),
            clock=lambda: AT,
            signer=SIGNER,
        )
        assert counts["sent"] == 1
        [received] = server.handler.received
    token = received.sender.removeprefix("bounces+").removesuffix("@news.example.org")
    with database.transaction() as session:
        delivery_id = session.scalar(select(Delivery.id))
    assert SIGNER.verify_delivery(token) == delivery_id
    assert email.message_from_bytes(received.data)["X-Briefing-Delivery"] == token

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"brief2026._domainkey.news.example.org." else b""

    assert dkim.verify(received.data, dnsfunc=dns)


def test_the_bounce_domain_must_align_with_the_from_domain(tmp_path: Path) -> None:
    from briefing.errors import BriefingError

    with pytest.raises(BriefingError, match="not aligned"):
        make_project(tmp_path, bounces={"domain": "bounces.elsewhere.example.net"})
    config = make_project(tmp_path / "ok", bounces={"domain": "bounce.example.org"})
    assert config.bounces.address("t") == "bounces+t@bounce.example.org"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_to_the_bounce_events_keeps_rows(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from tests.integration.test_transactional_mail import ROWS_0002

    database = unmigrated(backend, tmp_path, request)
    try:
        upgrade_to(database, "0002")
        with database.engine.begin() as connection:
            for statement in ROWS_0002:
                connection.execute(text(statement))
        upgrade_to(database, "0003")
        database.upgrade()
        insert = (
            "INSERT INTO bounce_events (fingerprint, received_at, kind, status, source, "
            "delivery_id, matched_by, action) VALUES (:f, '2026-11-22 07:00:00', :k, '5.1.1', "
            "'import', 1, 'token', 'bounced')"
        )
        with database.engine.begin() as connection:
            assert connection.execute(text("SELECT status FROM deliveries")).scalar() == "sent"
            connection.execute(text(insert), {"f": "a", "k": "hard"})
        for values in ({"f": "a", "k": "hard"}, {"f": "b", "k": "bogus"}):
            with pytest.raises(IntegrityError), database.engine.begin() as connection:
                connection.execute(text(insert), values)
    finally:
        database.dispose()


def test_the_envelope_sender_names_the_delivery_not_the_address() -> None:
    from briefing.config import SmtpConfig
    from briefing.deliver.transports.smtp import SmtpTransport

    def sender(template: str | None, bounce: str | None, token: str | None) -> str:
        settings = SmtpConfig(host="relay.invalid", security="none", envelope_sender=template)
        transport = SmtpTransport(settings, bounce_sender=bounce)
        return transport.envelope_sender(
            "briefing@news.example.org", briefing="daily", recipient="ann@example.com", token=token
        )

    token = SIGNER.delivery_token(5)
    bounce = "bounces+{token}@news.example.org"
    assert sender(None, bounce, token) == f"bounces+{token}@news.example.org"
    assert sender("b+{briefing}.{token}@news.example.org", bounce, token) == (
        f"b+daily.{token}@news.example.org"
    )
    # No delivery (a redirected test send): the From address, not an untraceable bounce address.
    assert sender(None, bounce, None) == "briefing@news.example.org"
    assert sender(None, None, token) == "briefing@news.example.org"
    # The deprecated VERP form still works.
    assert sender("b+{recipient}@news.example.org", None, token) == (
        "b+ann=example.com@news.example.org"
    )


def test_import_moves_what_it_handled_with_move_to(tmp_path: Path) -> None:
    config = make_project(tmp_path / "site", bounces={"domain": "news.example.org"})
    database = open_database(config.database)
    first = dsn(
        to="briefing@news.example.org",
        recipient=reader(0),
        status="5.1.1",
        message_id="<m1@mx.example.net>",
    )
    second = auto_reply(sender=reader(1), in_reply_to="<x@example.com>")
    box = maildir_of(tmp_path / "Maildir", [first, second, b"\r\n\r\nno headers here\r\n"])
    handled = tmp_path / "handled"

    dry = run_cli(config, "bounces", "import", str(box), "--move-to", str(handled), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not handled.exists() and len(list((box / "new").iterdir())) == 3

    result = run_cli(config, "bounces", "import", str(box), "--move-to", str(handled))
    assert result.exit_code == 0, result.output
    assert "no headers here" not in result.output
    assert "not handled: no header fields" in result.stderr
    moved = sorted(path.name for path in (handled / "cur").iterdir())
    assert len(moved) == 2 and all(name.endswith(":2,") for name in moved)
    assert {(handled / "new").is_dir(), (handled / "tmp").is_dir()} == {True}
    left = list((box / "new").iterdir()) + list((box / "cur").iterdir())
    assert len(left) == 1 and left[0].read_bytes().endswith(b"no headers here\r\n")
    kinds = sorted(
        json.loads(line)["kind"]
        for line in run_cli(
            config, "bounces", "import", str(handled), "--dry-run", "--json"
        ).stdout.splitlines()
    )
    assert kinds == ["auto-reply", "hard"]
    assert event_count(database) == 2

    # The next cron run reads only what is left: nothing new recorded.
    again = run_cli(config, "bounces", "import", str(box), "--move-to", str(handled))
    assert again.exit_code == 0 and event_count(database) == 2

    mbox = tmp_path / "returned.mbox"
    mbox.write_bytes(b"From MAILER-DAEMON Thu Nov 26 07:00:00 2026\n" + first)
    refused = run_cli(config, "bounces", "import", str(mbox), "--move-to", str(handled))
    assert refused.exit_code != 0 and "is an mbox" in str(refused.exception)
    database.dispose()
