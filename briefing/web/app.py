"""Build the web application: routes under ``base_url``'s path, context, error pages.

Routes (``<base>`` is the path of ``site.base_url``, e.g. ``/briefing``):

    GET  <base>/u/<token>    confirm page for unsubscribing; changes nothing
    POST <base>/u/<token>    RFC 8058 one-click unsubscribe (List-Unsubscribe=One-Click)
    GET  <base>/p/<token>    preferences: sections, send time, timezone, frequency, leaving
    POST <base>/p/<token>    save them, leave this briefing or all, or ask to come back
    GET  <base>/e/<token>    the browser copy of one edition, with its reader's links
    GET  <base>/subscribe    sign-up form
    POST <base>/subscribe    sign-up: sends a confirmation link (double opt-in)
    GET  <base>/c/<token>    confirm page for a sign-up; changes nothing
    POST <base>/c/<token>    confirms it

Any bad token, unknown page or failure answers with a plain page and a 4xx or
5xx status, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from briefing.config import Config
from briefing.domain.tokens import InertTokenError, Purpose, Signer
from briefing.errors import TokenError
from briefing.store import Database
from briefing.web import links, signup
from briefing.web.context import WebContext, context_of, utc_now
from briefing.web.forms import MAX_BODY_BYTES, FormGuard
from briefing.web.limits import SignupLimiter
from briefing.web.pages import message

logger = logging.getLogger(__name__)


_HEADINGS = {
    400: "That request could not be understood",
    403: "That form could not be accepted",
    404: "Page not found",
    405: "That is not allowed here",
    413: "That was too large",
    429: "Too many requests",
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    context = context_of(request)
    detail = (
        exc.detail
        if exc.status_code != 404
        else (f"There is nothing at this address. To sign up, go to {context.path('subscribe')}.")
    )
    heading = _HEADINGS.get(exc.status_code, "That request could not be served")
    response = message(context.config.site, heading, str(detail), status=exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _token_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenError)
    context = context_of(request)
    logger.info("refused a %s link: %s", request.url.path.rsplit("/", 2)[-2], exc)
    explanation = (
        "Links in previews and test sends show where a reader's link goes; they act on nobody."
        if isinstance(exc, InertTokenError)
        else "Nothing was changed. Please use the link from your most recent email, copied in full."
    )
    return message(context.config.site, f"This link does not work: {exc}", explanation, status=404)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    context = context_of(request)
    return message(
        context.config.site,
        "Something went wrong on our side",
        "Nothing you did caused this. Please try again in a few minutes.",
        status=500,
    )


def routes(context: WebContext) -> list[BaseRoute]:
    """Return the routes, mounted under ``base_url``'s path when it has one."""
    unsubscribe, preferences, view, confirm = (
        f"/{purpose.route}/{{token}}"
        for purpose in (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES, Purpose.VIEW, Purpose.CONFIRM)
    )
    table: list[BaseRoute] = [
        Route(unsubscribe, links.unsubscribe_page, methods=["GET"]),
        Route(unsubscribe, links.unsubscribe_one_click, methods=["POST"]),
        Route(preferences, links.preferences_page, methods=["GET"]),
        Route(preferences, links.preferences_post, methods=["POST"]),
        Route(view, links.view_edition, methods=["GET"]),
        Route("/subscribe", signup.subscribe_page, methods=["GET"]),
        Route("/subscribe", signup.subscribe_post, methods=["POST"]),
        Route(confirm, signup.confirm_page, methods=["GET"]),
        Route(confirm, signup.confirm_post, methods=["POST"]),
    ]
    return [Mount(context.prefix, routes=table)] if context.prefix else table


def create_app(
    config: Config,
    database: Database,
    keys: Sequence[bytes],
    *,
    clock: Callable[[], datetime] = utc_now,
) -> Starlette:
    """Build the ASGI application serving the public endpoints."""
    context = WebContext(
        config=config,
        database=database,
        signer=Signer(keys),
        guard=FormGuard(keys, config.site.base_url),
        limiter=SignupLimiter(config.web, keys),
        clock=clock,
    )
    app = Starlette(
        routes=routes(context),
        exception_handlers={
            HTTPException: _http_error,
            TokenError: _token_error,
            Exception: _server_error,
        },
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.context = context
    return app
