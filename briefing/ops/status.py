"""Decide what needs a person: the rules of ``briefing status`` and the desk's ops overview.

The picture is :func:`~briefing.store.metrics.read_ops_picture` (what
``/metrics`` shows) plus the timetable's editions due but not yet dispatched.
The rules, each for a briefing that is not paused:

- ``unsent``: an edition has been due and unsent for longer than
  ``metrics.unsent_after``;
- ``no-serve``: editions are due and no ``briefing serve`` is alive to
  dispatch them; ``no-sender``: deliveries are due and neither ``serve`` nor a
  ``briefing deliver`` worker is alive to send them;

and for the sources: ``source``: a configured source has failed
``ingest.flag_after_failures`` times in a row or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from briefing.config import Config
from briefing.domain.states import ProcessKind
from briefing.ops.timetable import timetable
from briefing.store import Database
from briefing.store.metrics import OpsPicture, read_ops_picture


@dataclass(frozen=True)
class Problem:
    """One thing that needs a person: its rule and what was seen."""

    rule: str
    briefing: str | None
    message: str


def problems(config: Config, picture: OpsPicture, undispatched: dict[str, int]) -> list[Problem]:
    """Apply the rules to the picture; ``undispatched`` is due-but-not-dispatched by briefing."""
    kinds = {row.kind for row in picture.processes}
    found: list[Problem] = []
    for briefing in config.briefings:
        if briefing in picture.paused:
            continue
        waiting = picture.backlog.get(briefing)
        if waiting is not None:
            lag = picture.now - waiting.oldest_due
            if lag > config.metrics.unsent_after:
                found.append(
                    Problem(
                        "unsent",
                        briefing,
                        f"{waiting.editions} edition(s) due and unsent, the oldest for "
                        f"{age(lag)} (over metrics.unsent_after, "
                        f"{age(config.metrics.unsent_after)})",
                    )
                )
            if not kinds & {ProcessKind.SERVE, ProcessKind.DELIVER}:
                found.append(
                    Problem(
                        "no-sender",
                        briefing,
                        f"{waiting.editions} edition(s) due and no `briefing serve` or "
                        "`briefing deliver` is running to send them",
                    )
                )
        due = undispatched.get(briefing, 0)
        if due and ProcessKind.SERVE not in kinds:
            found.append(
                Problem(
                    "no-serve",
                    briefing,
                    f"{due} edition(s) due and not dispatched, and no `briefing serve` is running",
                )
            )
    sources = picture.sources
    if sources.flagged:
        found.append(
            Problem(
                "source",
                None,
                f"{sources.flagged} source(s) failed {config.ingest.flag_after_failures} times in "
                f"a row or more (the worst {sources.max_failures_in_a_row}); "
                "see `briefing sources`",
            )
        )
    return found


def age(span: timedelta) -> str:
    """Say how long a span is, coarsely: 45s, 12m, 3h05m, 4d."""
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


@dataclass(frozen=True)
class Status:
    """The ops picture, each briefing's editions due but not dispatched, and the problems."""

    picture: OpsPicture
    undispatched: dict[str, int]
    problems: list[Problem]


def read_status(config: Config, database: Database, *, schedule: bool = True) -> Status:
    """Read the picture and apply the rules; ``schedule=False`` skips the timetable.

    The timetable reads every active subscription: without it, ``no-serve``
    cannot be found.
    """
    picture = read_ops_picture(config, database)
    undispatched = (
        {table.briefing: table.due_now for table in timetable(config, database, picture.now)}
        if schedule
        else {}
    )
    return Status(picture, undispatched, problems(config, picture, undispatched))
