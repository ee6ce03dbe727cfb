"""Tell ops what each briefing sends next: by timezone and local send time, with counts.

Each active subscription's next edition is the first one it has not been
dispatched yet: one already due and still before the briefing's deadline
(``due now``: the next dispatch sends it, e.g. after a pause or downtime), or
else the next local send moment its frequency includes. Editions due but past
their deadline are counted as ``missed``: the next dispatch records them
expired. Subscriptions with the same timezone, send time, frequency and next
moment form one row.

The work is per kind of subscription, not per subscriber: subscriptions with
the same timezone, send time and frequency, the same editions dispatched and
a start on the same side of every send moment in question get the same
answer, so it is computed once for them and counted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from briefing.config import Config
from briefing.domain.calendar import (
    HORIZON_DAYS,
    NextSend,
    local_send_moment,
    missed,
    next_send,
    parse_send_time,
)
from briefing.store import Database
from briefing.store.controls import ControlState, read_controls
from briefing.store.editions import dispatched_dates
from briefing.store.schedule import active_timings

_send_moment = lru_cache(maxsize=4096)(local_send_moment)


@dataclass(frozen=True)
class SendGroup:
    """Subscriptions of one briefing that get their next edition at the same moment."""

    timezone: str
    send_time: str
    frequency: str
    next_send: datetime
    issue_date: date
    due_now: bool
    subscribers: int

    @property
    def local_next_send(self) -> datetime:
        """Return the next send in the group's timezone."""
        return self.next_send.astimezone(ZoneInfo(self.timezone))


@dataclass
class BriefingTimetable:
    """One briefing's controls and upcoming sends."""

    briefing: str
    title: str
    deadline: timedelta
    control: ControlState
    groups: list[SendGroup] = field(default_factory=list)
    missed: int = 0

    @property
    def subscribers(self) -> int:
        """Count the active subscriptions with an upcoming edition."""
        return sum(group.subscribers for group in self.groups)

    @property
    def due_now(self) -> int:
        """Count editions the next dispatch sends (overdue, still before the deadline)."""
        return sum(group.subscribers for group in self.groups if group.due_now)


@dataclass(frozen=True)
class _Timing:
    """What decides a subscription's send moments (a :class:`~briefing.domain.calendar.Timing`)."""

    timezone: str
    send_time: str
    frequency: str
    created_at: datetime


def _moments(zone_name: str, send_time: str, now: datetime) -> list[datetime]:
    """Return every send moment a start time is compared with: local yesterday to the horizon."""
    zone = ZoneInfo(zone_name)
    at = parse_send_time(send_time)
    today = now.astimezone(zone).date()
    return sorted(
        _send_moment(today + timedelta(days=offset), at, zone) for offset in range(-1, HORIZON_DAYS)
    )


_Answer = tuple[int, NextSend | None]
_Key = tuple[str, str, str, int, frozenset[date]]


def timetable(
    config: Config, database: Database, now: datetime, *, briefing: str | None = None
) -> list[BriefingTimetable]:
    """Return each briefing's controls and next sends as of ``now``."""
    names = [briefing] if briefing else list(config.briefings)
    result = []
    # Editions exist up to a subscriber's local today, at most a day ahead of UTC.
    since = now.date() - timedelta(days=2)
    nothing: frozenset[date] = frozenset()
    with database.transaction() as session:
        controls = read_controls(session)
        for name in names:
            settings = config.briefing(name)
            dispatched = dispatched_dates(session, name, since)
            table = BriefingTimetable(
                briefing=name,
                title=settings.title,
                deadline=settings.deadline,
                control=controls.get(name, ControlState(name)),
            )
            moments: dict[tuple[str, str], list[datetime]] = {}
            answers: dict[_Key, _Answer] = {}
            kinds: Counter[_Key] = Counter()
            for subscriber_id, zone, send_time, frequency, created_at in active_timings(
                session, name
            ):
                around = moments.get((zone, send_time))
                if around is None:
                    around = moments[(zone, send_time)] = _moments(zone, send_time, now)
                # A start only matters by which of these moments it precedes.
                key = (
                    zone,
                    send_time,
                    frequency,
                    bisect_left(around, created_at),
                    dispatched.get(subscriber_id, nothing),
                )
                if key not in answers:
                    timing = _Timing(zone, send_time, frequency, created_at)
                    answers[key] = (
                        missed(timing, now, settings.deadline, key[4]),
                        next_send(timing, now, settings.deadline, key[4], _send_moment),
                    )
                kinds[key] += 1
            counts: Counter[tuple[str, str, str, datetime, date, bool]] = Counter()
            for key, count in kinds.items():
                missed_count, upcoming = answers[key]
                table.missed += missed_count * count
                if upcoming is not None:
                    zone, send_time, frequency = key[:3]
                    counts[
                        (
                            zone,
                            send_time,
                            frequency,
                            upcoming.moment,
                            upcoming.issue_date,
                            upcoming.due_now,
                        )
                    ] += count
            table.groups = sorted(
                (SendGroup(*group, subscribers=count) for group, count in counts.items()),
                key=lambda group: (group.next_send, group.timezone, group.send_time),
            )
            result.append(table)
    return result
