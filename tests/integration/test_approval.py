"""The approval gate: nothing dispatched while held; what is due goes once approved."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import func, select

from briefing.cli import cli
from briefing.config import Config
from briefing.domain.states import OverrideKind
from briefing.domain.tokens import Signer
from briefing.editions.approval import approve, issue_statuses
from briefing.editions.dispatch import dispatch
from briefing.editions.overrides import override, undo
from briefing.errors import BriefingError, EditionError
from briefing.ingest import ingest
from briefing.ops.scheduler import Service
from briefing.store import Database, open_database
from briefing.store.schema import Delivery, Edition, Subscriber, Variant
from tests.support.factories import NOW, config_dict, make_project, subscribe

DAY = date(2026, 11, 26)
LONDON_SEVEN = datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC)
NEW_YORK_SEVEN = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
ROWS = [
    "ldn@example.com,,daily,world;business,Europe/London,07:00,daily",
    "ldn2@example.com,,daily,world;business,Europe/London,07:00,daily",
    "nyc@example.com,,daily,sport,America/New_York,07:00,daily",
]


def held_project(folder: Path, **overrides: object) -> Config:
    briefings = config_dict()["briefings"]
    briefings["daily"]["approval"] = "required"
    return make_project(folder, briefings=briefings, **overrides)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Config, Database]]:
    config = held_project(tmp_path)
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribe(config, database, ROWS, datetime(2026, 11, 26, 0, 0, tzinfo=UTC))
    yield config, database
    database.dispose()


def ledger(database: Database) -> list[tuple[str, str, str]]:
    with database.transaction() as session:
        rows = session.execute(
            select(Subscriber.email, Edition.issue_date, Delivery.status)
            .join(Edition, Edition.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.edition_id == Edition.id)
            .order_by(Subscriber.email, Edition.issue_date)
        ).all()
        return [(email, str(day), status) for email, day, status in rows]


def variants(database: Database) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Variant)) or 0)


def test_a_held_issue_creates_nothing_until_approved_then_goes_at_once(
    held: tuple[Config, Database], signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    config, database = held
    caplog.set_level("INFO", logger="briefing.editions.dispatch")
    report = dispatch(config, database, signer, LONDON_SEVEN)
    assert report.dispatched == 0 and report.variants == 0
    assert dict(report.held) == {("daily", DAY): 2}
    assert ledger(database) == [] and variants(database) == 0
    assert "held for approval: daily 2026-11-26, 2 subscription(s) waiting" in caplog.text
    # Held again a minute later: still nothing, still said.
    again = dispatch(config, database, signer, LONDON_SEVEN + timedelta(minutes=1))
    assert again.dispatched == 0 and again.held[("daily", DAY)] == 2
    statuses = issue_statuses(config, database, LONDON_SEVEN + timedelta(minutes=2))
    assert next((s.issue_date, s.waiting, s.held) for s in statuses) == (DAY, 2, True)

    at = LONDON_SEVEN + timedelta(minutes=30)
    result = approve(config, database, "daily", DAY, who="ed", now=at)
    assert result.new and result.status.waiting == 2
    assert result.status.approval is not None and result.status.approval.approved_by == "ed"
    sent = dispatch(config, database, signer, at + timedelta(seconds=10))
    assert sent.pending == 2 and not sent.held
    assert ledger(database) == [
        ("ldn2@example.com", "2026-11-26", "pending"),
        ("ldn@example.com", "2026-11-26", "pending"),
    ]
    # The approval covers the whole issue date: New York's edition goes at its own time.
    assert dispatch(config, database, signer, NEW_YORK_SEVEN).pending == 1
    # A second approval changes nothing and says who approved first.
    assert not approve(config, database, "daily", DAY, who="other", now=at).new


def test_what_passed_its_deadline_while_held_expires_the_rest_goes(
    held: tuple[Config, Database], signer: Signer
) -> None:
    config, database = held
    dispatch(config, database, signer, LONDON_SEVEN)
    # London's deadline (07:00 + 3 h) passes before the approval; New York's does not.
    late = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)
    held_now = dispatch(config, database, signer, late - timedelta(minutes=5))
    assert held_now.expired == 2 and held_now.held[("daily", DAY)] == 1
    approve(config, database, "daily", DAY, who="ed", now=late)
    report = dispatch(config, database, signer, late)
    assert report.pending == 1 and report.expired == 0
    assert ledger(database) == [
        ("ldn2@example.com", "2026-11-26", "expired"),
        ("ldn@example.com", "2026-11-26", "expired"),
        ("nyc@example.com", "2026-11-26", "pending"),
    ]


def test_approval_freezes_the_overrides(held: tuple[Config, Database]) -> None:
    config, database = held
    url = "https://news.example.org/world/2"
    pinned = override(
        config, database, "daily", DAY, OverrideKind.PIN, url, who="ed", now=LONDON_SEVEN
    )
    approve(config, database, "daily", DAY, who="chief", now=LONDON_SEVEN)
    with pytest.raises(EditionError, match=r"daily 2026-11-26 was approved by chief .* frozen"):
        override(config, database, "daily", DAY, OverrideKind.DROP, url, who="ed", now=NOW)
    with pytest.raises(EditionError, match="frozen"):
        undo(config, database, "daily", pinned.override.id, who="ed", now=NOW)
    # The next issue is still open.
    nxt = override(
        config,
        database,
        "daily",
        DAY + timedelta(days=1),
        OverrideKind.DROP,
        url,
        who="ed",
        now=NOW,
    )
    assert nxt.override.active and nxt.override.created_by == "ed"


def test_briefings_without_approval_are_not_held(tmp_path: Path, signer: Signer) -> None:
    config = make_project(tmp_path)
    database = open_database(config.database)
    ingest(config, database, NOW - timedelta(hours=1))
    subscribe(config, database, ROWS, datetime(2026, 11, 26, 0, 0, tzinfo=UTC))
    try:
        report = dispatch(config, database, signer, LONDON_SEVEN)
        assert report.pending == 2 and not report.held
        assert issue_statuses(config, database, LONDON_SEVEN) == []
    finally:
        database.dispose()


def test_cli_says_what_is_held_and_approve_lets_it_go(held: tuple[Config, Database]) -> None:
    config, _database = held
    path = str(config.base_dir / "config.yaml")
    env = {"BRIEFING_SECRET_KEY": "approval-test-key"}
    runner = CliRunner()
    at = LONDON_SEVEN.isoformat()
    sent = runner.invoke(cli, ["--config", path, "send", "--no-deliver", "--at", at], env=env)
    assert sent.exit_code == 0, sent.output
    assert "held for approval: daily 2026-11-26, 2 subscription(s) waiting" in sent.output
    assert "dispatched 0 edition(s)" in sent.output
    listed = runner.invoke(cli, ["--config", path, "editions", "--at", at], env=env)
    assert "held for approval: daily 2026-11-26, 2 subscription(s) waiting" in listed.output
    approved = runner.invoke(
        cli, ["--config", path, "approve", "daily", "--as", "chief", "--at", at], env=env
    )
    assert approved.exit_code == 0, approved.output
    assert "approved: daily 2026-11-26 by chief" in approved.output
    assert "2 subscription(s) due at the next dispatch" in approved.output
    sent = runner.invoke(cli, ["--config", path, "send", "--no-deliver", "--at", at], env=env)
    assert "dispatched 2 edition(s) in 1 variant(s): 2 to send" in sent.output
    assert "held for approval" not in sent.output
    bad = runner.invoke(cli, ["--config", path, "approve", "daily", "--date", "7 Dec"], env=env)
    # main() prints a BriefingError as message + hint; the runner hands it back as is.
    assert isinstance(bad.exception, BriefingError)
    assert "--date '7 Dec' is not a date" in str(bad.exception)


def test_serve_holds_the_issue_then_sends_it_at_the_tick_after_the_approval(
    tmp_path: Path, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    config = held_project(tmp_path)
    database = open_database(config.database)
    editor = open_database(config.database)  # the editor's command, another process
    try:
        ingest(config, database, NOW - timedelta(hours=1))
        subscribe(config, database, ROWS[:1], datetime(2026, 11, 26, 0, 0, tzinfo=UTC))
        caplog.set_level("INFO", logger="briefing")
        service = Service(config, database, signer)
        with time_machine.travel(datetime(2026, 11, 26, 6, 50, tzinfo=UTC), tick=False) as clock:
            service.start_up()
            for minute in (7, 8):
                clock.move_to(datetime(2026, 11, 26, minute, 0, tzinfo=UTC))
                service.dispatch_due()
            assert ledger(database) == [] and outbox(config) == 0
            assert "held for approval: daily 2026-11-26, 1 subscription(s) waiting" in caplog.text
            approve(config, editor, "daily", DAY, who="chief", now=datetime.now(UTC))
            clock.move_to(datetime(2026, 11, 26, 8, 1, tzinfo=UTC))
            service.dispatch_due()
        assert ledger(database) == [("ldn@example.com", "2026-11-26", "sent")]
        assert outbox(config) == 1
    finally:
        editor.dispose()
        database.dispose()


def outbox(config: Config) -> int:
    return len(mailbox.Maildir(str(config.outbox_path), create=True))
