"""Tell ops what each briefing sends next: by timezone and local send time, with counts.

Each active subscription's next edition is the first one it has not been
dispatched yet: one already due and still before the briefing's deadline
(``due now``: the next dispatch sends it, e.g. after a pause or downtime), or
else the next local send moment its frequency includes. Editions due but past
their deadline are counted as ``missed``: the next dispatch records them
expired. Subscriptions with the same timezone, send time, frequency and next
moment form one row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from briefing.config import Config
from briefing.domain.calendar import local_send_moment, missed, next_send
from briefing.store import Database
from briefing.store.controls import ControlState, read_controls
from briefing.store.editions import dispatched_dates
from briefing.store.schedule import active_subscriptions

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


def timetable(
    config: Config, database: Database, now: datetime, *, briefing: str | None = None
) -> list[BriefingTimetable]:
    """Return each briefing's controls and next sends as of ``now``."""
    names = [briefing] if briefing else list(config.briefings)
    result = []
    # Editions exist up to a subscriber's local today, at most a day ahead of UTC.
    since = now.date() - timedelta(days=2)
    with database.transaction() as session:
        controls = read_controls(session)
        for name in names:
            settings = config.briefing(name)
            subscriptions = active_subscriptions(session, name)
            dispatched = dispatched_dates(session, name, since)
            table = BriefingTimetable(
                briefing=name,
                title=settings.title,
                deadline=settings.deadline,
                control=controls.get(name, ControlState(name)),
            )
            counts: Counter[tuple[str, str, str, datetime, date, bool]] = Counter()
            for subscription in subscriptions:
                done = dispatched.get(subscription.subscriber_id, set())
                table.missed += missed(subscription, now, settings.deadline, done)
                upcoming = next_send(subscription, now, settings.deadline, done, _send_moment)
                if upcoming is not None:
                    counts[
                        (
                            subscription.timezone,
                            subscription.send_time,
                            subscription.frequency,
                            upcoming.moment,
                            upcoming.issue_date,
                            upcoming.due_now,
                        )
                    ] += 1
            table.groups = sorted(
                (SendGroup(*key, subscribers=count) for key, count in counts.items()),
                key=lambda group: (group.next_send, group.timezone, group.send_time),
            )
            result.append(table)
    return result
