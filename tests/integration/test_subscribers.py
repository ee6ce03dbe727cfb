"""Subscriber import: bad rows named by line, idempotent, never overriding or reviving."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from briefing.audience.imports import CHUNK_ROWS, import_subscribers, iter_rows
from briefing.config import Config
from briefing.errors import SubscriberRowError
from briefing.store import Database
from briefing.store.schema import Subscriber, Subscription, SubscriptionEvent
from briefing.store.suppressions import suppress
from tests.support.factories import NOW

HEADER = "email,name,briefing,sections,timezone,send_time,frequency\n"


def write_csv(folder: Path, rows: str) -> Path:
    path = folder / "list.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def subscriptions(database: Database) -> dict[str, Subscription]:
    with database.transaction() as session:
        rows = session.execute(select(Subscription, Subscriber.email).join(Subscriber)).all()
        return {email: sub for sub, email in rows}


def test_good_rows_import_and_bad_rows_are_named(project: Config, database: Database) -> None:
    path = write_csv(
        project.base_dir,
        (
            "a@example.com,Ann,daily,world;sport,Europe/Paris,06:30,weekdays\n"
            "B@Example.COM,,,,,,\n"
            "not-an-email,X,daily,,,,\n"
            "c@example.com,,daily,weather,,,\n"
            "d@example.com,,daily,,Nowhere/City,,\n"
            "e@example.com,,daily,,,25:00,\n"
            "f@example.com,,daily,,,,fortnightly\n"
            "a@example.com,Ann again,daily,,,,\n"
        ),
    )
    report = import_subscribers(project, database, path, NOW)
    assert report.created == 2
    errors = {e.line: e.reason for e in report.errors}
    assert sorted(errors) == [4, 5, 6, 7, 8, 9]
    assert errors[4].startswith("email 'not-an-email':")
    assert errors[5].startswith("section 'weather' is not configured")
    assert errors[6].startswith("timezone: expected an IANA timezone")
    assert errors[7].startswith("send_time: expected a time of day")
    assert errors[8].startswith("frequency: expected daily, weekdays")
    assert errors[9] == "a@example.com is already on line 2 for briefing daily"
    subs = subscriptions(database)
    assert set(subs) == {"a@example.com", "b@example.com"}
    ann = subs["a@example.com"]
    assert (ann.sections, ann.timezone, ann.send_time, ann.frequency) == (
        ["world", "sport"],
        "Europe/Paris",
        "06:30",
        "weekdays",
    )
    default = subs["b@example.com"]
    assert (default.sections, default.timezone, default.send_time, default.frequency) == (
        None,
        "Europe/London",
        "07:00",
        "daily",
    )
    assert ann.status == "active" and ann.consent_source == "import:list.csv"


def test_reimport_is_idempotent(project: Config, database: Database) -> None:
    path = write_csv(project.base_dir, "a@example.com,Ann,daily,world,,,\n")
    import_subscribers(project, database, path, NOW)
    again = import_subscribers(project, database, path, NOW + timedelta(days=1))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    with database.transaction() as session:
        assert session.query(SubscriptionEvent).count() == 1


def test_import_updates_but_never_overrides_subscriber_choices(
    project: Config, database: Database
) -> None:
    path = write_csv(
        project.base_dir, "a@example.com,Ann,daily,world,,,\nb@example.com,,daily,world,,,\n"
    )
    import_subscribers(project, database, path, NOW)
    with database.transaction() as session:
        sub = session.scalar(
            select(Subscription).join(Subscriber).where(Subscriber.email == "a@example.com")
        )
        sub.sections, sub.send_time, sub.preferences_set_at = ["sport"], "09:15", NOW
    path = write_csv(
        project.base_dir, "a@example.com,Ann,daily,business,,,\nb@example.com,,daily,business,,,\n"
    )
    report = import_subscribers(project, database, path, NOW + timedelta(hours=1))
    assert report.updated == 1 and len(report.kept) == 1
    subs = subscriptions(database)
    assert (
        subs["a@example.com"].sections == ["sport"] and subs["a@example.com"].send_time == "09:15"
    )
    assert subs["b@example.com"].sections == ["business"]


def test_import_never_revives_suppressed_or_unsubscribed(
    project: Config, database: Database
) -> None:
    path = write_csv(project.base_dir, "gone@example.com,,daily,,,,\nleft@example.com,,daily,,,,\n")
    with database.transaction() as session:
        suppress(session, "gone@example.com", reason="complained", source="test", now=NOW)
    import_subscribers(project, database, path, NOW)
    with database.transaction() as session:
        left = session.scalar(
            select(Subscription).join(Subscriber).where(Subscriber.email == "left@example.com")
        )
        left.status = "unsubscribed"
    report = import_subscribers(project, database, path, NOW + timedelta(days=1))
    assert report.created == 0
    assert any("gone@example.com is suppressed (complained)" in line for line in report.refused)
    assert any("left@example.com left daily (unsubscribed)" in line for line in report.refused)
    subs = subscriptions(database)
    assert "gone@example.com" not in subs
    assert subs["left@example.com"].status == "unsubscribed"


def test_file_level_problems(project: Config, database: Database) -> None:
    path = project.base_dir / "wrong.csv"
    path.write_text("mail,name\nx@example.com,X\n")
    report = import_subscribers(project, database, path, NOW)
    assert [str(e) for e in report.errors] == [
        (
            f"{path}:1: no 'email' column "
            "(columns: email, name, briefing, sections, timezone, send_time, frequency)"
        )
    ]


def test_a_mailbox_given_again_chunks_later_is_reported_by_its_first_line(
    project: Config, database: Database
) -> None:
    rows = [f"reader{n}@example.com,,daily,,,,\n" for n in range(CHUNK_ROWS * 2 + 500)]
    rows[CHUNK_ROWS * 2 + 100] = "Reader7@EXAMPLE.com,,daily,,,,\n"  # line 9: a chunk before
    rows.append("reader4101@example.com,,daily,,,,\n")  # line 4103, in this same chunk
    path = write_csv(project.base_dir, "".join(rows))
    report = import_subscribers(project, database, path, NOW)
    assert report.created == CHUNK_ROWS * 2 + 499
    assert [(e.line, e.reason) for e in report.errors] == [
        (
            CHUNK_ROWS * 2 + 102,
            (
                "Reader7@EXAMPLE.com (mailbox reader7@example.com) is already on line 9"
                " for briefing daily"
            ),
        ),
        (CHUNK_ROWS * 2 + 502, "reader4101@example.com is already on line 4103 for briefing daily"),
    ]
    again = import_subscribers(project, database, path, NOW + timedelta(days=1))
    assert (again.created, again.unchanged, len(again.errors)) == (0, CHUNK_ROWS * 2 + 499, 2)


def test_reading_a_list_holds_no_memory_per_row(project: Config, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "".join(f"reader{n}@example.com,,daily,,,,\n" for n in range(20_000))
    )
    traced: dict[int, int] = {}
    tracemalloc.start()
    try:
        for item in iter_rows(project, path):
            assert not isinstance(item, SubscriberRowError), item
            if item.line in (2_001, 20_001):
                traced[item.line] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # A dict of every mailbox seen held about 240 bytes a row: 4 MB over these 18,000 rows.
    assert traced[20_001] - traced[2_001] < 256 * 1024, traced
