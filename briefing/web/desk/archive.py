"""Serve the desk's archive: past issues of every briefing, their variants and delivery figures.

Every desk role may read it; it changes nothing, so nothing is recorded in
the activity list. A variant is shown in a sandboxed iframe whose document
comes from its own route with its own policy (no script at all, framed only
by the desk), with inert links.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from briefing.domain.states import DeliveryState
from briefing.editions.archive import desk_copy, desk_issue, desk_issues
from briefing.store.archive import IssuePage
from briefing.web.archive import parse_day
from briefing.web.context import context_of
from briefing.web.desk.auth import Visit, desk_page, desk_view
from briefing.web.pages import FRAMED_EDITION_POLICY, FRAMING_POLICY, private_headers

LATEST = 5  # issues per briefing on the archive's first page
PAGE = 10  # issues per page of one briefing's archive: its figures read every edition of them

# The columns of the figures tables: a heading and the delivery states it counts.
FIGURES: tuple[tuple[str, tuple[DeliveryState, ...]], ...] = (
    ("Sent", (DeliveryState.SENT,)),
    ("Waiting", (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.DEFERRED)),
    ("Failed", (DeliveryState.FAILED,)),
    ("Bounced", (DeliveryState.BOUNCED, DeliveryState.COMPLAINED)),
    (
        "Not sent",
        (
            DeliveryState.SKIPPED,
            DeliveryState.SUPPRESSED,
            DeliveryState.EXPIRED,
            DeliveryState.CANCELLED,
        ),
    ),
)


def figure_cells(figures: Counter[DeliveryState]) -> list[int]:
    """Return the editions, then each column of :data:`FIGURES`, of a set of figures."""
    return [sum(figures.values())] + [
        sum(figures[state] for state in states) for _, states in FIGURES
    ]


def _not_found(request: Request, visit: Visit, heading: str, detail: str) -> Response:
    return desk_view(
        "desk/message.html.j2", request, visit, status=404, heading=heading, paragraphs=[detail]
    )


def _briefing(request: Request) -> str | None:
    key = request.path_params["briefing"]
    return key if key in context_of(request).config.briefings else None


@desk_page()
async def archive_home(request: Request, visit: Visit) -> Response:
    """List every briefing with its latest issues and their figures."""
    context = context_of(request)

    def latest() -> list[tuple[str, str, IssuePage]]:
        # One page query per configured briefing (a handful), each bounded to LATEST issues.
        return [
            (key, settings.title, desk_issues(context.database, key, limit=LATEST))
            for key, settings in context.config.briefings.items()
        ]

    briefings = await run_in_threadpool(latest)
    return desk_view(
        "desk/archive.html.j2",
        request,
        visit,
        heading="Archive",
        briefings=briefings,
        columns=[label for label, _ in FIGURES],
        cells=figure_cells,
    )


@desk_page()
async def archive_briefing(request: Request, visit: Visit) -> Response:
    """List one briefing's issues, newest first, a page at a time, with variants and figures."""
    context = context_of(request)
    key = _briefing(request)
    if key is None:
        return _not_found(
            request, visit, "No such briefing", "The archive has no briefing by that name."
        )
    raw_before = request.query_params.get("before")
    before = parse_day(raw_before)
    if raw_before is not None and before is None:
        return desk_view(
            "desk/message.html.j2",
            request,
            visit,
            status=400,
            heading="That page of the archive does not exist",
            paragraphs=[f"before={raw_before!r} is not a date written YYYY-MM-DD."],
        )
    issues = await run_in_threadpool(desk_issues, context.database, key, before=before, limit=PAGE)
    return desk_view(
        "desk/archive_briefing.html.j2",
        request,
        visit,
        heading=f"Archive: {context.config.briefings[key].title}",
        briefing=key,
        issues=issues,
        before=before,
        columns=[label for label, _ in FIGURES],
        cells=figure_cells,
    )


def _issue_day(request: Request) -> date | None:
    return parse_day(request.path_params["day"])


@desk_page()
async def archive_issue(request: Request, visit: Visit) -> Response:
    """Show one issue: its variants with figures, each viewable in a sandboxed frame."""
    context = context_of(request)
    key = _briefing(request)
    day = _issue_day(request)
    issue = (
        await run_in_threadpool(desk_issue, context.database, key, day)
        if key is not None and day is not None
        else None
    )
    if key is None or day is None or issue is None:
        return _not_found(
            request,
            visit,
            "No such issue",
            "No variant of that briefing was cut for that date (dates are written YYYY-MM-DD).",
        )
    chosen = request.query_params.get("variant")
    shown = next((v for v in issue.variants if str(v.id) == chosen), issue.variants[0])
    response = desk_view(
        "desk/archive_issue.html.j2",
        request,
        visit,
        heading=f"{context.config.briefings[key].title}, issue of {day.isoformat()}",
        briefing=key,
        issue=issue,
        shown=shown,
        columns=[label for label, _ in FIGURES],
        cells=figure_cells,
    )
    # The page frames the variant's HTML from our own origin; nothing else may be framed.
    response.headers["Content-Security-Policy"] = FRAMING_POLICY
    return response


async def _copy_of(request: Request) -> tuple[str, str] | None:
    """Return the HTML and text of the variant a request names, with inert links, or None."""
    context = context_of(request)
    key = _briefing(request)
    day = _issue_day(request)
    try:
        variant_id = int(request.path_params["variant"])
    except ValueError:
        return None
    if key is None or day is None:
        return None
    copy = await run_in_threadpool(
        desk_copy, context.database, context.signer, key, day, variant_id
    )
    return (copy.html, copy.text) if copy is not None else None


@desk_page()
async def variant_html(request: Request, visit: Visit) -> Response:
    """Serve a variant's stored HTML with inert links, for the issue page's sandboxed frame."""
    copy = await _copy_of(request)
    if copy is None:
        return _not_found(request, visit, "No such variant", "That issue has no such variant.")
    return HTMLResponse(copy[0], headers=private_headers(FRAMED_EDITION_POLICY))


@desk_page()
async def variant_text(request: Request, visit: Visit) -> Response:
    """Serve a variant's plain-text twin with inert links."""
    copy = await _copy_of(request)
    if copy is None:
        return _not_found(request, visit, "No such variant", "That issue has no such variant.")
    return PlainTextResponse(copy[1], headers=private_headers())
