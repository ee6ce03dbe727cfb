"""Serve the desk's ops pages: the status picture, schedule, sources, ledger, processes, bounces.

And ops' controls of each briefing (pause, resume, run-now, cancel the live
run): a GET shows what the control will do and asks to confirm; the POST
(CSRF-checked by :func:`~briefing.web.desk.auth.desk_page`, with the
``confirm`` field the confirm page sends) calls the same service as the
command line, records who did it in the activity list and redirects (303)
to the overview with a notice. Every list is bounded and paged; every read
runs in the threadpool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from briefing.audience.bounces import recent_events
from briefing.domain.states import BounceKind, DeliveryState, DeskAction, Role
from briefing.ops.controls import (
    ControlState,
    control_of,
    pause,
    read_controls,
    request_run_now,
    resume,
)
from briefing.ops.deliveries import (
    Target,
    cancel_live_run,
    failures,
    issue_summaries,
    issues_between,
    processes,
)
from briefing.ops.locks import scheduler_holder
from briefing.ops.sources import source_health
from briefing.ops.status import age, read_status
from briefing.ops.timetable import timetable
from briefing.web.context import context_of
from briefing.web.desk.auth import Visit, desk_of, desk_page, desk_view

logger = logging.getLogger(__name__)

ISSUE_DAYS_PER_PAGE = 3
FAILURES_PER_PAGE = 50
EVENTS_PER_PAGE = 50
PROCESSES_SHOWN = 200
GROUPS_SHOWN = 100
MAX_PAGE = 10_000
CANCEL_REASON = "cancelled from the desk by {name}"


def _page_number(request: Request) -> int:
    try:
        number = int(request.query_params.get("page", "1"))
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def _not_found(request: Request, visit: Visit, what: str) -> Response:
    return desk_view(
        "desk/message.html.j2",
        request,
        visit,
        status=404,
        heading="Not found",
        paragraphs=[f"There is no {what}."],
    )


# --- pages --------------------------------------------------------------------------


@desk_page(Role.OPS)
async def overview(request: Request, visit: Visit) -> Response:
    """Show what needs a person, each briefing's state and controls, ingest and processes."""
    context = context_of(request)
    config, database = context.config, context.database
    status = await run_in_threadpool(read_status, config, database)
    holder = await run_in_threadpool(scheduler_holder, database)
    controls = await run_in_threadpool(read_controls, database)
    picture = status.picture
    briefings = [
        {
            "name": name,
            "title": settings.title,
            "control": controls.get(name, ControlState(name)),
            "backlog": picture.backlog.get(name),
            "lag": age(picture.now - waiting.oldest_due)
            if (waiting := picture.backlog.get(name))
            else "",
            "undispatched": status.undispatched.get(name, 0),
            "last_dispatch": picture.last_dispatch.get(name),
            "last_dispatch_ago": _ago(picture.now, picture.last_dispatch.get(name)),
            "counts": [
                (state.value, count)
                for state in DeliveryState
                if (count := picture.deliveries.get((name, state), 0))
            ],
        }
        for name, settings in config.briefings.items()
    ]
    kinds: dict[str, int] = {}
    for row in picture.processes:
        kinds[row.kind.value] = kinds.get(row.kind.value, 0) + 1
    return desk_view(
        "desk/ops/overview.html.j2",
        request,
        visit,
        heading="Ops",
        section="overview",
        notice=_notice(request),
        problems=status.problems,
        picture=picture,
        briefings=briefings,
        holder=holder,
        kinds=sorted(kinds.items()),
        last_ingest=_ago(picture.now, picture.sources.last_success),
    )


@desk_page(Role.OPS)
async def schedule_page(request: Request, visit: Visit) -> Response:
    """Show each briefing's next sends by timezone and local time, as ``briefing schedule``."""
    context = context_of(request)
    tables = await run_in_threadpool(timetable, context.config, context.database, visit.now)
    holder = await run_in_threadpool(scheduler_holder, context.database)
    return desk_view(
        "desk/ops/schedule.html.j2",
        request,
        visit,
        heading="Schedule",
        section="schedule",
        tables=tables,
        holder=holder,
        shown=GROUPS_SHOWN,
        utc=UTC,
        now=visit.now,
        age=age,
    )


@desk_page(Role.OPS)
async def sources_page(request: Request, visit: Visit) -> Response:
    """Show each configured source's health, as ``briefing sources``."""
    context = context_of(request)
    health = await run_in_threadpool(source_health, context.config, context.database)
    return desk_view(
        "desk/ops/sources.html.j2",
        request,
        visit,
        heading="Sources",
        section="sources",
        health=health,
        threshold=context.config.ingest.flag_after_failures,
        failing=sum(item.consecutive_failures > 0 for item in health),
        flagged=sum(item.flagged for item in health),
    )


def issue_window(now: datetime, number: int) -> tuple[date, date]:
    """Return the issue dates page ``number`` of the deliveries page shows, oldest first.

    Page 1 ends tomorrow (east of UTC, tomorrow's issue may be out already);
    each page goes ``ISSUE_DAYS_PER_PAGE`` days further back.
    """
    last = now.date() + timedelta(days=1 - ISSUE_DAYS_PER_PAGE * (number - 1))
    return last - timedelta(days=ISSUE_DAYS_PER_PAGE - 1), last


@desk_page(Role.OPS)
async def deliveries_page(request: Request, visit: Visit) -> Response:
    """Show the issues of a span of dates per briefing, deliveries counted by state (paged)."""
    context = context_of(request)
    number = _page_number(request)
    first, last = issue_window(visit.now, number)
    issues = await run_in_threadpool(issues_between, context.database, first, last)
    states = [state for state in DeliveryState if any(state in row.counts for row in issues.rows)]
    return desk_view(
        "desk/ops/deliveries.html.j2",
        request,
        visit,
        heading="Deliveries",
        section="deliveries",
        issues=issues,
        rows=issues.rows,
        states=states,
        paging=_paging(request, number, issues.older),
    )


@desk_page(Role.OPS)
async def issue_page(request: Request, visit: Visit) -> Response:
    """Show one issue's deliveries by state and its failures with the SMTP replies (paged)."""
    context = context_of(request)
    briefing = request.path_params["briefing"]
    try:
        issue = date.fromisoformat(request.path_params["issue"])
    except ValueError:
        return _not_found(request, visit, "such issue date")
    if briefing not in context.config.briefings:
        return _not_found(request, visit, f"briefing {briefing!r}")
    target = Target(briefing=briefing, issue_date=issue)
    number = _page_number(request)
    summary = await run_in_threadpool(issue_summaries, context.database, target)
    failed = await run_in_threadpool(
        lambda: failures(
            context.database,
            target,
            limit=FAILURES_PER_PAGE + 1,
            offset=(number - 1) * FAILURES_PER_PAGE,
        )
    )
    more = len(failed) > FAILURES_PER_PAGE
    return desk_view(
        "desk/ops/issue.html.j2",
        request,
        visit,
        heading=f"{briefing}: issue of {issue.isoformat()}",
        section="deliveries",
        briefing=briefing,
        counts=summary[0].counts if summary else {},
        total=summary[0].total if summary else 0,
        failed=failed[:FAILURES_PER_PAGE],
        paging=_paging(request, number, more),
    )


@desk_page(Role.OPS)
async def processes_page(request: Request, visit: Visit) -> Response:
    """Show the registered processes: kind, host, pid, started, last heartbeat; stale marked."""
    context = context_of(request)
    listing = await run_in_threadpool(
        lambda: processes(context.config, context.database, limit=PROCESSES_SHOWN)
    )
    holder = await run_in_threadpool(scheduler_holder, context.database)
    return desk_view(
        "desk/ops/processes.html.j2",
        request,
        visit,
        heading="Processes",
        section="processes",
        listing=listing,
        holder=holder,
        age=age,
    )


@desk_page(Role.OPS)
async def bounces_page(request: Request, visit: Visit) -> Response:
    """Show the newest bounce and complaint events (paged; ``kind=`` narrows them)."""
    context = context_of(request)
    number = _page_number(request)
    wanted = request.query_params.get("kind", "")
    kinds = [BounceKind(wanted)] if wanted in {kind.value for kind in BounceKind} else []
    events = await run_in_threadpool(
        lambda: recent_events(
            context.database,
            EVENTS_PER_PAGE + 1,
            offset=(number - 1) * EVENTS_PER_PAGE,
            kinds=kinds,
        )
    )
    more = len(events) > EVENTS_PER_PAGE
    return desk_view(
        "desk/ops/bounces.html.j2",
        request,
        visit,
        heading="Bounces and complaints",
        section="bounces",
        events=events[:EVENTS_PER_PAGE],
        kinds=[kind.value for kind in BounceKind],
        kind=kinds[0].value if kinds else "",
        paging=_paging(request, number, more),
    )


# --- controls -----------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """One control on a briefing: what the confirm page says and its button."""

    title: str
    explains: str
    button: str


CONTROLS = {
    "pause": Control(
        "Pause {title}?",
        "Nothing of {name} is dispatched or delivered until it is resumed, by any `briefing "
        "serve` or `briefing deliver` on this database. A message already on the wire still goes.",
        "Pause {name}",
    ),
    "resume": Control(
        "Resume {title}?",
        "The next dispatch sends the editions of {name} still before their deadline and records "
        "those past it as expired.",
        "Resume {name}",
    ),
    "run-now": Control(
        "Run {title} now?",
        "The running `briefing serve` dispatches today's edition of {name} at once to every "
        "subscription that has none yet, and sends it.",
        "Run {name} now",
    ),
    "cancel": Control(
        "Cancel the live run of {title}?",
        "Every delivery of {name} still waiting or being sent is cancelled: a run drops its "
        "claims at its next heartbeat. A message already handed to the relay stays sent; one "
        "on the wire may still go and is then recorded sent. Cancelled deliveries are not sent "
        "again.",
        "Cancel the run of {name}",
    ),
}


def _control_of(request: Request) -> tuple[str, Control] | None:
    name = request.path_params["action"]
    control = CONTROLS.get(name)
    return (name, control) if control else None


@desk_page(Role.OPS)
async def control_page(request: Request, visit: Visit) -> Response:
    """Show what a control will do to a briefing, with a form to confirm it."""
    context = context_of(request)
    briefing = request.path_params["briefing"]
    found = _control_of(request)
    if found is None:
        return _not_found(request, visit, "such control")
    if briefing not in context.config.briefings:
        return _not_found(request, visit, f"briefing {briefing!r}")
    action, control = found
    return _confirm_form(request, visit, briefing, action, control)


def _confirm_form(
    request: Request,
    visit: Visit,
    briefing: str,
    action: str,
    control: Control,
    *,
    status: int = 200,
    error: str = "",
) -> Response:
    context = context_of(request)
    desk = desk_of(request)
    title = context.config.briefing(briefing).title
    return desk_view(
        "desk/ops/confirm.html.j2",
        request,
        visit,
        status=status,
        heading=control.title.format(title=title, name=briefing),
        section="overview",
        explains=control.explains.format(name=briefing),
        button=control.button.format(name=briefing),
        action=desk.path(f"ops/briefings/{briefing}/{action}"),
        back=desk.path("ops/"),
        error=error,
    )


@desk_page(Role.OPS)
async def control_post(request: Request, visit: Visit) -> Response:
    """Apply a confirmed control to a briefing, record it and go back to the overview."""
    context = context_of(request)
    database = context.database
    briefing = request.path_params["briefing"]
    found = _control_of(request)
    if found is None:
        return _not_found(request, visit, "such control")
    if briefing not in context.config.briefings:
        return _not_found(request, visit, f"briefing {briefing!r}")
    action, control = found
    assert visit.form is not None
    if visit.form.get("confirm") != "yes":
        return _confirm_form(
            request,
            visit,
            briefing,
            action,
            control,
            status=400,
            error="Nothing was changed: the form was not confirmed. Use the button below.",
        )
    accounts = desk_of(request).accounts
    who = visit.user
    done: dict[str, str | int] = {"briefing": briefing}
    if action == "pause":
        before = await run_in_threadpool(pause, database, briefing, visit.now, f"{who.name} (desk)")
        done["done"] = "already-paused" if before.paused else "paused"
        if not before.paused:
            await run_in_threadpool(
                accounts.record, who.actor, DeskAction.BRIEFING_PAUSED, briefing, visit.now
            )
    elif action == "resume":
        before = await run_in_threadpool(resume, database, briefing, visit.now)
        done["done"] = "resumed" if before.paused else "not-paused"
        if before.paused:
            await run_in_threadpool(
                accounts.record, who.actor, DeskAction.BRIEFING_RESUMED, briefing, visit.now
            )
    elif action == "run-now":
        state = await run_in_threadpool(control_of, database, briefing)
        holder = await run_in_threadpool(scheduler_holder, database)
        if state.paused:
            done["done"] = "run-now-paused"
        elif holder is None:
            done["done"] = "run-now-no-serve"
        else:
            await run_in_threadpool(request_run_now, database, briefing, visit.now)
            await run_in_threadpool(
                accounts.record, who.actor, DeskAction.RUN_NOW_REQUESTED, briefing, visit.now
            )
            done["done"] = "run-now"
    else:
        stopped = await run_in_threadpool(
            cancel_live_run, database, briefing, visit.now, CANCEL_REASON.format(name=who.name)
        )
        if stopped.nothing:
            done["done"] = "nothing-to-cancel"
        else:
            issues = ", ".join(issue.isoformat() for issue in stopped.issues)
            await run_in_threadpool(
                accounts.record,
                who.actor,
                DeskAction.RUN_CANCELLED,
                f"{briefing} (issues {issues}): {stopped.cancelled} cancelled, "
                f"{stopped.in_flight} in flight, {stopped.sent} already sent",
                visit.now,
            )
            done |= {
                "done": "cancelled",
                "cancelled": stopped.cancelled,
                "in_flight": stopped.in_flight,
                "sent": stopped.sent,
            }
    logger.info("desk: %s: %s %s: %s", who.name, action, briefing, done["done"])
    target = desk_of(request).path("ops/") + "?" + urlencode(done)
    return RedirectResponse(target, status_code=303)


NOTICES = {
    "paused": "Paused {b}: nothing of it is dispatched or delivered until it is resumed.",
    "already-paused": "{b} was already paused; nothing was changed.",
    "resumed": "Resumed {b}: the next dispatch sends what is still before the deadline.",
    "not-paused": "{b} was not paused; nothing was changed.",
    "run-now": "Asked the running scheduler to run {b} now; the ledger below fills as it sends.",
    "run-now-paused": "{b} is paused, so nothing can be sent: resume it first.",
    "run-now-no-serve": (
        "No `briefing serve` is running on this database to take the request; nothing was "
        "changed. Start it, or run `briefing run-now {b}` at the command line."
    ),
    "cancelled": (
        "Cancelled the live run of {b}: {cancelled} delivery(ies) cancelled, {in_flight} in "
        "flight (may still go out), {sent} already sent."
    ),
    "nothing-to-cancel": "Nothing running to cancel for {b}: no delivery is waiting or sending.",
}
REFUSALS = {"run-now-paused", "run-now-no-serve"}


@dataclass(frozen=True)
class Notice:
    """The line the overview shows after a control: what happened, or why nothing did."""

    text: str
    refused: bool


def _notice(request: Request) -> Notice | None:
    query = request.query_params
    template = NOTICES.get(query.get("done", ""))
    briefing = query.get("briefing", "")
    if template is None or briefing not in context_of(request).config.briefings:
        return None
    numbers = {}
    for key in ("cancelled", "in_flight", "sent"):
        value = query.get(key, "0")
        numbers[key] = int(value) if value.isdigit() else 0
    return Notice(template.format(b=briefing, **numbers), query["done"] in REFUSALS)


def _ago(now: datetime, moment: datetime | None) -> str:
    return "never" if moment is None else f"{age(now - moment)} ago"


@dataclass(frozen=True)
class Paging:
    """Links to the previous and next page of a list (None at either end)."""

    number: int
    previous: str | None
    next: str | None


def _paging(request: Request, number: int, more: bool) -> Paging:
    def link(to: int) -> str:
        query = dict(request.query_params) | {"page": str(to)}
        return request.url.path + "?" + urlencode(query)

    return Paging(
        number, link(number - 1) if number > 1 else None, link(number + 1) if more else None
    )
