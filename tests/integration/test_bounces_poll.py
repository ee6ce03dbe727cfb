"""`briefing bounces poll`: returned mail read from a real Dovecot over IMAP, acted on and moved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from briefing.cli import cli
from briefing.config import Config
from briefing.store.schema import BounceEvent
from tests.support.bounces import arf, auto_reply, dsn
from tests.support.delivery import reader, statuses
from tests.support.dovecot import Dovecot, dovecot
from tests.support.factories import KEY
from tests.support.inbound import SentEdition, send_first_edition


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIEFING_SECRET_KEY", KEY.decode())


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    with dovecot() as server:
        yield server


def imap_settings(server: Dovecot) -> dict[str, object]:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "security": "none",
        "folder": "INBOX",
    }


def run_cli(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.base_dir / "config.yaml"), *args])


def events(edition: SentEdition) -> list[tuple[str | None, str, str]]:
    with edition.database.transaction() as session:
        return sorted((e.email, e.kind, e.source) for e in session.scalars(select(BounceEvent)))


def test_poll_acts_on_each_message_and_moves_it(
    tmp_path: Path, imap: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = send_first_edition(tmp_path / "site", 3, bounces={"imap": imap_settings(imap)})
    hard = dsn(
        to=sent.bounce_address(reader(0)),
        recipient=reader(0),
        status="5.1.1",
        message_id="<imap-hard@mx.example.net>",
    )
    complaint = arf(recipient=reader(1), original=sent.received[reader(1)].data)
    away = auto_reply(sender=reader(2), in_reply_to="<x@example.com>")
    junk = b"\r\n\r\nnot a mail message at all\r\n"
    imap.append("INBOX", [hard, complaint, away, junk])

    monkeypatch.delenv("BRIEFING_IMAP_PASSWORD", raising=False)
    missing = run_cli(sent.config, "bounces", "poll")
    assert missing.exit_code != 0
    assert "BRIEFING_IMAP_PASSWORD" in str(missing.exception)

    monkeypatch.setenv("BRIEFING_IMAP_PASSWORD", "wrong")
    refused = run_cli(sent.config, "bounces", "poll")
    assert refused.exit_code != 0
    assert f"IMAP bounces@127.0.0.1:{imap.port}: logging in failed" in str(refused.exception)

    monkeypatch.setenv("BRIEFING_IMAP_PASSWORD", imap.password)
    dry = run_cli(sent.config, "bounces", "poll", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert sorted((line["kind"], tuple(line["recipients"])) for line in lines) == [
        ("auto-reply", (reader(2),)),
        ("complaint", (reader(1),)),
        ("hard", (reader(0),)),
    ]
    assert all(line["file"].startswith("INBOX UID ") for line in lines)
    assert len(imap.subjects("INBOX")) == 4  # nothing moved
    assert events(sent) == []

    result = run_cli(sent.config, "bounces", "poll")
    assert result.exit_code == 0, result.output
    assert "not handled: no header fields" in result.stderr
    assert "moved to bounces-handled, unreadable ones to bounces-failed" in result.stdout
    assert imap.subjects("INBOX") == []
    assert len(imap.subjects("bounces-handled")) == 3
    assert imap.subjects("bounces-failed") == [""]
    assert events(sent) == [
        (reader(0), "hard", "imap INBOX"),
        (reader(1), "complaint", "imap INBOX"),
        (reader(2), "auto-reply", "imap INBOX"),
    ]
    ledger = statuses(sent.database)
    assert (ledger[reader(0)], ledger[reader(1)], ledger[reader(2)]) == (
        "bounced",
        "complained",
        "sent",
    )

    # A run killed after its commit but before its move reads the message again next time:
    # recorded once, and moved then.
    imap.append("INBOX", [hard])
    again = run_cli(sent.config, "bounces", "poll")
    assert again.exit_code == 0, again.output
    assert "already recorded" in again.stdout
    assert imap.subjects("INBOX") == []
    assert len(imap.subjects("bounces-handled")) == 4
    assert len(events(sent)) == 3

    empty = run_cli(sent.config, "bounces", "poll")
    assert empty.exit_code == 0 and "no messages" in empty.stdout
    sent.database.dispose()


def test_poll_without_imap_settings_says_so(tmp_path: Path) -> None:
    from tests.support.factories import make_project

    config = make_project(tmp_path / "site")
    result = run_cli(config, "bounces", "poll")
    assert result.exit_code != 0
    assert "bounces.imap is not set" in str(result.exception)


def test_serve_polls_the_mailbox_when_poll_every_is_set(
    tmp_path: Path, imap: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from briefing.ops.scheduler import Service
    from tests.support.inbound import SIGNER

    settings = {**imap_settings(imap), "poll_every": "5m"}
    sent = send_first_edition(tmp_path / "site", 1, bounces={"imap": settings})
    monkeypatch.setenv("BRIEFING_IMAP_PASSWORD", imap.password)
    service = Service(sent.config, sent.database, SIGNER)
    jobs = {job.id: job for job in service.scheduler(datetime.now(UTC)).get_jobs()}
    assert jobs["bounces"].trigger.interval.total_seconds() == 300
    imap.append(
        "INBOX",
        [
            dsn(
                to=sent.bounce_address(reader(0)),
                recipient=reader(0),
                status="5.1.1",
                message_id="<serve@mx.example.net>",
            )
        ],
    )
    service.poll_bounces()
    assert imap.subjects("INBOX") == []
    assert events(sent) == [(reader(0), "hard", "imap INBOX")]
    assert statuses(sent.database)[reader(0)] == "bounced"
    sent.database.dispose()


def test_serve_without_the_imap_password_stops_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from briefing.errors import SecretError
    from briefing.ops.scheduler import serve
    from briefing.store import open_database
    from tests.support.factories import make_project
    from tests.support.inbound import SIGNER

    imap = {"host": "127.0.0.1", "user": "bounces", "security": "none", "poll_every": "5m"}
    config = make_project(tmp_path / "site", bounces={"imap": imap})
    monkeypatch.delenv("BRIEFING_IMAP_PASSWORD", raising=False)
    database = open_database(config.database)
    try:
        with pytest.raises(SecretError, match="BRIEFING_IMAP_PASSWORD"):
            serve(config, database, SIGNER)
    finally:
        database.dispose()
