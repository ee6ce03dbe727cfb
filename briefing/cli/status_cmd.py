"""``briefing status``: what ops watch, in a terminal, and whether a person is needed.

It reads the same picture as ``GET <base>/metrics`` (:mod:`briefing.store.metrics`)
plus the timetable's editions due but not yet dispatched, and applies the
rules. Exit status (usable as a systemd or cron check):

- 0: nothing needs a person;
- 1: the status could not be read (a bad config, the database unreachable);
- 3: something needs a person; each problem is printed under "needs a
  person" (``problems`` with ``--json``).

The rules (``unsent``, ``no-serve``, ``no-sender``, ``source``) live in
:mod:`briefing.ops.status`, which the desk's ops overview applies too.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from briefing.cli.app import App, pass_app
from briefing.config import Config
from briefing.domain.states import DeliveryState
from briefing.ops.status import Problem, age, read_status
from briefing.store.metrics import OpsPicture

NEEDS_A_PERSON = 3


def _since(now: datetime, moment: datetime | None) -> str:
    return "never" if moment is None else f"{age(now - moment)} ago"


def as_json(
    config: Config, picture: OpsPicture, undispatched: dict[str, int], found: list[Problem]
) -> dict[str, Any]:
    """Return the status as one JSON-ready object."""
    now = picture.now
    return {
        "now": now.isoformat(),
        "needs_a_person": bool(found),
        "problems": [{"rule": p.rule, "briefing": p.briefing, "message": p.message} for p in found],
        "processes": [
            {
                "kind": row.kind.value,
                "host": row.host,
                "pid": row.pid,
                "started_at": row.started_at.isoformat(),
                "heartbeat_seconds_ago": round((now - row.heartbeat_at).total_seconds(), 1),
            }
            for row in picture.processes
        ],
        "briefings": {
            name: _briefing_json(name, picture, undispatched) for name in config.briefings
        },
        "sources": {
            "configured": picture.sources.configured,
            "failing": picture.sources.failing,
            "flagged": picture.sources.flagged,
            "max_failures_in_a_row": picture.sources.max_failures_in_a_row,
            "last_ingest": _iso(picture.sources.last_success),
        },
    }


def _briefing_json(name: str, picture: OpsPicture, undispatched: dict[str, int]) -> dict[str, Any]:
    waiting = picture.backlog.get(name)
    return {
        "paused": name in picture.paused,
        "due_unsent": waiting.editions if waiting else 0,
        "oldest_due_unsent_seconds": (
            round((picture.now - waiting.oldest_due).total_seconds()) if waiting else 0
        ),
        "due_not_dispatched": undispatched.get(name, 0),
        "last_dispatch": _iso(picture.last_dispatch.get(name)),
        "deliveries_since": picture.since.isoformat(),
        "deliveries": {
            state.value: count
            for (briefing, state), count in sorted(picture.deliveries.items())
            if briefing == name
        },
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def as_text(
    config: Config, picture: OpsPicture, undispatched: dict[str, int], found: list[Problem]
) -> list[str]:
    """Return the status as lines for a terminal."""
    now = picture.now
    lines = [f"briefing status at {now.isoformat(timespec='seconds')} (database time)", ""]
    lines.append("processes:")
    if not picture.processes:
        lines.append("  none running")
    for row in picture.processes:
        lines.append(
            f"  {row.kind.value:<8} {row.host}:{row.pid}  started {_since(now, row.started_at)}, "
            f"heartbeat {_since(now, row.heartbeat_at)}"
        )
    lines += [
        "",
        f"briefings (deliveries of editions due since {picture.since:%Y-%m-%d %H:%M} UTC):",
    ]
    for name in config.briefings:
        waiting = picture.backlog.get(name)
        state = "PAUSED" if name in picture.paused else "running"
        unsent = (
            f"{waiting.editions} due and unsent, oldest {age(now - waiting.oldest_due)}"
            if waiting
            else "nothing due and unsent"
        )
        counts = ", ".join(
            f"{state.value} {count}"
            for state in DeliveryState
            if (count := picture.deliveries.get((name, state), 0))
        )
        lines.append(
            f"  {name}: {state}; {unsent}; {undispatched.get(name, 0)} due, not dispatched"
        )
        lines.append(f"    last dispatch {_since(now, picture.last_dispatch.get(name))}")
        lines.append(f"    deliveries: {counts or 'none'}")
    sources = picture.sources
    lines += [
        "",
        (
            f"sources: {sources.configured} configured, {sources.failing} failing "
            f"({sources.flagged} flagged, worst {sources.max_failures_in_a_row} in a row); "
            f"last ingest {_since(now, sources.last_success)}"
        ),
        "",
    ]
    lines.append("needs a person:" if found else "nothing needs a person")
    lines += [f"  [{p.rule}] {p.briefing + ': ' if p.briefing else ''}{p.message}" for p in found]
    return lines


@click.command("status")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object.")
@click.option(
    "--no-schedule",
    is_flag=True,
    help="Skip the timetable (editions due but not dispatched), which reads every "
    "active subscription.",
)
@pass_app
def status_command(app: App, json_output: bool, no_schedule: bool) -> None:
    """Show processes, due-but-unsent editions, pauses, ingest and sources; exit 3 if a person is needed."""
    config = app.config
    status = read_status(config, app.database, schedule=not no_schedule)
    picture, undispatched, found = status.picture, status.undispatched, status.problems
    if json_output:
        click.echo(json.dumps(as_json(config, picture, undispatched, found), ensure_ascii=False))
    else:
        for line in as_text(config, picture, undispatched, found):
            click.echo(line)
    if found:
        sys.exit(NEEDS_A_PERSON)


COMMANDS = [status_command]
