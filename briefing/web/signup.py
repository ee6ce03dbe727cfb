"""Serve sign-up and its double opt-in: the form, the confirmation mail, the confirm link.

A sign-up creates (or keeps) a pending subscription and queues a mail with a
signed, expiring confirmation link on the ledger, which the process's
transactional drain sends within seconds; only the POST from that link's page
confirms, so a mail scanner fetching the link confirms nothing. Sign-ups are limited per
address and per client, and the page says the same whether or not the address
was already subscribed.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from briefing.audience.confirmations import queue_confirmation
from briefing.audience.lifecycle import ConfirmOutcome, SignupOutcome, confirm, start_signup
from briefing.domain.addresses import AddressError, mailbox_key, normalise_address
from briefing.domain.text import one_line
from briefing.domain.tokens import Purpose
from briefing.store.signups import confirmation_by_id
from briefing.store.subscriptions import subscription_by_id
from briefing.web.context import WebContext, context_of
from briefing.web.forms import field, read_form
from briefing.web.pages import mask, message, page

logger = logging.getLogger(__name__)


def refused_form(context: WebContext, request: Request, reason: str) -> HTMLResponse:
    """Answer a form posted cross-site or without a fresh form token: 403, nothing changed."""
    logger.info("refused a form posted to %s: %s", request.url.path, reason)
    return message(
        context.config.site,
        "That form could not be accepted",
        f"Nothing was changed: {reason}. Open the page again and resend the form from there.",
        status=403,
        link=(request.url.path, "Open the page again"),
    )


async def guarded_form(request: Request) -> tuple[FormData, datetime, Response | None]:
    """Read a posted form and check it came fresh from our own page: form, now, refusal."""
    context = context_of(request)
    form = await read_form(request)
    now = context.clock()
    reason = context.guard.check(request, form, now)
    return form, now, (refused_form(context, request, reason) if reason else None)


def _briefing_choices(context: WebContext) -> list[tuple[str, str]]:
    return [(key, settings.title) for key, settings in context.config.briefings.items()]


def _subscribe_form(
    context: WebContext,
    request: Request,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(
        "subscribe.html.j2",
        400 if errors else 200,
        site=context.config.site,
        heading=f"Subscribe to {context.config.site.name}",
        briefings=_briefing_choices(context),
        values=values,
        errors=errors or {},
        form_token=context.guard.issue(request.url.path, context.clock()),
    )


async def subscribe_page(request: Request) -> Response:
    """Show the sign-up form (``?briefing=KEY`` chooses the briefing)."""
    context = context_of(request)
    choices = _briefing_choices(context)
    wanted = request.query_params.get("briefing", "")
    chosen = wanted if wanted in context.config.briefings else choices[0][0]
    return _subscribe_form(context, request, {"email": "", "name": "", "briefing": chosen})


def signup_response(
    context: WebContext,
    *,
    email: str,
    briefing: str,
    client: str,
    source: str,
    name: str | None = None,
) -> Response:
    """Start a sign-up within the limits, queue its confirmation, and say what happens next."""
    config = context.config
    now = context.clock()
    with context.database.transaction() as session:
        refusal = context.limiter.check(session, email, client, now)
        if refusal is None:
            context.limiter.record(session, email, client, now)
            signup = start_signup(
                session, config, email=email, briefing=briefing, source=source, now=now, name=name
            )
            if signup.kind == SignupOutcome.CONFIRMATION:
                queue_confirmation(session, config, signup, now)
    if refusal is not None:
        logger.info("sign-up to %s refused: %s", briefing, refusal.reason)
        response = message(
            config.site,
            "Too many sign-ups",
            f"There have been {refusal.reason}. Please try again later.",
            status=429,
        )
        response.headers["Retry-After"] = str(math.ceil(refusal.retry_after.total_seconds()))
        return response
    if signup.kind == SignupOutcome.CONFIRMATION:
        context.mail_queued()
    hours = round(config.web.confirm_within.total_seconds() / 3600)
    title = config.briefings[briefing].title
    return message(
        config.site,
        "Check your inbox",
        f"Unless {email} already receives {title}, a confirmation link is on its way to it.",
        f"Follow the link within {hours} hours to start receiving {title}. "
        "If nothing arrives, look in your spam folder.",
    )


def _valid_elsewhere(address: str) -> bool:
    """Tell whether an address is valid but refused here (a non-ASCII local part)."""
    try:
        mailbox_key(address)
    except AddressError:
        return False
    return True


async def subscribe_post(request: Request) -> Response:
    """Take a sign-up: validate, limit, record as pending, and mail the confirmation link."""
    context = context_of(request)
    form, _, refusal = await guarded_form(request)
    if refusal is not None:
        return refusal
    values = {key: field(form, key) for key in ("email", "name", "briefing")}
    errors: dict[str, str] = {}
    email = ""
    try:
        email = normalise_address(values["email"], smtputf8=context.config.delivery.smtputf8)
    except AddressError:
        errors["email"] = "Enter an email address such as name@example.com."
        if _valid_elsewhere(values["email"]):
            errors["email"] = (
                "Our mail cannot reach an address with accents or other non-ASCII letters "
                "before the @. Please use another address."
            )
    if values["briefing"] not in context.config.briefings:
        errors["briefing"] = "Choose a briefing."
    if errors:
        return _subscribe_form(context, request, values, errors)
    name = one_line(values["name"])[:200] or None
    client = request.client.host if request.client else "unknown"
    return await run_in_threadpool(
        lambda: signup_response(
            context,
            email=email,
            briefing=values["briefing"],
            client=client,
            source="web:subscribe",
            name=name,
        )
    )


def _expired(context: WebContext) -> HTMLResponse:
    return message(
        context.config.site,
        "This confirmation link has expired",
        "Nothing was changed. Sign up again to get a fresh link.",
        status=410,
        link=(context.path("subscribe"), "Sign up again"),
    )


def _subscribed(context: WebContext, subscription_id: int, briefing: str) -> HTMLResponse:
    title = context.config.briefings[briefing].title
    return message(
        context.config.site,
        f"You are subscribed to {title}",
        "Your first edition arrives at your next send time.",
        link=(
            context.path(
                Purpose.PREFERENCES.route, context.signer.sign(Purpose.PREFERENCES, subscription_id)
            ),
            "Choose your sections, send time and timezone",
        ),
    )


def _unknown_confirmation(context: WebContext) -> HTMLResponse:
    return message(
        context.config.site,
        "This confirmation link names no sign-up",
        "The sign-up it belonged to has been removed. Nothing was changed.",
        status=404,
        link=(context.path("subscribe"), "Sign up"),
    )


async def confirm_page(request: Request) -> Response:
    """Show the confirm button for a sign-up; change nothing (scanners fetch links)."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.CONFIRM)

    def show() -> Response:
        with context.database.transaction() as session:
            confirmation = confirmation_by_id(session, ident)
            if confirmation is None:
                return _unknown_confirmation(context)
            subscription = subscription_by_id(session, confirmation.subscription_id)
            assert subscription is not None
            briefing, email = subscription.briefing, subscription.subscriber.email
            used, expires_at = confirmation.confirmed_at, confirmation.expires_at
        if briefing not in context.config.briefings:
            return _unknown_confirmation(context)
        if used is not None:
            return _subscribed(context, subscription.id, briefing)
        if context.clock() > expires_at:
            return _expired(context)
        title = context.config.briefings[briefing].title
        return page(
            "confirm.html.j2",
            site=context.config.site,
            heading=f"Confirm your subscription to {title}",
            title=title,
            masked=mask(email),
            form_token=context.guard.issue(request.url.path, context.clock()),
        )

    return await run_in_threadpool(show)


async def confirm_post(request: Request) -> Response:
    """Confirm a sign-up: the subscription becomes active (and its address unsuppressed)."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.CONFIRM)
    _, now, refusal = await guarded_form(request)
    if refusal is not None:
        return refusal

    def act() -> Response:
        with context.database.transaction() as session:
            confirmed = confirm(session, context.config, ident, now)
        if (
            confirmed.outcome == ConfirmOutcome.UNKNOWN
            or confirmed.briefing not in context.config.briefings
        ):
            return _unknown_confirmation(context)
        if confirmed.outcome == ConfirmOutcome.EXPIRED:
            return _expired(context)
        assert confirmed.subscription_id is not None and confirmed.briefing is not None
        if confirmed.outcome == ConfirmOutcome.CONFIRMED:
            logger.info(
                "subscription %d to %s confirmed", confirmed.subscription_id, confirmed.briefing
            )
        return _subscribed(context, confirmed.subscription_id, confirmed.briefing)

    return await run_in_threadpool(act)
