"""Decide when editions are due: frequencies, local send times and their DST rules.

Every rule here is a pure function of its arguments: no database, no clock.
A subscription gets an edition on each local date its frequency includes, at
its local send time; an edition is due once that moment has passed, and
expired once the briefing's deadline has passed too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A weekly subscription's next edition is at most 7 days ahead; one spare day
# covers a send moment pushed past midnight by a DST gap.
HORIZON_DAYS = 8


def parse_send_time(value: Any) -> time:
    """Read a local wall-clock time written as ``HH:MM``."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 07:00 as sexagesimal 420.
        value = f"{value // 60:02d}:{value % 60:02d}"
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(part) for part in value.strip().split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    raise ValueError(f"expected a time of day as HH:MM, got {value!r}")


def check_frequency(value: str) -> str:
    """Accept ``daily``, ``weekdays`` or ``weekly:<day>`` (``weekly:mon``)."""
    value = value.strip().lower()
    if value in ("daily", "weekdays"):
        return value
    if value.startswith("weekly:") and value.split(":", 1)[1] in WEEKDAYS:
        return value
    raise ValueError(
        f"expected daily, weekdays or weekly:<day> (day one of {', '.join(WEEKDAYS)}), "
        f"got {value!r}"
    )


def frequency_includes(frequency: str, day: date) -> bool:
    """Tell whether a subscription with ``frequency`` gets an edition on ``day``."""
    if frequency == "daily":
        return True
    if frequency == "weekdays":
        return day.weekday() < 5
    return WEEKDAYS[day.weekday()] == frequency.split(":", 1)[1]


def local_send_moment(day: date, send_time: time, zone: ZoneInfo) -> datetime:
    """Return when ``send_time`` happens on ``day`` in ``zone``, as UTC.

    In the spring-forward gap the first valid minute after it is used; in the
    autumn fold, the first of the two moments.
    """
    wall = datetime.combine(day, send_time)
    for minutes in range(24 * 60):
        candidate = (wall + timedelta(minutes=minutes)).replace(tzinfo=zone, fold=0)
        round_trip = candidate.astimezone(UTC).astimezone(zone)
        if round_trip.replace(tzinfo=None) == candidate.replace(tzinfo=None):
            return candidate.astimezone(UTC)
    raise ValueError(f"no valid local time at or after {wall} in {zone}")


class Timing(Protocol):
    """What decides a subscription's send moments."""

    @property
    def timezone(self) -> str: ...

    @property
    def send_time(self) -> str: ...

    @property
    def frequency(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class DueDate:
    """One local issue date a subscription should get (or has missed), and its moment."""

    issue_date: date
    scheduled_at: datetime
    expired: bool


def due_dates(
    timing: Timing, now: datetime, deadline: timedelta, *, force: bool = False
) -> list[DueDate]:
    """List the issue dates due or expired at ``now``: yesterday's and today's, locally.

    ``force`` makes today's edition due at ``now`` whatever the send time.
    """
    zone = ZoneInfo(timing.timezone)
    today = now.astimezone(zone).date()
    if force:
        return [DueDate(today, now, False)]
    send_time = parse_send_time(timing.send_time)
    found = []
    for day in (today - timedelta(days=1), today):
        if not frequency_includes(timing.frequency, day):
            continue
        moment = local_send_moment(day, send_time, zone)
        if moment > now or moment < timing.created_at:
            continue
        found.append(DueDate(day, moment, expired=now > moment + deadline))
    return found


@dataclass(frozen=True)
class NextSend:
    """A subscription's next edition not dispatched yet."""

    moment: datetime
    issue_date: date
    due_now: bool


def next_send(
    timing: Timing,
    now: datetime,
    deadline: timedelta,
    dispatched: AbstractSet[date],
    moment_of: Callable[[date, time, ZoneInfo], datetime] = local_send_moment,
) -> NextSend | None:
    """Return the next edition not in ``dispatched``: one due and in time, else the next moment.

    ``moment_of`` computes a local send moment (pass a cached
    :func:`local_send_moment` when asking for many subscriptions).
    """
    for due in due_dates(timing, now, deadline):
        if due.issue_date not in dispatched and not due.expired:
            return NextSend(due.scheduled_at, due.issue_date, True)
    zone = ZoneInfo(timing.timezone)
    send_time = parse_send_time(timing.send_time)
    today = now.astimezone(zone).date()
    for offset in range(HORIZON_DAYS):
        day = today + timedelta(days=offset)
        if day in dispatched or not frequency_includes(timing.frequency, day):
            continue
        moment = moment_of(day, send_time, zone)
        if moment > now and moment >= timing.created_at:
            return NextSend(moment, day, False)
    return None


def missed(
    timing: Timing, now: datetime, deadline: timedelta, dispatched: AbstractSet[date]
) -> int:
    """Count the editions past their deadline and not in ``dispatched``."""
    return sum(
        1
        for due in due_dates(timing, now, deadline)
        if due.expired and due.issue_date not in dispatched
    )
