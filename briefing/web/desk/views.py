"""Serve the desk's pages: login, logout, home, activity, password, the accounts list."""

from __future__ import annotations

import logging
from datetime import UTC

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from briefing.domain.states import Role
from briefing.errors import AccountError
from briefing.ops.timetable import timetable
from briefing.web.context import context_of
from briefing.web.desk.auth import COOKIE, Visit, desk_of, desk_page, desk_view
from briefing.web.forms import FORM_FIELD, field, read_form
from briefing.web.limits import network_of
from briefing.web.pages import message

logger = logging.getLogger(__name__)

WRONG = "That name and password do not match an account. Check both and try again."


def _login_form(
    request: Request,
    wanted: str | None,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
    name: str = "",
) -> Response:
    context = context_of(request)
    desk = desk_of(request)
    return desk_view(
        "desk/login.html.j2",
        request,
        None,
        status=status,
        heading=f"{context.site.name}: desk login",
        error=error,
        notice=notice,
        name=name,
        next=desk.safe_next(wanted),
        form_field=FORM_FIELD,
        form_token=context.guard.issue(desk.path("login"), context.clock()),
    )


async def login_page(request: Request) -> Response:
    """Show the login form, with a notice after a logout or an expired session."""
    notice = {"out": "You are logged out.", "expired": "Your session ended; log in again."}
    wanted = request.query_params.get("next")
    return _login_form(request, wanted, notice=notice.get(request.query_params.get("done", ""), ""))


async def login_post(request: Request) -> Response:
    """Log in: check the form came from our page, the limits, the name and the password."""
    context = context_of(request)
    desk = desk_of(request)
    form = await read_form(request)
    now = context.clock()
    reason = context.guard.check(request, form, now)
    if reason is not None:
        logger.info("desk: refused a login form: %s", reason)
        return message(
            context.site,
            "That form could not be accepted",
            f"Nothing was changed: {reason}. Open the login page again and log in from there.",
            status=403,
            link=(desk.path("login"), "Open the login page"),
        )
    name = field(form, "name")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    client = request.client.host if request.client else "unknown"
    result = await run_in_threadpool(
        desk.accounts.login,
        name,
        password,
        network_of(client),
        now,
        replacing=request.cookies.get(COOKIE) or None,
    )
    if result.limited:
        window = desk.accounts.settings.failure_window.total_seconds()
        refused = _login_form(
            request,
            field(form, "next"),
            status=429,
            name=name,
            error=(
                "Too many failed logins for this account or from your network. "
                f"Wait {max(int(window // 60), 1)} minutes, then try again."
            ),
        )
        refused.headers["Retry-After"] = str(int(window))
        return refused
    if result.user is None or result.session_id is None:
        return _login_form(request, field(form, "next"), status=400, name=name, error=WRONG)
    logger.info("desk: %s logged in", result.user.name)
    target = desk.safe_next(field(form, "next"))
    response = RedirectResponse(target, status_code=303)
    desk.set_cookie(
        response, result.session_id, int(desk.accounts.settings.max_age.total_seconds())
    )
    return response


@desk_page()
async def logout_post(request: Request, visit: Visit) -> Response:
    """Log out: end this session and forget the cookie."""
    desk = desk_of(request)
    await run_in_threadpool(desk.accounts.logout, visit.user, visit.session_id, visit.now)
    response = RedirectResponse(desk.path("login") + "?done=out", status_code=303)
    desk.clear_cookie(response)
    return response


@desk_page()
async def home(request: Request, visit: Visit) -> Response:
    """List the briefings with their next send and how many subscribers it reaches."""
    context = context_of(request)
    tables = await run_in_threadpool(timetable, context.config, context.database, visit.now)
    return desk_view(
        "desk/home.html.j2",
        request,
        visit,
        heading="The desk",
        tables=tables,
        utc=UTC,
    )


@desk_page()
async def activity_page(request: Request, visit: Visit) -> Response:
    """Show the activity list: everyone's for ops and admins, an editor's own."""
    desk = desk_of(request)
    rows = await run_in_threadpool(desk.accounts.activity_for, visit.user)
    return desk_view(
        "desk/activity.html.j2",
        request,
        visit,
        heading="Activity",
        rows=rows,
        everyone=visit.user.role.may(Role.OPS),
    )


@desk_page(Role.OPS)
async def users_page(request: Request, visit: Visit) -> Response:
    """List the desk's accounts with their roles and sessions (ops and admins)."""
    desk = desk_of(request)
    users = await run_in_threadpool(desk.accounts.users, visit.now)
    return desk_view("desk/users.html.j2", request, visit, heading="Accounts", users=users)


def _password_form(
    request: Request, visit: Visit, *, status: int = 200, error: str = "", notice: str = ""
) -> Response:
    return desk_view(
        "desk/password.html.j2",
        request,
        visit,
        status=status,
        heading="Change your password",
        error=error,
        notice=notice,
    )


@desk_page()
async def password_page(request: Request, visit: Visit) -> Response:
    """Show the form to change one's own password."""
    done = request.query_params.get("done") == "1"
    notice = "Your password was changed; every other session of yours has ended." if done else ""
    return _password_form(request, visit, notice=notice)


@desk_page()
async def password_post(request: Request, visit: Visit) -> Response:
    """Change one's own password: every session of the account ends, this browser gets a new one."""
    desk = desk_of(request)
    assert visit.form is not None
    current, new, again = (
        value if isinstance(value := visit.form.get(key), str) else ""
        for key in ("current", "new", "again")
    )
    if new != again:
        return _password_form(request, visit, status=400, error="The new passwords differ.")
    try:
        fresh = await run_in_threadpool(
            desk.accounts.change_own_password, visit.user, current, new, visit.now
        )
    except AccountError as exc:
        return _password_form(
            request, visit, status=400, error=f"{exc.reason[:1].upper()}{exc.reason[1:]}."
        )
    if fresh is None:
        return _password_form(
            request, visit, status=400, error="The current password is not right."
        )
    response = RedirectResponse(desk.path("password") + "?done=1", status_code=303)
    desk.set_cookie(response, fresh, int(desk.accounts.settings.max_age.total_seconds()))
    return response
