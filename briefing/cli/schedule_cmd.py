"""Scheduler commands: ``serve``, ``schedule``, ``pause``, ``resume`` and ``run-now``.

``serve`` is the long-running service. The others are ops' controls: they
write rows in ``briefing_controls`` that every dispatch reads, so they act on
a running ``serve`` from any terminal. ``run-now`` hands the work to the
running scheduler when there is one (so every send leaves from one process,
with its transport and limits) and waits for it; with no scheduler running it
dispatches and delivers in this process.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from briefing.cli.app import App, parse_at, pass_app
from briefing.config import format_duration
from briefing.domain.states import DeliveryState
from briefing.errors import BriefingError, SchedulerError
from briefing.ops.controls import control_of, operator, pause, request_run_now, resume
from briefing.ops.locks import scheduler_holder
from briefing.ops.scheduler import Service, serve
from briefing.ops.timetable import BriefingTimetable, timetable
from briefing.store.editions import delivery_counts

RUN_NOW_POLL_SECONDS = 0.5


def _known(app: App, briefing: str) -> str:
    if briefing not in app.config.briefings:
        raise BriefingError(
            f"no briefing {briefing!r} in {app.config_path}",
            hint=f"known briefings: {', '.join(app.config.briefings)}",
        )
    return briefing


def _utc(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if moment else "-"


def _duration(span: timedelta) -> str:
    # Whole minutes: "in 3h 12m" is what an operator reads; seconds are noise here.
    if span < timedelta(minutes=1):
        return "under 1m"
    return format_duration(timedelta(minutes=span // timedelta(minutes=1)))


def _scheduler_line(app: App) -> str:
    holder = scheduler_holder(app.database)
    return (
        f"scheduler: {holder}"
        if holder
        else "scheduler: no `briefing serve` is running on this database"
    )


@click.command("serve")
@click.option(
    "--deliver/--no-deliver",
    "deliver",
    default=None,
    help="Drain the ledger here too, or leave it to `briefing deliver` workers "
    "[default: scheduler.deliver, true].",
)
@pass_app
def serve_command(app: App, deliver: bool | None) -> None:
    """Run the scheduler as a service: ingest, dispatch every minute, deliver; stop on SIGTERM.

    With --no-deliver (or scheduler.deliver: false) it only ingests and
    dispatches; `briefing deliver` workers, on this or other machines, send.
    """
    if not app.debug:
        # A service logs its events by default; APScheduler's per-run chatter only with --debug.
        logging.getLogger("briefing").setLevel(logging.INFO)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    config, signer = app.config, app.signer  # fail on a bad config or missing key first
    serve(
        config,
        app.database,
        signer,
        deliver=config.scheduler.deliver if deliver is None else deliver,
    )


def _timetable_json(tables: list[BriefingTimetable], at: datetime) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "briefings": [
            {
                "briefing": table.briefing,
                "title": table.title,
                "paused": table.control.paused,
                "paused_at": table.control.paused_at.isoformat()
                if table.control.paused_at
                else None,
                "paused_by": table.control.paused_by,
                "run_now_requested_at": (
                    table.control.run_now_requested_at.isoformat()
                    if table.control.run_now_requested_at
                    else None
                ),
                "deadline_minutes": int(table.deadline.total_seconds() // 60),
                "subscribers": table.subscribers,
                "due_now": table.due_now,
                "missed": table.missed,
                "groups": [
                    {
                        "timezone": group.timezone,
                        "send_time": group.send_time,
                        "frequency": group.frequency,
                        "subscribers": group.subscribers,
                        "issue_date": group.issue_date.isoformat(),
                        "next_send": group.next_send.isoformat(),
                        "next_send_local": group.local_next_send.isoformat(),
                        "due_now": group.due_now,
                    }
                    for group in table.groups
                ],
            }
            for table in tables
        ],
    }


def _echo_timetable(table: BriefingTimetable, at: datetime) -> None:
    control = table.control
    state = (
        f"PAUSED since {_utc(control.paused_at)} by {control.paused_by or '?'}"
        if control.paused
        else "not paused"
    )
    click.echo(
        f"{table.briefing} ({table.title}): {state}; {table.subscribers} "
        f"subscriber(s); deadline {_duration(table.deadline)}"
    )
    if control.run_now_requested_at:
        click.echo(f"  run-now requested at {_utc(control.run_now_requested_at)}")
    if table.groups:
        click.echo(
            f"  {'next send (UTC)':<16}  {'local':<22}  {'timezone':<20}  {'time':<5}  "
            f"{'frequency':<10}  {'subscribers':>11}"
        )
    for group in table.groups:
        local = group.local_next_send
        local_text = f"{local:%a %d %b %H:%M} {local.tzname() or ''}"
        when = "due now" if group.due_now else f"in {_duration(group.next_send - at)}"
        click.echo(
            f"  {group.next_send:%Y-%m-%d %H:%M}  {local_text:<22}  {group.timezone:<20}  "
            f"{group.send_time:<5}  {group.frequency:<10}  {group.subscribers:>11}  {when}"
        )
    if control.paused and table.due_now:
        click.echo(
            f"  {table.due_now} edition(s) held back by the pause; resuming sends those "
            f"still before the deadline"
        )
    if table.missed:
        click.echo(
            f"  {table.missed} edition(s) missed their deadline; the next dispatch "
            f"records them expired"
        )


@click.command("schedule")
@click.option("--briefing", "briefing_key", help="Only this briefing.")
@click.option("--at", "at_text", help="As of this time (ISO 8601; naive is UTC); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pass_app
def schedule_command(
    app: App, briefing_key: str | None, at_text: str | None, as_json: bool
) -> None:
    """Show each briefing's next sends by timezone and send time, and whether it is paused."""
    if briefing_key:
        _known(app, briefing_key)
    at = parse_at(at_text)
    tables = timetable(app.config, app.database, at, briefing=briefing_key)
    if as_json:
        click.echo(json.dumps(_timetable_json(tables, at), indent=2))
        return
    click.echo(f"as of {_utc(at)}; {_scheduler_line(app)}")
    for table in tables:
        _echo_timetable(table, at)


@click.command("pause")
@click.argument("briefing")
@pass_app
def pause_command(app: App, briefing: str) -> None:
    """Pause a briefing: nothing is dispatched or delivered until it is resumed."""
    _known(app, briefing)
    before = pause(app.database, briefing, datetime.now(UTC), operator())
    if before.paused:
        click.echo(
            f"{briefing} was already paused (since {_utc(before.paused_at)} by "
            f"{before.paused_by or '?'})"
        )
    else:
        click.echo(
            f"paused {briefing}: nothing is dispatched or delivered until "
            f"`briefing resume {briefing}`"
        )
    click.echo(_scheduler_line(app))


@click.command("resume")
@click.argument("briefing")
@pass_app
def resume_command(app: App, briefing: str) -> None:
    """Resume a paused briefing: what is still before its deadline goes at the next dispatch."""
    _known(app, briefing)
    now = datetime.now(UTC)
    before = resume(app.database, briefing, now)
    if not before.paused:
        click.echo(f"{briefing} was not paused")
    else:
        (table,) = timetable(app.config, app.database, now, briefing=briefing)
        click.echo(
            f"resumed {briefing} (paused since {_utc(before.paused_at)}): the next dispatch "
            f"sends {table.due_now} edition(s) still before the deadline and records "
            f"{table.missed} past it as expired"
        )
    click.echo(_scheduler_line(app))


def _ledger_since(app: App, briefing: str, since: datetime) -> Counter[DeliveryState]:
    with app.database.transaction() as session:
        return delivery_counts(session, briefing, since)


def _wait_for_scheduler(app: App, briefing: str, requested_at: datetime, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if control_of(app.database, briefing).run_now_requested_at != requested_at:
            return True
        time.sleep(RUN_NOW_POLL_SECONDS)
    return False


@click.command("run-now")
@click.argument("briefing")
@click.option(
    "--wait",
    "wait_seconds",
    default=120.0,
    show_default=True,
    help="Seconds to wait for a running scheduler to do it; 0 returns at once.",
)
@pass_app
def run_now_command(app: App, briefing: str, wait_seconds: float) -> None:
    """Dispatch today's edition now to every subscription of BRIEFING that has none."""
    _known(app, briefing)
    control = control_of(app.database, briefing)
    if control.paused:
        raise SchedulerError(
            f"{briefing} is paused (since {_utc(control.paused_at)} by "
            f"{control.paused_by or '?'}); nothing can be sent",
            hint=f"`briefing resume {briefing}` first",
        )
    holder = scheduler_holder(app.database)
    if holder:
        requested_at = datetime.now(UTC)
        request_run_now(app.database, briefing, requested_at)
        click.echo(f"asked the running scheduler to run {briefing} now: {holder}")
        if wait_seconds <= 0:
            return
        if not _wait_for_scheduler(app, briefing, requested_at, wait_seconds):
            click.echo(
                f"the scheduler has not taken the request within {wait_seconds:g} s; it "
                f"stays and is taken at its next poll",
                err=True,
            )
            sys.exit(1)
        counts = _ledger_since(app, briefing, requested_at)
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        unfinished = counts[DeliveryState.PENDING] + counts[DeliveryState.SENDING]
        failed = counts[DeliveryState.FAILED]
        outcome = "not finished" if unfinished else "done"
        click.echo(
            f"{outcome}: {sum(counts.values())} edition(s) dispatched since the request"
            f"{': ' + summary if summary else ''}"
        )
        if unfinished:
            still = scheduler_holder(app.database)
            click.echo(
                f"the run did not finish: {unfinished} edition(s) still to send; "
                + (
                    f"the scheduler sends them later ({still})"
                    if still
                    else "the scheduler has stopped; they go when `briefing serve` starts again"
                ),
                err=True,
            )
        if failed:
            click.echo(
                f"{failed} delivery(ies) failed: see `briefing deliveries --failed`", err=True
            )
        if unfinished or failed:
            sys.exit(1)
        return
    click.echo("no `briefing serve` is running on this database: running it in this process")
    ran = Service(app.config, app.database, app.signer).run_now(briefing)
    report = ran.dispatched
    click.echo(
        f"dispatched {report.dispatched} edition(s) in {report.variants} variant(s): "
        f"{report.pending} to send, {report.skipped} skipped (empty), "
        f"{report.suppressed} suppressed ({report.seconds:.1f} s)"
    )
    for name, delivered in ran.drain.delivered.items():
        click.echo(
            f"delivered {name}: {delivered.sent} sent, {delivered.deferred} deferred, "
            f"{delivered.failed} failed"
        )
    for name, failure in ran.drain.failures.items():
        click.echo(f"problem: {name}: {failure}", err=True)
    stopped = {name: d.stopped for name, d in ran.drain.delivered.items() if d.stopped}
    for name, why in stopped.items():
        click.echo(f"the run did not finish: {name}: {why}", err=True)
    if stopped or ran.drain.failures or any(d.failed for d in ran.drain.delivered.values()):
        sys.exit(1)


COMMANDS = [serve_command, schedule_command, pause_command, resume_command, run_now_command]
