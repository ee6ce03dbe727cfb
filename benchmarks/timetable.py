"""Time the schedule (``briefing schedule``, the desk's home) against one subscription at a time.

The project of ``approval.py`` with N subscribers (``--subscribers``, default
20,000 and 100,000), spread over eight timezones and two send times, their
``created_at`` spread over the last day and an edition dispatched for some of
them. Measured, ``--runs`` times each (default 5), taking turns:

- ``one at a time``: the calendar asked for every subscription (the way the
  timetable worked before it grouped subscriptions by kind, kept here as the
  baseline and as a check: both must give the same groups);
- ``timetable``: :func:`briefing.ops.timetable.timetable` as the desk and the
  CLI call it.

Prints each median and the ratio.

Run: ``.venv/bin/python benchmarks/timetable.py [--subscribers 20000,100000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402

from benchmarks.approval import prepare  # noqa: E402
from briefing.config import Config, load_config  # noqa: E402
from briefing.domain.calendar import missed, next_send  # noqa: E402
from briefing.domain.tokens import Signer  # noqa: E402
from briefing.editions.dispatch import dispatch  # noqa: E402
from briefing.ops.timetable import timetable  # noqa: E402
from briefing.store import Database, open_database  # noqa: E402
from briefing.store.editions import dispatched_dates  # noqa: E402
from briefing.store.schedule import active_subscriptions  # noqa: E402
from briefing.store.schema import Subscription  # noqa: E402

ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Kiritimati",
]
AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def spread(database: Database, count: int) -> None:
    """Give the subscriptions varied zones, send times and starts, in a few bulk updates."""
    with database.transaction() as session:
        for n, zone in enumerate(ZONES):
            for half, send_time in enumerate(("07:00", "18:30")):
                bucket = n * 2 + half
                session.execute(
                    update(Subscription)
                    .where(Subscription.id % (len(ZONES) * 2) == bucket)
                    .values(
                        timezone=zone,
                        send_time=send_time,
                        created_at=AT - timedelta(hours=2 + bucket),
                    )
                )


def one_at_a_time(config: Config, database: Database) -> dict[Any, int]:
    settings = config.briefing("daily")
    counts: Counter[Any] = Counter()
    with database.transaction() as session:
        dispatched = dispatched_dates(session, "daily", AT.date() - timedelta(days=2))
        for sub in active_subscriptions(session, "daily"):
            done = dispatched.get(sub.subscriber_id, frozenset())
            counts["missed"] += missed(sub, AT, settings.deadline, done)
            upcoming = next_send(sub, AT, settings.deadline, done)
            if upcoming is not None:
                counts[(sub.timezone, sub.send_time, upcoming.moment, upcoming.due_now)] += 1
    return dict(counts)


def grouped(config: Config, database: Database) -> dict[Any, int]:
    (table,) = timetable(config, database, AT)
    counts: Counter[Any] = Counter({"missed": table.missed})
    for g in table.groups:
        counts[(g.timezone, g.send_time, g.next_send, g.due_now)] += g.subscribers
    return dict(counts)


def timed(work: Callable[[Config, Database], object], config: Config, database: Database) -> float:
    started = time.perf_counter()
    work(config, database)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="20000,100000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'subscribers':>11}  {'one at a time':>14}  {'timetable':>10}  ratio")
    for count in (int(n) for n in args.subscribers.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            config = load_config(prepare(Path(folder), count, "none"))
            database = open_database(config.database)
            spread(database, count)
            # London's, Berlin's and UTC's morning editions go out: some have one dispatched.
            dispatch(config, database, Signer([b"benchmark-key-not-secret"]), AT)
            if one_at_a_time(config, database) != grouped(config, database):
                raise SystemExit("the timetable and the calendar disagree")
            slow: list[float] = []
            fast: list[float] = []
            for _ in range(args.runs):
                slow.append(timed(one_at_a_time, config, database))
                fast.append(timed(grouped, config, database))
            database.dispose()
        a, b = statistics.median(slow), statistics.median(fast)
        print(f"{count:>11,}  {a * 1000:>11,.0f} ms  {b * 1000:>7,.0f} ms  {a / b:.1f}x")


if __name__ == "__main__":
    main()
