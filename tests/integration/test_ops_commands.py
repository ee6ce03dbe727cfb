"""Ops commands and their config: schedule, pause, resume, run-now; the scheduler section."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from briefing.cli import cli
from briefing.config import Config, format_duration
from briefing.domain.calendar import missed, next_send
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.errors import BriefingError, SchedulerError
from briefing.ingest import ingest
from briefing.ops.controls import control_of, pause
from briefing.ops.timetable import timetable
from briefing.store import Database
from briefing.store.editions import dispatched_dates
from briefing.store.schedule import active_subscriptions
from tests.support.factories import config_dict, subscribe
from tests.unit.domain.test_config import problems

LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = [
    "ldn1@example.com,,daily,,Europe/London,07:00,daily",
    "ldn2@example.com,,daily,,Europe/London,07:00,daily",
    "nyc@example.com,,daily,,America/New_York,07:00,weekdays",
    "syd@example.com,,daily,,Australia/Sydney,07:15,weekdays",
]


def run(config: Config, *args: str) -> Result:
    """Invoke the CLI in this process, as a user would from a shell."""
    runner = CliRunner()
    return runner.invoke(
        cli,
        ["--config", str(config.base_dir / "config.yaml"), *args],
        env={"BRIEFING_SECRET_KEY": "ops-test-key"},
    )


def groups(config: Config, database: Database, at: datetime) -> list[tuple[Any, ...]]:
    (table,) = timetable(config, database, at)
    return [
        (g.timezone, g.send_time, g.frequency, g.subscribers, g.next_send, g.due_now)
        for g in table.groups
    ]


def test_next_sends_by_timezone_on_a_saturday(project: Config, database: Database) -> None:
    subscribe(project, database, ROWS, LONG_AGO)
    saturday = datetime(2026, 11, 28, 6, tzinfo=UTC)
    assert groups(project, database, saturday) == [
        ("Europe/London", "07:00", "daily", 2, datetime(2026, 11, 28, 7, tzinfo=UTC), False),
        # Monday 07:15 AEDT is Sunday 20:15 UTC; New York's Monday 07:00 EST is 12:00 UTC.
        (
            "Australia/Sydney",
            "07:15",
            "weekdays",
            1,
            datetime(2026, 11, 29, 20, 15, tzinfo=UTC),
            False,
        ),
        ("America/New_York", "07:00", "weekdays", 1, datetime(2026, 11, 30, 12, tzinfo=UTC), False),
    ]


def test_next_send_across_the_spring_change(project: Config, database: Database) -> None:
    subscribe(project, database, ROWS[:1], LONG_AGO)
    (group,) = groups(project, database, datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert group[4] == datetime(2026, 3, 29, 6, tzinfo=UTC)  # 07:00 BST


def test_paused_briefing_shows_held_back_and_missed(project: Config, database: Database) -> None:
    # Subscribed after the 25th's send time: that edition was never theirs to miss.
    subscribe(project, database, ROWS[:2], datetime(2026, 11, 25, 12, tzinfo=UTC))
    pause(database, "daily", datetime(2026, 11, 26, 6, tzinfo=UTC), by="ops@desk")
    (held,) = timetable(project, database, datetime(2026, 11, 26, 8, tzinfo=UTC))
    assert held.control.paused and held.due_now == 2 and held.missed == 0
    assert held.groups[0].next_send == datetime(2026, 11, 26, 7, tzinfo=UTC)
    (late,) = timetable(project, database, datetime(2026, 11, 26, 10, 30, tzinfo=UTC))
    assert late.due_now == 0 and late.missed == 2  # 07:00 + the 3h deadline has passed
    assert late.groups[0].next_send == datetime(2026, 11, 27, 7, tzinfo=UTC)


def test_schedule_command_text_and_json(project: Config, database: Database) -> None:
    subscribe(project, database, ROWS, datetime(2026, 11, 27, 13, tzinfo=UTC))
    pause(database, "daily", datetime(2026, 11, 28, 6, tzinfo=UTC), by="ops@desk")
    text = run(project, "schedule", "--at", "2026-11-28T07:30:00Z")
    assert text.exit_code == 0, text.output
    assert "scheduler: no `briefing serve` is running on this database" in text.output
    assert (
        "daily (The Daily): PAUSED since 2026-11-28 06:00:00 UTC by ops@desk; 4 subscriber(s); "
        "deadline 3h" in text.output
    )
    assert "2026-11-28 07:00  Sat 28 Nov 07:00 GMT    Europe/London" in text.output
    assert "2 edition(s) held back by the pause" in text.output
    assert "in 1d 12h 45m" in text.output  # Sydney, Monday 07:15 local
    assert "missed their deadline" not in text.output
    listed = json.loads(run(project, "schedule", "--json", "--at", "2026-11-28T07:30:00Z").output)
    (daily,) = listed["briefings"]
    assert daily["paused"] is True and daily["paused_by"] == "ops@desk"
    assert daily["due_now"] == 2 and daily["subscribers"] == 4
    assert [(g["timezone"], g["subscribers"], g["next_send_local"]) for g in daily["groups"]] == [
        ("Europe/London", 2, "2026-11-28T07:00:00+00:00"),
        ("Australia/Sydney", 1, "2026-11-30T07:15:00+11:00"),
        ("America/New_York", 1, "2026-11-30T07:00:00-05:00"),
    ]


def test_pause_and_resume_commands(project: Config, database: Database) -> None:
    first = run(project, "pause", "daily")
    assert first.exit_code == 0
    assert (
        "paused daily: nothing is dispatched or delivered until `briefing resume daily`"
        in first.output
    )
    assert control_of(database, "daily").paused
    assert "daily was already paused (since" in run(project, "pause", "daily").output
    resumed = run(project, "resume", "daily")
    assert resumed.exit_code == 0 and "resumed daily (paused since" in resumed.output
    assert not control_of(database, "daily").paused
    assert "daily was not paused" in run(project, "resume", "daily").output


def test_commands_refuse_an_unknown_briefing(project: Config) -> None:
    for command in ("pause", "resume", "run-now"):
        result = run(project, command, "weekly")
        assert isinstance(result.exception, BriefingError)
        assert result.exception.message.startswith("no briefing 'weekly' in ")
        assert result.exception.hint == "known briefings: daily"


def test_run_now_without_a_scheduler_runs_here(project: Config, database: Database) -> None:
    ingest(project, database, datetime.now(UTC))
    subscribe(project, database, ROWS[:2], LONG_AGO)
    result = run(project, "run-now", "daily")
    assert result.exit_code == 0, result.output
    assert (
        "no `briefing serve` is running on this database: running it in this process"
        in result.output
    )
    assert "dispatched 2 edition(s) in 1 variant(s): 2 to send" in result.output
    assert "delivered daily: 2 sent" in result.output
    assert len(mailbox.Maildir(str(project.outbox_path))) == 2
    again = run(project, "run-now", "daily")
    assert "dispatched 0 edition(s)" in again.output
    assert len(mailbox.Maildir(str(project.outbox_path))) == 2


def test_run_now_refuses_a_paused_briefing(project: Config, database: Database) -> None:
    pause(database, "daily", datetime.now(UTC), by="ops@desk")
    result = run(project, "run-now", "daily")
    assert isinstance(result.exception, SchedulerError)
    assert "daily is paused" in result.exception.message
    assert result.exception.hint == "`briefing resume daily` first"


def test_scheduler_config_defaults_and_bounds(tmp_path: Path, project: Config) -> None:
    assert project.scheduler.ingest_interval == timedelta(minutes=15)
    assert project.scheduler.dispatch_interval == timedelta(minutes=1)
    data = config_dict(
        scheduler={"dispatch_interval": "5m", "control_interval": "0s", "ingest": "1h"}
    )
    assert sorted(problems(tmp_path / "bad", data)) == [
        "scheduler.control_interval: expected between 1s and 1m, got 0:00:00",
        "scheduler.dispatch_interval: expected between 1s and 1m, got 0:05:00",
        "scheduler.ingest: unknown key (check its spelling and indentation)",
    ]


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(minutes=90), "1h 30m"),
        (timedelta(days=2), "2d"),
        (timedelta(seconds=5), "5s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration(span: timedelta, text: str) -> None:
    assert format_duration(span) == text


def reference_groups(
    config: Config, database: Database, at: datetime
) -> tuple[list[tuple[Any, ...]], int]:
    """The timetable computed one subscription at a time, as the calendar defines it."""
    settings = config.briefing("daily")
    counts: dict[tuple[Any, ...], int] = {}
    missed_total = 0
    with database.transaction() as session:
        dispatched = dispatched_dates(session, "daily", at.date() - timedelta(days=2))
        for sub in active_subscriptions(session, "daily"):
            done = dispatched.get(sub.subscriber_id, frozenset())
            missed_total += missed(sub, at, settings.deadline, done)
            upcoming = next_send(sub, at, settings.deadline, done)
            if upcoming is not None:
                key = (sub.timezone, sub.send_time, sub.frequency)
                key += (upcoming.moment, upcoming.due_now)
                counts[key] = counts.get(key, 0) + 1
    found = [(*key[:3], count, *key[3:]) for key, count in counts.items()]
    return sorted(found, key=lambda g: (g[4], g[0], g[1])), missed_total


def test_timetable_by_kind_equals_one_subscription_at_a_time(
    project: Config, database: Database, signer: Signer
) -> None:
    # Subscriptions started at different moments around the send times, some with
    # editions dispatched, some past their deadline: the grouped timetable must give
    # exactly what each subscription's own calendar gives.
    zones = ["Europe/London", "America/New_York", "Australia/Sydney", "Pacific/Kiritimati"]
    starts = [
        LONG_AGO,
        datetime(2026, 11, 25, 12, tzinfo=UTC),
        datetime(2026, 11, 26, 6, 59, tzinfo=UTC),
        datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 7, 30, tzinfo=UTC),
    ]
    number = 0
    for start in starts:
        rows = []
        for zone in zones:
            for send_time, frequency in (("07:00", "daily"), ("07:15", "weekdays")):
                number += 1
                rows.append(f"r{number}@example.com,,daily,,{zone},{send_time},{frequency}")
        subscribe(project, database, rows, start)
    moments = [
        datetime(2026, 11, 25, 18, tzinfo=UTC),
        datetime(2026, 11, 26, 7, 10, tzinfo=UTC),
        datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 26, 12, 20, tzinfo=UTC),
        datetime(2026, 11, 28, 6, tzinfo=UTC),
    ]
    for dispatched in (False, True):  # starts alone decide, then with editions too
        if dispatched:
            dispatch(project, database, signer, datetime(2026, 11, 26, 7, 5, tzinfo=UTC))
            dispatch(project, database, signer, datetime(2026, 11, 26, 12, 20, tzinfo=UTC))
        for at in moments:
            (table,) = timetable(project, database, at)
            expected, expected_missed = reference_groups(project, database, at)
            assert groups(project, database, at) == expected, (dispatched, at)
            assert table.missed == expected_missed, (dispatched, at)
            assert sum(g[3] for g in expected) > 0
