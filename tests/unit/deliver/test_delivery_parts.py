"""DKIM, reply classification, the rate limiter, claims and the delivery commands."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from briefing.cli import cli
from briefing.deliver import DkimSigner, deliver, make_transport
from briefing.deliver.ratelimit import RateLimiter
from briefing.deliver.replies import Reply, classify
from briefing.domain.tokens import Signer
from briefing.errors import DkimError, SecretError
from briefing.pipeline.compose import feedback_id_valid, feedback_key
from briefing.store import open_database
from briefing.store.ledger import claim, claim_listed, claim_order
from briefing.store.schema import Delivery
from tests.support.delivery import AT, reader, smtp_project
from tests.support.factories import KEY, make_project
from tests.support.smtp_server import Handler, Rule, smtp_server

SIGNER = Signer([KEY])


def rsa_key(folder: Path) -> tuple[Path, bytes]:
    """Write a 2048-bit RSA key; return its path and the DNS TXT record publishing it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_verifies_against_the_public_key_and_covers_the_unsubscribe_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, record = rsa_key(tmp_path)
    monkeypatch.setenv("BRIEFING_DKIM_KEY_FILE", str(key_path))
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())  # Feedback-ID's key
    with smtp_server() as server:
        config, database = smtp_project(
            tmp_path / "site", server, count=3, dkim={"selector": "brief2026"}
        )
        signer = DkimSigner.from_config(config)
        transport = make_transport(config)
        report = deliver(config, database, SIGNER, transport, clock=lambda: AT, dkim=signer)
        transport.close()
    assert report.sent == 3
    looked_up: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        looked_up.append(name)
        return record if name == b"brief2026._domainkey.news.example.org." else b""

    for message in server.handler.received:
        assert message.data.startswith(b"DKIM-Signature:")
        feedback = re.search(rb"\r\nFeedback-ID: ([^\r]+)\r\n", message.data)
        assert feedback is not None
        assert feedback_id_valid(feedback.group(1).decode(), feedback_key(KEY))
        assert feedback.group(1).startswith(b"daily:")
        assert dkim.verify(message.data, dnsfunc=dns)
        head = message.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b"")
        assert b"c=relaxed/relaxed;" in head.replace(b" ", b"")
        signed = re.search(rb"h=([^;]+);", head).group(1)
        names = Counter(name.strip().lower() for name in signed.split(b":"))
        over_signed = {
            b"from",
            b"to",
            b"subject",
            b"date",
            b"message-id",
            b"feedback-id",
            b"list-id",
            b"list-unsubscribe",
            b"list-unsubscribe-post",
        }
        assert all(names[name] == 2 for name in over_signed), names
        # A relay that rewraps whitespace (trailing blanks, runs of spaces) keeps it valid.
        header, body = message.data.split(b"\r\n\r\n", 1)
        rewrapped = header + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n").replace(b" ", b"  ")
        assert rewrapped != message.data and dkim.verify(rewrapped, dnsfunc=dns)
        # A second From or List-Unsubscribe added on the way breaks it.
        for added in (
            b"From: someone@else.example\r\n",
            b"List-Unsubscribe: <https://x.example/u>\r\n",
        ):
            forged = message.data.replace(b"\r\nTo: ", b"\r\n" + added + b"To: ", 1)
            assert forged != message.data and not dkim.verify(forged, dnsfunc=dns)
        tampered = message.data.replace(
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click",
        )
        assert tampered != message.data and not dkim.verify(tampered, dnsfunc=dns)
    assert looked_up and set(looked_up) == {b"brief2026._domainkey.news.example.org."}


def test_dkim_needs_its_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_project(tmp_path, delivery={"dkim": {"selector": "s1"}})
    monkeypatch.delenv("BRIEFING_DKIM_KEY_FILE", raising=False)
    with pytest.raises(SecretError, match="BRIEFING_DKIM_KEY_FILE"):
        DkimSigner.from_config(config)
    (tmp_path / "bad.pem").write_text("not a key")
    monkeypatch.setenv("BRIEFING_DKIM_KEY_FILE", str(tmp_path / "bad.pem"))
    with pytest.raises(DkimError, match=r"bad\.pem"):
        DkimSigner.from_config(config)


@pytest.mark.parametrize(
    ("stage", "code", "text", "verdict", "close", "slow"),
    [
        ("data-end", 250, "2.0.0 queued", "sent", False, False),
        ("rcpt", 250, "ok", "deferred", False, False),  # not final: only the dot's reply is
        ("rcpt", 451, "4.3.0 try later", "deferred", False, False),
        ("data-end", 451, "4.7.1 slow down", "deferred", False, True),
        ("mail", 421, "4.3.2 closing", "deferred", True, False),
        ("rcpt", 550, "5.1.1 no such user", "bounced", False, False),
        ("rcpt", 550, "mailbox unavailable", "failed", False, False),
        ("data-end", 554, "5.7.1 refused by policy", "failed", False, False),
        ("data-end", 550, "5.1.10 null MX", "bounced", False, False),
        ("rcpt", 554, "5.7.1 Relay access denied", "session", True, False),
        ("mail", 553, "5.7.1 sender not allowed", "session", True, False),
        ("mail", 530, "5.7.0 Authentication required", "session", True, False),
        ("rcpt", 530, "5.7.0 Authentication required", "session", True, False),
        ("data", 354, "go ahead", "deferred", False, False),
    ],
)
def test_replies_are_classified_by_stage(
    stage: str, code: int, text: str, verdict: str, close: bool, slow: bool
) -> None:
    classified = classify(stage, Reply(code, text))  # type: ignore[arg-type]
    assert (classified.verdict, classified.close, classified.slow_down) == (verdict, close, slow)


def test_rate_limiter_spaces_messages_and_halves_on_slow_down() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10.0, slow_down_period=30, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert slept == pytest.approx([0.1] * 4)
    assert limiter.slow_down() == 5.0
    assert limiter.slow_down() == 5.0  # replies to messages in flight do not halve it again
    slept.clear()
    limiter.acquire()
    limiter.acquire()
    assert slept[-1] == pytest.approx(0.2)
    now[0] += 31
    assert limiter.rate == 10.0


def test_an_unlimited_rate_is_capped_at_half_the_observed_after_slow_down() -> None:
    now = [0.0]
    limiter = RateLimiter(None, clock=lambda: now[0], sleep=lambda s: None)
    for _ in range(40):
        limiter.acquire()
        now[0] += 0.025  # 40 messages a second
    assert limiter.rate is None
    assert limiter.slow_down() == pytest.approx(20.0, abs=1)


def test_a_dead_runs_claims_are_taken_over_at_once_a_live_ones_never(tmp_path: Path) -> None:
    with smtp_server() as server:
        config, database = smtp_project(tmp_path, server, count=4)
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        import socket

        host = socket.gethostname()
        long = timedelta(hours=1)
        with database.transaction() as session:
            dead = claim(session, f"{host}:{gone}:dead", AT, 2, lease=long)
            live = claim(session, f"{host}:1:live", AT, 1, lease=long)  # pid 1 is alive
            other = claim(session, f"elsewhere:{gone}:x", AT, 1, lease=long)  # cannot be judged
        transport = make_transport(config)
        report = deliver(config, database, SIGNER, transport, clock=lambda: AT)
        transport.close()
    assert report.sent == 2
    sent = {m.recipient for m in server.handler.received}
    with database.transaction() as session:
        rows = {d.id: d.status for d in session.scalars(select(Delivery))}
    assert {rows[i] for i in dead} == {"sent"} and len(sent) == 2
    assert {rows[i] for i in live + other} == {"sending"}


def test_postgresql_claims_skip_locked_rows(postgres_url: str, tmp_path: Path) -> None:
    from briefing.editions.dispatch import dispatch
    from briefing.ingest import ingest
    from tests.support.delivery import subscribe
    from tests.support.factories import NOW

    config = make_project(tmp_path, database_url=postgres_url)
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribe(config, database, [reader(n) for n in range(6)])
    dispatch(config, database, SIGNER, AT)
    with database.transaction() as first:
        mine = claim(first, "run-a", AT, 4)
        # A second run while the first's transaction is still open: no wait, no overlap.
        with database.transaction() as second:
            theirs = claim(second, "run-b", AT, 10)
    assert len(mine) == 4 and len(theirs) == 2 and not set(mine) & set(theirs)
    database.dispose()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_claim_returns_only_the_rows_it_took_not_those_the_run_already_holds(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if engine == "postgresql" else None
    with smtp_server() as server:
        _, database = smtp_project(tmp_path, server, count=4, database_url=url)
    lease = timedelta(minutes=2)
    try:
        with database.transaction() as session:
            order = claim_order(session, AT, 10)
            first = claim_listed(session, "run-a", order[:2], AT, lease)
        assert first == order[:2]
        with database.transaction() as session:
            # An order read before the first claim lists those rows again: already held
            # (a live lease), they must not be handed out twice.
            again = claim_listed(session, "run-a", order, AT, lease)
        assert again == order[2:]
    finally:
        database.dispose()


def test_deliveries_and_cancel_commands(tmp_path: Path) -> None:
    handler = Handler(rules={reader(1): Rule(rcpt="550 5.1.1 <reader1@example.com> unknown")})
    runner = CliRunner()
    with smtp_server(handler) as server:
        config, database = smtp_project(tmp_path, server, count=3)
        config_path = str(config.base_dir / "config.yaml")
        with database.transaction() as session:
            edition = session.scalars(select(Delivery.edition_id).order_by(Delivery.id)).all()[2]
        # Pull one subscriber's edition before it goes.
        one = runner.invoke(cli, ["--config", config_path, "cancel", str(edition)])
        assert one.exit_code == 0, one.output
        assert (
            f"edition {edition}: 1 cancelled, 0 in flight (may still go out), 0 already sent"
            in one.output
        )
        transport = make_transport(config)
        deliver(config, database, SIGNER, transport, clock=lambda: AT)
        transport.close()
    assert [m.recipient for m in server.handler.received] == [reader(0)]
    listed = runner.invoke(cli, ["--config", config_path, "deliveries", "--failed", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert data["editions"] == [
        {
            "briefing": "daily",
            "issue_date": "2026-11-26",
            "total": 3,
            "counts": {"sent": 1, "bounced": 1, "cancelled": 1},
        }
    ]
    assert [(f["recipient"], f["code"]) for f in data["failed"]] == [(reader(1), 550)]
    assert "5.1.1" in data["failed"][0]["reply"]
    table = runner.invoke(
        cli, ["--config", config_path, "deliveries", "--edition", "daily:2026-11-26", "--failed"]
    )
    assert "reader1@example.com" in table.output and "bounced" in table.output
    late = runner.invoke(cli, ["--config", config_path, "cancel", "daily:2026-11-26"])
    assert (
        "daily 2026-11-26: 0 cancelled, 0 in flight (may still go out), 1 already sent"
        in late.output
    )
    wrong = runner.invoke(cli, ["--config", config_path, "cancel", "yesterday"])
    assert wrong.exit_code != 0 and "names no edition" in str(wrong.exception)


def test_config_check_warns_when_smtp_runs_without_dkim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRIEFING_DKIM_KEY_FILE", raising=False)
    config = make_project(
        tmp_path, delivery={"transport": "smtp", "smtp": {"host": "relay.example.org"}}
    )
    result = CliRunner().invoke(
        cli, ["--config", str(config.base_dir / "config.yaml"), "config", "check"]
    )
    assert result.exit_code == 0
    assert "SMTP is on without DKIM" in result.output and "RFC 8058" in result.output
    assert "transport: smtp relay.example.org:587 (starttls)" in result.output


def test_smtp_settings_are_checked_with_their_key_path(tmp_path: Path) -> None:
    from briefing.errors import ConfigError

    with pytest.raises(ConfigError, match=r"delivery: .*smtp: required when transport is smtp"):
        make_project(tmp_path / "a", delivery={"transport": "smtp"})
    with pytest.raises(ConfigError, match=r"delivery\.smtp\.envelope_sender"):
        make_project(
            tmp_path / "b",
            delivery={
                "transport": "smtp",
                "smtp": {"host": "h", "envelope_sender": "bounces+{nobody}@x.org"},
            },
        )
    with pytest.raises(ConfigError, match=r"delivery\.smtp\.pool_sise: unknown key"):
        make_project(
            tmp_path / "c", delivery={"transport": "smtp", "smtp": {"host": "h", "pool_sise": 3}}
        )


def test_cancel_reports_claimed_rows_as_in_flight(tmp_path: Path) -> None:
    # A run has claimed two of three rows: cancelling cannot promise those stay unsent.
    with smtp_server(Handler()) as server:
        config, database = smtp_project(tmp_path, server, count=3)
        with database.transaction() as session:
            claimed = claim(session, "live-run", AT, 2)
        result = CliRunner().invoke(
            cli, ["--config", str(config.base_dir / "config.yaml"), "cancel", "daily:2026-11-26"]
        )
    assert result.exit_code == 0, result.output
    assert len(claimed) == 2
    assert (
        "daily 2026-11-26: 1 cancelled, 2 in flight (may still go out), 0 already sent"
        in result.output
    )
    with database.transaction() as session:
        statuses = session.scalars(select(Delivery.status)).all()
    assert sorted(statuses) == ["cancelled"] * 3
