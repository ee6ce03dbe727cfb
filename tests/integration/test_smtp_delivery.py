"""Delivery over SMTP against a real aiosmtpd server told to fail: the ledger and the wire agree."""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from pathlib import Path

import pytest
import trustme
from sqlalchemy import select

from briefing.deliver import deliver, make_transport
from briefing.domain.tokens import InertTokenError, Purpose, Signer
from briefing.store.ledger import cancel, parse_target
from briefing.store.schema import Delivery
from briefing.store.suppressions import suppression_for
from tests.support.delivery import (
    AT,
    attempts_of,
    reader,
    smtp_project,
    status_counts,
    statuses,
    without_date,
)
from tests.support.factories import KEY
from tests.support.message_checks import check_message
from tests.support.smtp_server import Handler, Rule, smtp_server

SIGNER = Signer([KEY])


def run(config, database, **kwargs):  # type: ignore[no-untyped-def]
    transport = make_transport(config)
    try:
        return deliver(
            config, database, SIGNER, transport, clock=kwargs.pop("clock", lambda: AT), **kwargs
        )
    finally:
        transport.close()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lock-step"])
def test_a_faulty_server_ends_with_everyone_deliverable_delivered_once(
    tmp_path: Path, pipelining: bool
) -> None:
    rules = {
        reader(1): Rule(rcpt="451 4.3.0 mailbox busy, try later", times=1),
        reader(2): Rule(rcpt="550 5.1.1 <reader2@example.com>: no such user"),
        reader(3): Rule(rcpt="421 4.3.2 shutting down", times=1, close=True),
        reader(4): Rule(drop=True, times=1),  # hangs up after the final dot: outcome unknown
        reader(5): Rule(delay=0.3),
        reader(6): Rule(data="451 4.7.1 slow down please", times=1),
        reader(7): Rule(data="554 5.7.1 message refused by policy"),
    }
    with smtp_server(Handler(rules=rules, pipelining=pipelining)) as server:
        config, database = smtp_project(tmp_path, server, count=12)
        report = run(config, database)
    handler = server.handler
    expected = {reader(n): "sent" for n in range(12)}
    expected[reader(2)] = "bounced"
    expected[reader(7)] = "failed"
    assert statuses(database) == expected
    assert (report.sent, report.bounced, report.failed, report.stopped) == (10, 1, 1, None)
    received = handler.per_recipient()
    assert reader(2) not in received and reader(7) not in received
    # Everyone else exactly once, but for the message whose reply was lost (the allowed duplicate).
    assert {r: c for r, c in received.items() if r != reader(4)} == {
        r: 1 for r, s in expected.items() if s == "sent" and r != reader(4)
    }
    lost = [m for m in handler.received if m.recipient == reader(4)]
    assert len(lost) == 2 and lost[0].message_id == lost[1].message_id
    assert without_date(lost[0].data) == without_date(lost[1].data)
    for message in handler.received:
        check_message(message.data, config.site.base_url)
    # The ledger keeps every try with its stage and reply.
    first, second = attempts_of(database, reader(1))
    assert (first.outcome, first.stage, first.code) == ("deferred", "rcpt", 451)
    assert (second.outcome, second.code) == ("sent", 250)
    assert [a.outcome for a in attempts_of(database, reader(3))] == ["deferred", "sent"]
    assert attempts_of(database, reader(4))[0].stage == "data-end"
    bounce = attempts_of(database, reader(2))
    assert len(bounce) == 1 and "5.1.1" in (bounce[0].reply or "")
    with database.transaction() as session:
        assert suppression_for(session, reader(2), "daily") is not None
        assert suppression_for(session, reader(7), "daily") is None
    assert handler.connections >= 3  # the 421 and the dropped connection were replaced


def test_temporary_failures_are_left_deferred_then_expire_at_the_deadline(tmp_path: Path) -> None:
    rules = {reader(0): Rule(rcpt="452 4.2.2 mailbox full")}
    with smtp_server(Handler(rules=rules)) as server:
        config, database = smtp_project(tmp_path, server, count=3)
        report = run(config, database)
        assert report.deferred == 1 and report.sent == 2 and report.retries == 2
        assert [a.outcome for a in attempts_of(database, reader(0))] == ["deferred"] * 3
        with database.transaction() as session:
            row = session.scalars(select(Delivery).where(Delivery.status == "deferred")).one()
            assert row.next_attempt_at == AT + config.delivery.retry.later
            assert row.owner is None and row.last_code == 452
        # A later run before the next attempt time leaves it alone ...
        assert run(config, database).handled == 0
        # ... and one after the deadline (send time 07:00 + 3h) expires it without sending.
        late = run(config, database, clock=lambda: AT.replace(hour=10, minute=1))
    assert late.expired == 1 and statuses(database)[reader(0)] == "expired"
    assert server.handler.tries[reader(0)] == 3


def test_a_reply_that_never_comes_is_a_timeout_and_deferred(tmp_path: Path) -> None:
    rules = {reader(0): Rule(delay=1.5, times=1)}
    with smtp_server(Handler(rules=rules)) as server:
        config, database = smtp_project(tmp_path, server, count=2, smtp={"data_timeout": 0.3})
        report = run(config, database)
    assert report.sent == 2
    first = attempts_of(database, reader(0))[0]
    assert (first.outcome, first.stage) == ("deferred", "data-end")
    assert "timed out" in (first.reply or "")


def test_refused_auth_stops_the_run_with_nobody_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIEFING_SMTP_PASSWORD", "wrong")
    with smtp_server(refuse_auth=True) as server:
        config, database = smtp_project(tmp_path, server, count=5, smtp={"username": "news"})
        report = run(config, database)
    assert report.stopped and "auth" in report.stopped and "535" in report.stopped
    assert report.sent == report.failed == 0
    assert status_counts(database) == {"pending": 5}
    assert server.handler.received == []


def test_a_good_login_sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SMTP_PASSWORD", "s3cret")
    with smtp_server(auth=("news", "s3cret")) as server:
        config, database = smtp_project(tmp_path, server, count=3, smtp={"username": "news"})
        assert run(config, database).sent == 3


def test_auth_required_but_not_configured_stops_the_run(tmp_path: Path) -> None:
    with smtp_server(auth=("news", "s3cret")) as server:
        config, database = smtp_project(tmp_path, server, count=4)
        report = run(config, database)
    assert report.stopped and "530" in report.stopped
    assert report.stop_hint and "smtp.username" in report.stop_hint
    assert status_counts(database) == {"pending": 4}


def test_relaying_denied_stops_the_run(tmp_path: Path) -> None:
    handler = Handler(default=Rule(rcpt="554 5.7.1 <reader0@example.com>: Relay access denied"))
    with smtp_server(handler) as server:
        config, database = smtp_project(tmp_path, server, count=4)
        report = run(config, database)
    assert report.stopped and "Relay access denied" in report.stopped
    assert status_counts(database) == {"pending": 4} and report.failed == 0


def test_connect_refused_stops_the_run(tmp_path: Path) -> None:
    with smtp_server() as server:
        config, database = smtp_project(tmp_path, server, count=3)
    # The server is gone: its port now refuses connections.
    report = run(config, database)
    assert report.stopped and "cannot open a connection after 2 attempt(s)" in report.stopped
    assert status_counts(database) == {"pending": 3}


def test_the_same_refusal_for_many_in_a_row_stops_the_run_and_fails_nobody(
    tmp_path: Path,
) -> None:
    handler = Handler(default=Rule(data="554 5.7.0 message looks like spam"))
    with smtp_server(handler) as server:
        config, database = smtp_project(
            tmp_path, server, count=12, same_failure_limit=4, smtp={"pool_size": 1}
        )
        report = run(config, database)
    assert report.stopped and "4 recipients in a row" in report.stopped
    assert "554 5.7.0 message looks like spam" in report.stopped
    assert report.failed == 0 and report.failures == []
    assert status_counts(database) == {"pending": 12}


def test_hard_bounces_in_a_row_are_the_recipients_and_do_not_stop_the_run(
    tmp_path: Path,
) -> None:
    handler = Handler(default=Rule(rcpt="550 5.1.1 no such user"))
    with smtp_server(handler) as server:
        config, database = smtp_project(
            tmp_path, server, count=5, same_failure_limit=3, smtp={"pool_size": 1}
        )
        report = run(config, database)
    assert report.stopped is None and report.bounced == 5
    assert status_counts(database) == {"bounced": 5}
    with database.transaction() as session:
        assert all(suppression_for(session, reader(n), "daily") is not None for n in range(5))


def test_a_non_ascii_address_the_relay_cannot_take_fails_alone(tmp_path: Path) -> None:
    with smtp_server() as server:
        addresses = ["josé@example.com", reader(1), reader(2)]
        config, database = smtp_project(tmp_path, server, addresses=addresses, smtputf8=True)
        report = run(config, database)
    assert report.sent == 2 and report.failed == 1
    assert "josé@example.com" in report.failures[0].recipient
    assert "SMTPUTF8" in report.failures[0].reply
    assert statuses(database)["josé@example.com"] == "failed"


def test_with_smtputf8_a_non_ascii_address_goes_out_through_a_relay_that_offers_it(
    tmp_path: Path,
) -> None:
    handler = Handler()
    with smtp_server(handler, smtputf8=True) as server:
        addresses = ["josé@example.com", reader(1)]
        config, database = smtp_project(tmp_path, server, addresses=addresses, smtputf8=True)
        report = run(config, database)
    assert report.sent == 2 and report.failed == 0, report.failures
    (received,) = [r for r in handler.received if r.recipient == "josé@example.com"]
    assert "To: Reader 0 <josé@example.com>".encode() in received.data.split(b"\r\n\r\n", 1)[0]


def test_connections_are_reused_up_to_the_limit_then_replaced(tmp_path: Path) -> None:
    with smtp_server() as server:
        config, database = smtp_project(
            tmp_path, server, count=9, smtp={"pool_size": 1, "messages_per_connection": 2}
        )
        assert run(config, database).sent == 9
    assert server.handler.connections == 5


def _tls_contexts(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_starttls_checks_the_certificate_against_the_configured_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with smtp_server(starttls=_tls_contexts(ca)) as server:
        config, database = smtp_project(
            tmp_path / "good",
            server,
            count=2,
            smtp={"security": "starttls", "ca_file": str(ca_file)},
        )
        assert run(config, database).sent == 2
        # Without the relay's CA the certificate cannot be trusted: the run stops, nobody fails.
        config, database = smtp_project(
            tmp_path / "bad", server, count=2, smtp={"security": "starttls"}
        )
        report = run(config, database)
    assert report.stopped and "tls" in report.stopped and "certificate" in report.stopped
    assert status_counts(database) == {"pending": 2}


def test_starttls_refused_when_the_relay_does_not_offer_it(tmp_path: Path) -> None:
    with smtp_server() as server:
        config, database = smtp_project(tmp_path, server, count=2, smtp={"security": "starttls"})
        report = run(config, database)
    assert report.stopped and "does not offer STARTTLS" in report.stopped


def test_implicit_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with smtp_server(implicit_tls=_tls_contexts(ca)) as server:
        config, database = smtp_project(
            tmp_path, server, count=3, smtp={"security": "tls", "ca_file": str(ca_file)}
        )
        assert run(config, database).sent == 3
    assert len(server.handler.received) == 3


def test_verp_envelope_sender(tmp_path: Path) -> None:
    with smtp_server() as server:
        config, database = smtp_project(
            tmp_path,
            server,
            count=2,
            smtp={"envelope_sender": "bounces+{briefing}-{recipient}@news.example.org"},
        )
        run(config, database)
    senders = {m.recipient: m.sender for m in server.handler.received}
    assert senders[reader(1)] == "bounces+daily-reader1=example.com@news.example.org"


def test_redirect_sends_everything_to_one_address_and_leaves_the_ledger_alone(
    tmp_path: Path,
) -> None:
    with smtp_server() as server:
        config, database = smtp_project(
            tmp_path, server, count=3, redirect_to="editor@news.example.org"
        )
        with database.transaction() as session:
            ledger_ids = set(session.scalars(select(Delivery.message_id)))
        report = run(config, database)
    assert report.sent == 3 and report.redirected_to == "editor@news.example.org"
    received = server.handler.received
    assert {m.recipient for m in received} == {"editor@news.example.org"}
    assert status_counts(database) == {"pending": 3}
    with database.transaction() as session:
        assert all(d.attempts == 0 and d.owner is None for d in session.scalars(select(Delivery)))
    intended = set()
    for m in received:
        message, _text, _html = check_message(m.data, config.site.base_url)
        intended.add(str(message["X-Briefing-Intended-Recipient"]))
        assert m.message_id not in ledger_ids
        assert str(message["To"]) == "editor@news.example.org"
        token = str(message["List-Unsubscribe"]).split("/u/")[1][:32]
        with pytest.raises(InertTokenError):
            SIGNER.verify(token, Purpose.UNSUBSCRIBE)
    assert intended == {f"Reader {n} <{reader(n)}>" for n in range(3)}


def test_cancel_stops_a_live_run_at_its_next_heartbeat(tmp_path: Path) -> None:
    started = threading.Event()

    def first(_message: object) -> None:
        started.set()

    handler = Handler(default=Rule(delay=0.05), on_message=first)
    with smtp_server(handler) as server:
        config, database = smtp_project(tmp_path, server, count=40, smtp={"pool_size": 1})
        outcome: dict[str, object] = {}
        thread = threading.Thread(target=lambda: outcome.update(report=run(config, database)))
        thread.start()
        assert started.wait(10)
        with database.transaction() as session:
            stopped = cancel(session, parse_target("daily:2026-11-26", config), AT, "story pulled")
        thread.join(30)
    counts = status_counts(database)
    # The message on the wire when the cancel landed may have been open too: it still
    # ends up sent, because the relay took it.
    assert stopped.cancelled + stopped.in_flight >= 39
    assert stopped.in_flight >= 1  # the live run's claims: reported apart, not as cancelled
    assert counts["sent"] == len(server.handler.received) < 40
    assert counts["sent"] + counts["cancelled"] == 40
    report = outcome["report"]
    assert report.cancelled > 0  # type: ignore[attr-defined]


def test_the_engine_runs_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    rules = {
        reader(1): Rule(rcpt="451 4.3.0 mailbox busy, try later", times=1),
        reader(2): Rule(rcpt="550 5.1.1 <reader2@example.com>: no such user"),
    }
    with smtp_server(Handler(rules=rules, pipelining=True)) as server:
        config, database = smtp_project(tmp_path, server, count=8, database_url=postgres_url)
        try:
            report = run(config, database)
            expected = {reader(n): "sent" for n in range(8)}
            expected[reader(2)] = "bounced"
            assert statuses(database) == expected
            assert (report.sent, report.bounced, report.stopped) == (7, 1, None)
            with database.transaction() as session:
                assert suppression_for(session, reader(2), "daily") is not None
        finally:
            database.dispose()
    sent = {r for r, s in expected.items() if s == "sent"}
    assert server.handler.per_recipient() == dict.fromkeys(sent, 1)


def test_progress_is_plain_lines_off_a_terminal_and_a_table_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from briefing.cli import progress
    from briefing.deliver.report import DeliveryReport
    from briefing.domain.states import DeliveryState

    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    counts = Counter({DeliveryState.SENT: 40, DeliveryState.DEFERRED: 2, DeliveryState.BOUNCED: 1})
    report = DeliveryReport(counts=counts, elapsed=2.0)
    with progress.live_progress(console, 50) as show:
        show(report)
    console.print(progress.report_table(report))
    text = out.getvalue()
    assert "sending: 43/50 handled, sent 40  deferred 2  failed 1  20/s" in text
    assert "bounced" in text and "address does not exist" in text and "20 messages/s" in text
    terminal = io.StringIO()
    with progress.live_progress(Console(file=terminal, force_terminal=True, width=120), 50) as bar:
        bar(report)  # a live bar on a terminal: transient, gone when the run ends
    assert "sending: " not in terminal.getvalue()
