"""Guard every desk page: the session cookie, roles, CSRF and safe redirects.

One decorator, :func:`desk_page`, stands in front of every desk route but
the login: it reads the session cookie, sends an anonymous (or expired)
visitor to the login with ``next=`` the page asked for, refuses an account
whose role does not reach the page with a 403 page, and for a POST checks
the browser's origin (:class:`~briefing.web.forms.FormGuard`) and the
session's CSRF token (an HMAC of the session id, in a hidden field, compared
in constant time) before the handler runs.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from briefing.audience.accounts import Accounts, DeskUser, SessionCheck
from briefing.domain.states import Role
from briefing.web.context import context_of
from briefing.web.forms import read_form
from briefing.web.pages import PAGE_POLICY, page

logger = logging.getLogger(__name__)

COOKIE = "briefing_desk"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Desk:
    """What the desk's routes share: the accounts, where the desk lives, its cookie's flags."""

    accounts: Accounts
    root: str  # the desk's home path, ending in "/" (e.g. "/b/desk/")
    secure: bool  # base_url is https: the cookie is sent over https only
    csrf_keys: Sequence[bytes]

    @classmethod
    def build(cls, accounts: Accounts, prefix: str, base_url: str, keys: Sequence[bytes]) -> Desk:
        """Return the desk of a site served under ``prefix`` at ``base_url``."""
        csrf_keys = [hmac.new(key, b"briefing:desk-csrf", hashlib.sha256).digest() for key in keys]
        return cls(accounts, f"{prefix}/desk/", base_url.startswith("https://"), csrf_keys)

    def path(self, route: str = "") -> str:
        """Return the path of a desk route (``login``, ``activity``, ...)."""
        return self.root + route

    def csrf(self, session_id: str) -> str:
        """Return the CSRF token of a session: its forms carry it in a hidden field."""
        return self._csrf_with(self.csrf_keys[0], session_id)

    def _csrf_with(self, key: bytes, session_id: str) -> str:
        return hmac.new(key, session_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def csrf_valid(self, session_id: str, token: str) -> bool:
        """Tell, in constant time, whether ``token`` is this session's CSRF token."""
        return any(
            hmac.compare_digest(self._csrf_with(key, session_id).encode(), token.encode())
            for key in self.csrf_keys
        )

    def set_cookie(self, response: Response, session_id: str, max_age: int) -> None:
        """Give the browser its session: HttpOnly, SameSite=Strict, Secure behind https."""
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=max_age,
            path=self.root.rstrip("/"),
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response) -> None:
        """Tell the browser to forget its session cookie."""
        response.delete_cookie(
            COOKIE, path=self.root.rstrip("/"), secure=self.secure, httponly=True, samesite="strict"
        )

    def safe_next(self, value: str | None) -> str:
        """Return ``value`` if it is a desk page of this site, else the desk's home.

        Only a local path under the desk is followed after a login: no scheme,
        no host, no ``//`` or backslash (browsers read both as another host),
        no control characters, never the login itself.
        """
        if not value or len(value) > 2000:
            return self.root
        if value.startswith(("//", "/\\")) or "\\" in value:
            return self.root
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            return self.root
        parts = urlsplit(value)
        if parts.scheme or parts.netloc or not parts.path.startswith(self.root):
            return self.root
        if parts.path.startswith(self.path("login")):
            return self.root
        return value


def desk_of(request: Request) -> Desk:
    """Return the application's desk."""
    desk: Desk = request.app.state.desk
    return desk


@dataclass(frozen=True)
class Visit:
    """One request of a logged-in account: who, their session, the time, the posted form."""

    user: DeskUser
    session_id: str
    now: datetime
    csrf: str
    form: FormData | None = None


Handler = Callable[[Request, Visit], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def login_redirect(desk: Desk, request: Request, *, expired: bool) -> RedirectResponse:
    """Send a visitor to the login, asking to come back to this page (a GET) afterwards."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = []
    if request.method == "GET" and desk.safe_next(wanted) == wanted and wanted != desk.root:
        query.append("next=" + quote(wanted, safe="/"))
    if expired:
        query.append("done=expired")
    target = desk.path("login") + ("?" + "&".join(query) if query else "")
    return RedirectResponse(target, status_code=303)


def desk_page(*roles: Role) -> Callable[[Handler], Endpoint]:
    """Guard a desk route: logged in, with a role that reaches ``roles`` (any, when none).

    Admin reaches every page; an editor the editor pages, ops the ops pages.
    A POST must also come from our own pages (origin) and carry the
    session's CSRF token; otherwise it is refused with 403 and nothing runs.
    """

    def wrap(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            desk = desk_of(request)
            context = context_of(request)
            now = context.clock()
            session_id = request.cookies.get(COOKIE, "")
            check = (
                await run_in_threadpool(desk.accounts.resume, session_id, now)
                if session_id
                else SessionCheck(None)
            )
            if check.user is None:
                response: Response = login_redirect(desk, request, expired=check.expired)
                if session_id:
                    desk.clear_cookie(response)
                return response
            user = check.user
            csrf = desk.csrf(session_id)
            if roles and not any(user.role.may(role) for role in roles):
                logger.info("desk: %s (%s) refused %s", user.name, user.role, request.url.path)
                return desk_view(
                    "desk/forbidden.html.j2",
                    request,
                    Visit(user, session_id, now, csrf),
                    status=403,
                    heading="Not for your role",
                    needed=[role.value for role in roles],
                )
            form = None
            if request.method == "POST":
                form = await read_form(request)
                reason = context.guard.cross_site(request)
                token = form.get(CSRF_FIELD)
                if reason is None and not (
                    isinstance(token, str) and desk.csrf_valid(session_id, token)
                ):
                    reason = "the form is missing its security token or it is not this session's"
                if reason is not None:
                    logger.info("desk: refused a form posted to %s: %s", request.url.path, reason)
                    return desk_view(
                        "desk/message.html.j2",
                        request,
                        Visit(user, session_id, now, csrf),
                        status=403,
                        heading="That form could not be accepted",
                        paragraphs=[_refusal(reason)],
                    )
            return await handler(request, Visit(user, session_id, now, csrf, form))

        return endpoint

    return wrap


def _refusal(reason: str) -> str:
    return f"Nothing was changed: {reason}. Open the page again and resend the form from there."


def desk_view(
    template: str,
    request: Request,
    visit: Visit | None,
    *,
    status: int = 200,
    policy: str = PAGE_POLICY,
    **values: object,
) -> Response:
    """Render a desk page with its navigation (the account, its role, the CSRF token)."""
    desk = desk_of(request)
    context = context_of(request)
    return page(
        template,
        status,
        policy=policy,
        site=context.site,
        desk=desk,
        user=visit.user if visit else None,
        ops=bool(visit and visit.user.role.may(Role.OPS)),
        csrf=visit.csrf if visit else "",
        csrf_field=CSRF_FIELD,
        **values,
    )
