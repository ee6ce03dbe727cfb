"""Serve the coming edition of a briefing on the desk: see it, shape it, approve it.

Routes (under ``<base>/desk/``):

    GET  edition/{briefing}/                     to the default issue (oldest held, else next)
    GET  edition/{briefing}/{YYYY-MM-DD}         the issue: approval, variants, items, overrides
    POST edition/{briefing}/{YYYY-MM-DD}/shape   one override: ``action`` pin|drop|headline|
                                                 summary|source|add, ``article`` (id or URL),
                                                 ``text`` (headline and summary only)
    POST edition/{briefing}/{YYYY-MM-DD}/undo    undo one override (``override`` id)
    POST edition/{briefing}/{YYYY-MM-DD}/approve approve the issue (``confirm`` ticked)

Editors and admins see and shape an issue; ops may look at it (the page
has no forms for them) but every POST refuses them. Each handler calls the
service the CLI calls (:mod:`briefing.editions`), records the action in the
activity list and redirects back with a notice named by a short code (never
free text from the query string); a service error comes back as the page
with the message, status 400, nothing changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from briefing.config import Config
from briefing.domain.states import ApprovalMode, DeskAction, OverrideKind, Role
from briefing.editions.approval import IssueStatus, approve, default_issue_date, issue_statuses
from briefing.editions.issue import IssueView, issue_view
from briefing.editions.overrides import OverrideResult, override, overrides_of, undo
from briefing.errors import BriefingError, EditionError
from briefing.store import Database
from briefing.web.context import context_of
from briefing.web.desk.auth import Visit, desk_of, desk_page, desk_view
from briefing.web.forms import field

logger = logging.getLogger(__name__)

# Who sees the page, and who may change it.
VIEWERS = (Role.EDITOR, Role.OPS)
SHAPERS = (Role.EDITOR,)
WITH_TEXT = (OverrideKind.HEADLINE, OverrideKind.SUMMARY)
DONE = {
    "undo": "Override undone.",
    "approve": "Approved: the next dispatch sends what is due; editions past the deadline expire.",
    "approved-before": "This issue had been approved already; that approval stands.",
}


@dataclass(frozen=True)
class Issue:
    """What the page shows: the issue as cut now, and where its approval stands."""

    view: IssueView
    status: IssueStatus | None  # None when the briefing needs no approval


def _load(config: Config, database: Database, briefing: str, day: date, now: datetime) -> Issue:
    """Cut every variant of the issue as now (slow: run it in the threadpool)."""
    view = issue_view(config, database, briefing, day, now)
    status = next(
        (
            s
            for s in issue_statuses(config, database, now, briefing=briefing)
            if s.issue_date == day
        ),
        None,
    )
    if status is None and view.approval_required:
        status = IssueStatus(briefing, day, 0, view.approval)
    return Issue(view, status)


def _issue_path(request: Request, briefing: str, day: date) -> str:
    return desk_of(request).path(f"edition/{briefing}/{day.isoformat()}")


def _not_found(request: Request, visit: Visit, what: str) -> Response:
    return desk_view(
        "desk/message.html.j2",
        request,
        visit,
        status=404,
        heading="No such edition",
        paragraphs=[what],
    )


def _briefing_of(request: Request) -> str | None:
    name = str(request.path_params["briefing"])
    return name if name in context_of(request).config.briefings else None


def _date_of(request: Request) -> date | None:
    text = str(request.path_params["issue_date"])
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if len(text) == 10 else None


def _no_briefing(request: Request, visit: Visit) -> Response:
    names = ", ".join(context_of(request).config.briefings)
    asked = request.path_params["briefing"]
    return _not_found(request, visit, f"There is no briefing {asked!r}; the briefings are {names}.")


def _no_date(request: Request, visit: Visit) -> Response:
    asked = request.path_params["issue_date"]
    return _not_found(request, visit, f"{asked!r} is not an issue date; write it as YYYY-MM-DD.")


def _issue_of(request: Request, visit: Visit) -> tuple[str, date] | Response:
    """Return the briefing and issue date the path names, or the page saying what is wrong."""
    briefing, day = _briefing_of(request), _date_of(request)
    if briefing is None:
        return _no_briefing(request, visit)
    if day is None:
        return _no_date(request, visit)
    return briefing, day


@desk_page(*VIEWERS)
async def edition_default(request: Request, visit: Visit) -> Response:
    """Redirect to the issue an editor most likely means: the oldest held, else the next."""
    briefing = _briefing_of(request)
    if briefing is None:
        return _no_briefing(request, visit)
    context = context_of(request)
    day = await run_in_threadpool(
        default_issue_date, context.config, context.database, briefing, visit.now
    )
    return RedirectResponse(_issue_path(request, briefing, day), status_code=303)


async def _page(
    request: Request,
    visit: Visit,
    briefing: str,
    day: date,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
) -> Response:
    context = context_of(request)
    issue = await run_in_threadpool(
        _load, context.config, context.database, briefing, day, visit.now
    )
    if not notice:
        notice = _notice(request.query_params.get("done", ""), request, issue.view)
    settings = context.config.briefing(briefing)
    titles = {key: section.title for key, section in context.config.sections.items()}
    return desk_view(
        "desk/edition.html.j2",
        request,
        visit,
        status=status,
        heading=f"{settings.title}: issue of {day.isoformat()}",
        briefing=briefing,
        day=day,
        view=issue.view,
        approval_status=issue.status,
        titles=titles,
        shape=any(visit.user.role.may(role) for role in SHAPERS),
        path=_issue_path(request, briefing, day),
        web_schemes=("https://", "http://"),  # only these become links
        error=error,
        notice=notice,
    )


def _notice(done: str, request: Request, view: IssueView) -> str:
    """Turn a redirect's ``done`` code into the sentence shown on top of the page."""
    if done in DONE:
        return DONE[done]
    if done not in {kind.value for kind in OverrideKind}:
        return ""
    number = request.query_params.get("override", "")
    saved = next((o for o in view.overrides if str(o.id) == number), None)
    head = f"Saved: {done} of “{saved.article_title}” (#{saved.id})." if saved else "Saved."
    if not view.cut:
        return f"{head} No variant of this issue is cut yet: every one will carry it."
    editions = sum(variant.editions for variant in view.cut)
    return (
        f"{head} It applies to variants cut from now on; {len(view.cut)} variant(s) already "
        f"cut ({editions:,} edition(s)) keep what they had."
    )


@desk_page(*VIEWERS)
async def edition_page(request: Request, visit: Visit) -> Response:
    """Show the issue as each variant would be cut now, its overrides and its approval."""
    issue = _issue_of(request, visit)
    if isinstance(issue, Response):
        return issue
    return await _page(request, visit, *issue)


def _describe(result: OverrideResult) -> str:
    o = result.override
    text = f": {o.text!r}" if o.text else ""
    return (
        f"{o.briefing} {o.issue_date.isoformat()}: #{o.id} {o.kind} {o.article_title!r} "
        f"<{o.article_url or o.article_id}>{text}"
    )


@desk_page(*SHAPERS)
async def shape_post(request: Request, visit: Visit) -> Response:
    """Store one override of the issue (pin, drop, headline, summary, source, add)."""
    issue = _issue_of(request, visit)
    if isinstance(issue, Response):
        return issue
    briefing, day = issue
    assert visit.form is not None
    context = context_of(request)
    action, article = field(visit.form, "action"), field(visit.form, "article")
    try:
        kind = OverrideKind(action)
    except ValueError:
        known = ", ".join(kind.value for kind in OverrideKind)
        error = f"{action!r} is not something the desk does to an item; one of {known}."
        return await _page(request, visit, briefing, day, status=400, error=error)
    if not article:
        error = f"Name the article to {kind}: its stored URL or id."
        return await _page(request, visit, briefing, day, status=400, error=error)
    raw = visit.form.get("text")
    text = raw if isinstance(raw, str) and kind in WITH_TEXT else None  # the service checks it
    try:
        result = await run_in_threadpool(
            lambda: override(
                context.config,
                context.database,
                briefing,
                day,
                kind,
                article,
                who=visit.user.name,
                now=visit.now,
                text=text,
            )
        )
    except BriefingError as exc:
        return await _page(request, visit, briefing, day, status=400, error=_error(exc))
    accounts = desk_of(request).accounts
    await run_in_threadpool(
        accounts.record, visit.user.actor, DeskAction.OVERRIDE_SAVED, _describe(result), visit.now
    )
    logger.info("desk: %s saved %s", visit.user.name, _describe(result))
    target = f"{_issue_path(request, briefing, day)}?done={kind}&override={result.override.id}"
    return RedirectResponse(target, status_code=303)


@desk_page(*SHAPERS)
async def undo_post(request: Request, visit: Visit) -> Response:
    """Undo one override of the issue by its id."""
    issue = _issue_of(request, visit)
    if isinstance(issue, Response):
        return issue
    briefing, day = issue
    assert visit.form is not None
    context = context_of(request)
    number = field(visit.form, "override")
    if not number.isdigit():
        error = f"{number!r} is not an override's number."
        return await _page(request, visit, briefing, day, status=400, error=error)
    try:
        result = await run_in_threadpool(
            _undo_of_issue, context.config, context.database, briefing, day, int(number), visit
        )
    except BriefingError as exc:
        return await _page(request, visit, briefing, day, status=400, error=_error(exc))
    accounts = desk_of(request).accounts
    await run_in_threadpool(
        accounts.record, visit.user.actor, DeskAction.OVERRIDE_UNDONE, _describe(result), visit.now
    )
    logger.info("desk: %s undid %s", visit.user.name, _describe(result))
    return RedirectResponse(f"{_issue_path(request, briefing, day)}?done=undo", status_code=303)


@desk_page(*SHAPERS)
async def approve_post(request: Request, visit: Visit) -> Response:
    """Approve the issue (the ``confirm`` box ticked): dispatch may send it; overrides freeze."""
    issue = _issue_of(request, visit)
    if isinstance(issue, Response):
        return issue
    briefing, day = issue
    assert visit.form is not None
    context = context_of(request)
    if context.config.briefing(briefing).approval is not ApprovalMode.REQUIRED:
        error = (
            f"{briefing} does not wait for an approval (briefings.{briefing}.approval is none): "
            "each issue goes at its send time."
        )
        return await _page(request, visit, briefing, day, status=400, error=error)
    if field(visit.form, "confirm") != "yes":
        error = "Nothing was approved: tick the box to confirm, then press Approve again."
        return await _page(request, visit, briefing, day, status=400, error=error)
    try:
        result = await run_in_threadpool(
            lambda: approve(
                context.config, context.database, briefing, day, who=visit.user.name, now=visit.now
            )
        )
    except BriefingError as exc:
        return await _page(request, visit, briefing, day, status=400, error=_error(exc))
    if not result.new:
        target = f"{_issue_path(request, briefing, day)}?done=approved-before"
        return RedirectResponse(target, status_code=303)
    accounts = desk_of(request).accounts
    detail = f"{briefing} {day.isoformat()}: {result.status.waiting:,} subscription(s) due"
    await run_in_threadpool(
        accounts.record, visit.user.actor, DeskAction.ISSUE_APPROVED, detail, visit.now
    )
    logger.info("desk: %s approved %s %s", visit.user.name, briefing, day)
    return RedirectResponse(f"{_issue_path(request, briefing, day)}?done=approve", status_code=303)


def _undo_of_issue(
    config: Config, database: Database, briefing: str, day: date, number: int, visit: Visit
) -> OverrideResult:
    """Undo override ``number`` if it is one of this issue's (the service takes any date's)."""
    mine = overrides_of(config, database, briefing, day, include_undone=True)
    if not any(o.id == number for o in mine):
        raise EditionError(f"{briefing} {day.isoformat()}: no override #{number} in this issue")
    return undo(config, database, briefing, number, who=visit.user.name, now=visit.now)


def _error(exc: BriefingError) -> str:
    message = f"Nothing was changed: {exc.message}."
    return f"{message} {exc.hint}" if exc.hint else message
