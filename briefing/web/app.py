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
    POST <base>/hooks/...    provider webhooks for bounces and complaints, each only when
                             configured (:mod:`briefing.web.hooks`)
    GET  <base>/a/<token>    a single-use self-service link: what it does; changes nothing
    POST <base>/a/<token>    uses it once (download, delete, change of address, undo)
    GET  <base>/archive/<briefing>/...  a briefing's public archive and its Atom feed, only
                             with ``public_archive: true`` (:mod:`briefing.web.archive`)
    GET|POST <base>/desk/... the desk: logins, sessions and the newsroom's pages
                             (:mod:`briefing.web.desk`)
    GET  <base>/metrics      Prometheus metrics, with the bearer token or from an allowed
                             client (:mod:`briefing.web.metrics`); off unless configured
    GET  <base>/healthz      the process is up and its database answers (JSON, 200 or 503)
    GET  <base>/readyz       the database's migrations are current (JSON, 200 or 503)

Any bad token, unknown page or failure answers with a plain page and a 4xx or
5xx status, never a stack trace.

While the application runs (its lifespan), a background thread drains the
ledger's transactional mail, so a confirmation goes out within seconds even
where only ``briefing web`` runs and digests are sent by a cron ``send``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from briefing.audience.accounts import Accounts
from briefing.audience.confirmations import composers
from briefing.audience.webhooks import Fetch
from briefing.config import Config
from briefing.deliver.transactional import DRAIN_INTERVAL, TransactionalDrainer
from briefing.domain.states import ProcessKind
from briefing.domain.tokens import InertTokenError, Purpose, Signer
from briefing.errors import TokenError
from briefing.ops.presence import Presence
from briefing.store import Database
from briefing.web import account, archive, desk, links, signup
from briefing.web.context import WebContext, context_of, utc_now
from briefing.web.forms import MAX_BODY_BYTES, FormGuard
from briefing.web.health import Health
from briefing.web.hooks import Hooks
from briefing.web.limits import SignupLimiter
from briefing.web.metrics import MetricsEndpoint, MetricsGuard
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
    response = message(context.site, heading, str(detail), status=exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _token_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenError)
    context = context_of(request)
    logger.info("refused a %s link: %s", request.url.path.rsplit("/", 2)[-2], exc)
    explanation = (
        "Links in previews, test sends and archived issues show where a reader's link goes; "
        "they act on nobody."
        if isinstance(exc, InertTokenError)
        else "Nothing was changed. Please use the link from your most recent email, copied in full."
    )
    return message(context.site, "This link does not work", _reason(exc), explanation, status=404)


def _reason(exc: TokenError) -> str:
    """Say why a link does not work as a sentence: "It is not valid."."""
    text = exc.message
    if text.startswith("this link "):
        text = "it " + text.removeprefix("this link ")
    return f"{text[:1].upper()}{text[1:]}."


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    context = context_of(request)
    return message(
        context.site,
        "Something went wrong on our side",
        "Nothing you did caused this. Please try again in a few minutes.",
        status=500,
    )


def routes(
    context: WebContext, hooks: Hooks | None = None, ops: Sequence[BaseRoute] = ()
) -> list[BaseRoute]:
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
        *(hooks.routes() if hooks is not None else []),
        Route(f"/{Purpose.ACCOUNT.route}/{{token}}", account.account_page, methods=["GET"]),
        Route(f"/{Purpose.ACCOUNT.route}/{{token}}", account.account_post, methods=["POST"]),
        *archive.routes(),
        *desk.routes(),
        *ops,
    ]
    return [Mount(context.prefix, routes=table)] if context.prefix else table


def ops_routes(config: Config, database: Database) -> list[BaseRoute]:
    """Return the monitoring routes: /metrics, /healthz and /readyz."""
    health = Health(database, config.metrics.health_timeout.total_seconds())
    return [
        Route(
            "/metrics",
            MetricsEndpoint(config, database, MetricsGuard.from_config(config)).scrape,
            methods=["GET"],
        ),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
    ]


def create_app(
    config: Config,
    database: Database,
    keys: Sequence[bytes],
    *,
    clock: Callable[[], datetime] = utc_now,
    drain_interval: float | None = DRAIN_INTERVAL,
    fetch: Fetch | None = None,
    register: bool = True,
    desk_hasher: PasswordHasher | None = None,
) -> Starlette:
    """Build the ASGI application serving the public endpoints.

    With ``drain_interval`` (seconds) its lifespan runs the transactional mail
    drain; None leaves the mail to ``send`` and ``serve``. ``fetch`` is how the
    SES webhook fetches signing certificates and confirms subscriptions
    (httpx by default). With ``register`` its lifespan keeps a ``web`` row in
    the live-process table. ``desk_hasher`` hashes desk passwords (Argon2's
    defaults when None).
    """
    signer = Signer(keys)
    drainer = (
        TransactionalDrainer(
            config, database, composers(config, signer), clock=clock, interval=drain_interval
        )
        if drain_interval is not None
        else None
    )
    context = WebContext(
        config=config,
        database=database,
        signer=signer,
        guard=FormGuard(keys, config.site.base_url),
        limiter=SignupLimiter(config.web, keys),
        clock=clock,
        mail_queued=drainer.wake if drainer is not None else lambda: None,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        presence = (
            Presence(
                database,
                ProcessKind.WEB,
                interval=config.delivery.heartbeat,
                detail={"base_url": config.site.base_url, "drains_mail": drainer is not None},
            )
            if register
            else None
        )
        if presence is not None:
            presence.start()
        if drainer is not None:
            drainer.start()
        try:
            yield
        finally:
            if drainer is not None:
                drainer.stop()
            if presence is not None:
                presence.stop()

    app = Starlette(
        lifespan=lifespan,
        routes=routes(
            context, Hooks(config, database, signer, clock, fetch), ops_routes(config, database)
        ),
        exception_handlers={
            HTTPException: _http_error,
            TokenError: _token_error,
            Exception: _server_error,
        },
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.context = context
    app.state.desk = desk.Desk.build(
        Accounts(database, config.desk, keys[0], desk_hasher),
        context.prefix,
        config.site.base_url,
        keys,
    )
    return app
