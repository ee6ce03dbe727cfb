"""`briefing inbound`: the LMTP/SMTP receiver of returned mail, spoken to with smtplib."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from briefing.store.schema import BounceEvent
from briefing.store.suppressions import suppressions_of
from tests.support.bounces import dsn
from tests.support.delivery import reader, statuses
from tests.support.factories import KEY, config_dict, make_project
from tests.support.inbound import BOUNCE_DOMAIN, SIGNER, SentEdition, receiver, send_first_edition

UNSUBSCRIBE = "unsubscribe@news.example.org"


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())


@pytest.fixture
def sent(tmp_path: Path) -> Iterator[SentEdition]:
    edition = send_first_edition(tmp_path / "site", 3)
    yield edition
    edition.database.dispose()


def events(edition: SentEdition) -> list[tuple[str | None, str, str | None, str]]:
    with edition.database.transaction() as session:
        return [
            (e.email, e.kind, e.status, e.source)
            for e in session.scalars(select(BounceEvent).order_by(BounceEvent.id))
        ]


def hard_bounce(edition: SentEdition, n: int, message_id: str) -> bytes:
    # As a remote MX returns it: to the envelope sender, naming the reader; the token is
    # only in the envelope (the receiver adds Delivered-To, as a mailbox delivery would).
    return dsn(to="MAILER-DAEMON", recipient=reader(n), status="5.1.1", message_id=message_id)


def test_only_our_addresses_are_accepted(sent: SentEdition) -> None:
    forged = SIGNER.delivery_token(1)[:-1] + ("a" if SIGNER.delivery_token(1)[-1] != "a" else "b")
    with receiver(sent.config, sent.database) as inbound:
        client = smtplib.LMTP(inbound.host, inbound.port)
        try:
            code, _ = client.ehlo()
            assert code == 250
            assert client.mail("")[0] == 250
            ours = [
                sent.bounce_address(reader(0)),
                sent.bounce_address(reader(0)).upper(),  # some MTAs case-fold local parts
                f"bounces@{BOUNCE_DOMAIN}",
                UNSUBSCRIBE,
            ]
            for address in ours:
                assert client.rcpt(address)[0] == 250, address
            foreign = [
                "someone@example.com",
                f"postmaster@{BOUNCE_DOMAIN}",
                f"bounces+{forged}@{BOUNCE_DOMAIN}",
                f"bounces+notatoken@{BOUNCE_DOMAIN}",
                f"bounces+{SIGNER.delivery_token(1)}@elsewhere.example.org",
            ]
            for address in foreign:
                code, text = client.rcpt(address)
                assert (code, text[:5]) == (550, b"5.1.1"), address
        finally:
            client.quit()
    assert events(sent) == []


def test_a_hard_bounce_over_lmtp_ends_the_subscription_once(sent: SentEdition) -> None:
    raw = hard_bounce(sent, 0, "<lmtp-1@mx.example.net>")
    with receiver(sent.config, sent.database) as inbound:
        for _ in range(2):  # the relay sends the same report twice: recorded once
            client = smtplib.LMTP(inbound.host, inbound.port)
            try:
                refused = client.sendmail("", [sent.bounce_address(reader(0))], raw)
            finally:
                client.quit()
            assert refused == {}
    assert events(sent) == [(reader(0), "hard", "5.1.1", "inbound")]
    assert statuses(sent.database)[reader(0)] == "bounced"
    with sent.database.transaction() as session:
        assert {(s.briefing, s.reason) for s in suppressions_of(session, reader(0))} == {
            ("*", "bounced")
        }


def test_lmtp_replies_once_per_recipient(sent: SentEdition) -> None:
    raw = hard_bounce(sent, 1, "<lmtp-2@mx.example.net>")
    with receiver(sent.config, sent.database) as inbound:
        client = smtplib.LMTP(inbound.host, inbound.port)
        try:
            client.ehlo()
            client.mail("")
            client.rcpt(sent.bounce_address(reader(1)))
            client.rcpt(sent.bounce_address(reader(2)))
            first = client.data(raw)
            second = client.getreply()
            assert first[0] == 250 and second[0] == 250
            assert sent.bounce_address(reader(1)).encode() in first[1]
            assert sent.bounce_address(reader(2)).encode() in second[1]
            assert client.noop()[0] == 250  # the conversation is still in step
        finally:
            client.quit()
    # One report about reader 1, whichever copy: recorded once, acted on by the first's token.
    assert events(sent) == [(reader(1), "hard", "5.1.1", "inbound")]
    assert statuses(sent.database)[reader(1)] == "bounced"
    assert statuses(sent.database)[reader(2)] == "sent"


def test_a_message_bigger_than_the_limit_is_refused_per_recipient(sent: SentEdition) -> None:
    raw = hard_bounce(sent, 0, "<big@mx.example.net>") + b"x" * 998 + b"\r\n"
    raw += (b"y" * 998 + b"\r\n") * 20
    with receiver(sent.config, sent.database, max_bytes=10_000) as inbound:
        client = smtplib.LMTP(inbound.host, inbound.port)
        try:
            client.ehlo()
            assert client.has_extn("size") and client.esmtp_features["size"] == "10000"
            # Declared too big: refused at MAIL.
            assert client.mail("", ["SIZE=30000"])[0] == 552
            client.rset()
            # Not declared: refused after the data, once per recipient.
            client.mail("")
            client.rcpt(sent.bounce_address(reader(0)))
            client.rcpt(UNSUBSCRIBE)
            first = client.data(raw)
            second = client.getreply()
            assert (first[0], second[0]) == (552, 552)
            assert b"10000 bytes" in first[1]
            assert client.noop()[0] == 250
        finally:
            client.quit()
    assert events(sent) == []
    assert statuses(sent.database)[reader(0)] == "sent"


def test_a_failure_to_store_answers_451_and_the_retry_is_recorded(sent: SentEdition) -> None:
    raw = hard_bounce(sent, 2, "<retry@mx.example.net>")
    path = sent.config.database.removeprefix("sqlite:///")
    with receiver(sent.config, sent.database) as inbound:
        with sqlite3.connect(path) as connection:
            connection.execute("ALTER TABLE bounce_events RENAME TO bounce_events_away")
        client = smtplib.LMTP(inbound.host, inbound.port)
        try:
            client.ehlo()
            client.mail("")
            client.rcpt(sent.bounce_address(reader(2)))
            code, text = client.data(raw)
            assert (code, text[:5]) == (451, b"4.3.0")
        finally:
            client.quit()
        assert statuses(sent.database)[reader(2)] == "sent"  # nothing half-done
        with sqlite3.connect(path) as connection:
            connection.execute("ALTER TABLE bounce_events_away RENAME TO bounce_events")
        client = smtplib.LMTP(inbound.host, inbound.port)
        try:
            assert client.sendmail("", [sent.bounce_address(reader(2))], raw) == {}
        finally:
            client.quit()
    assert events(sent) == [(reader(2), "hard", "5.1.1", "inbound")]
    assert statuses(sent.database)[reader(2)] == "bounced"


def test_smtp_mode_gives_one_reply_and_refuses_what_is_not_mail(sent: SentEdition) -> None:
    raw = hard_bounce(sent, 0, "<smtp-1@mx.example.net>")
    with receiver(sent.config, sent.database, protocol="smtp") as inbound:
        client = smtplib.SMTP(inbound.host, inbound.port)
        try:
            assert client.ehlo()[0] == 250
            assert client.sendmail("", [sent.bounce_address(reader(0))], raw) == {}
            client.mail("")
            client.rcpt(f"bounces@{BOUNCE_DOMAIN}")
            code, text = client.data(b"\r\n\r\nno header at all\r\n")
            assert (code, text[:5]) == (550, b"5.6.0")
        finally:
            client.quit()
    assert events(sent) == [(reader(0), "hard", "5.1.1", "inbound")]


def test_the_command_starts_says_where_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = make_project(tmp_path / "site", bounces={"domain": BOUNCE_DOMAIN})
    environment = {**os.environ, "BRIEFING_SECRET_KEY": KEY.decode()}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "briefing",
            "--config",
            str(config.base_dir / "config.yaml"),
            "inbound",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("inbound: LMTP on 127.0.0.1:"), line
        assert f"bounces[+<token>]@{BOUNCE_DOMAIN}" in line and UNSUBSCRIBE in line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        client = smtplib.LMTP("127.0.0.1", port)
        assert client.ehlo()[0] == 250
        client.quit()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped after 0 message(s) handled" in out


def test_without_an_address_to_accept_it_refuses_to_start(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from briefing.cli import cli

    site = {**config_dict()["site"], "unsubscribe_mailto": None}
    config = make_project(tmp_path / "site", site=site)
    result = CliRunner().invoke(
        cli, ["--config", str(config.base_dir / "config.yaml"), "inbound", "--port", "0"]
    )
    assert result.exit_code != 0
    assert "neither bounces.domain nor site.unsubscribe_mailto" in str(result.exception)
