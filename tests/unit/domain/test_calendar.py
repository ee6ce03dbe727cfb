"""Calendar rules: frequencies, send times, local send moments across DST, due dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from briefing.domain.calendar import (
    check_frequency,
    due_dates,
    frequency_includes,
    local_send_moment,
    missed,
    next_send,
    parse_send_time,
)

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Timing:
    timezone: str = "Europe/London"
    send_time: str = "07:00"
    frequency: str = "daily"
    created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


def subscription(**overrides: Any) -> Timing:
    return Timing(**overrides)


def test_send_moment_on_both_sides_of_dst() -> None:
    assert local_send_moment(date(2026, 3, 28), time(7), LONDON) == datetime(
        2026, 3, 28, 7, tzinfo=UTC
    )
    assert local_send_moment(date(2026, 3, 30), time(7), LONDON) == datetime(
        2026, 3, 30, 6, tzinfo=UTC
    )


def test_send_time_in_spring_gap_goes_at_first_valid_minute() -> None:
    # 29 March 2026: London clocks jump from 01:00 to 02:00.
    assert local_send_moment(date(2026, 3, 29), time(1, 30), LONDON) == datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )


def test_send_time_in_autumn_fold_is_the_first_occurrence() -> None:
    # 25 October 2026: 01:00-02:00 happens twice in London.
    assert local_send_moment(date(2026, 10, 25), time(1, 30), LONDON) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_due_only_after_local_send_time() -> None:
    sub = subscription(timezone="Asia/Kolkata", send_time="06:30")
    before = datetime(2026, 11, 26, 0, 59, tzinfo=UTC)  # 06:29 in Kolkata
    after = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert [d.issue_date for d in due_dates(sub, before, timedelta(hours=3))] == [
        date(2026, 11, 25)
    ]
    assert next(d.issue_date for d in due_dates(sub, before, timedelta(hours=3))) == date(
        2026, 11, 25
    )
    due = due_dates(sub, after, timedelta(hours=3))
    assert [(d.issue_date, d.expired) for d in due] == [
        (date(2026, 11, 25), True),
        (date(2026, 11, 26), False),
    ]


def test_weekdays_and_weekly() -> None:
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert [
        d.issue_date
        for d in due_dates(subscription(frequency="weekdays"), saturday, timedelta(hours=3))
    ] == [date(2026, 11, 27)]
    monday = datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert [
        d.issue_date
        for d in due_dates(subscription(frequency="weekly:mon"), monday, timedelta(hours=3))
    ] == [date(2026, 11, 30)]


def test_subscription_newer_than_send_time_waits_for_tomorrow() -> None:
    sub = subscription(created_at=datetime(2026, 11, 26, 9, tzinfo=UTC))
    assert due_dates(sub, datetime(2026, 11, 26, 9, 5, tzinfo=UTC), timedelta(hours=3)) == []


def test_deadline_marks_expired() -> None:
    sub = subscription()
    (on_time,) = [
        d
        for d in due_dates(sub, datetime(2026, 11, 26, 9, 59, tzinfo=UTC), timedelta(hours=3))
        if d.issue_date == date(2026, 11, 26)
    ]
    (late,) = [
        d
        for d in due_dates(sub, datetime(2026, 11, 26, 10, 1, tzinfo=UTC), timedelta(hours=3))
        if d.issue_date == date(2026, 11, 26)
    ]
    assert not on_time.expired and late.expired


def test_frequency_days() -> None:
    monday, saturday = date(2026, 11, 23), date(2026, 11, 28)
    assert frequency_includes("daily", saturday)
    assert frequency_includes("weekdays", monday) and not frequency_includes("weekdays", saturday)
    assert frequency_includes("weekly:mon", monday) and not frequency_includes(
        "weekly:mon", saturday
    )


def test_frequency_and_send_time_are_checked() -> None:
    assert check_frequency(" Weekly:MON ") == "weekly:mon"
    assert parse_send_time("7:05") == time(7, 5)
    assert parse_send_time(420) == time(7)  # YAML 1.1 reads 07:00 as 420
    with pytest.raises(ValueError):
        check_frequency("weekly:someday")
    with pytest.raises(ValueError):
        parse_send_time("24:00")


def test_force_makes_today_due_at_once() -> None:
    now = datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert due_dates(subscription(), now, timedelta(hours=3), force=True)[0].scheduled_at == now


def test_next_send_and_missed() -> None:
    sub = subscription(frequency="weekly:mon")
    thursday = datetime(2026, 11, 26, 12, tzinfo=UTC)
    upcoming = next_send(sub, thursday, timedelta(hours=3), set())
    assert upcoming is not None
    assert (upcoming.issue_date, upcoming.due_now) == (date(2026, 11, 30), False)
    late = datetime(2026, 11, 30, 11, tzinfo=UTC)  # 07:00 London passed four hours ago
    assert missed(sub, late, timedelta(hours=3), set()) == 1
    assert missed(sub, late, timedelta(hours=3), {date(2026, 11, 30)}) == 0
    in_time = next_send(sub, late, timedelta(hours=5), set())
    assert in_time is not None and in_time.due_now
