"""Serve sign-up and its double opt-in: the form, the confirmation mail, the confirm link.

A sign-up names one or several briefings, the reader's timezone and send
time; it creates (or keeps) a pending subscription per briefing and queues
one mail with one signed, expiring confirmation link for them all on the
ledger, which the process's
transactional drain sends within seconds; only the POST from that link's page
confirms, so a mail scanner fetching the link confirms nothing. Sign-ups are limited per
address and per client, and the page says the same whether or not the address
was already subscribed. A hidden field (a honeypot) that a person never
fills makes the answer look the same and stores nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from briefing.audience.confirmations import queue_confirmation, titles_of
from briefing.audience.lifecycle import (
    ConfirmOutcome,
    Preferences,
    SignupOutcome,
    confirm,
    start_signups,
)
from briefing.domain.addresses import AddressError, mailbox_key, normalise_address
from briefing.domain.calendar import parse_send_time
from briefing.domain.text import one_line
from briefing.domain.tokens import Purpose
from briefing.store import Session
from briefing.store.schema import Confirmation
from briefing.store.signups import confirmation_by_id, members_of
from briefing.store.subscriptions import subscription_by_id
from briefing.web.context import WebContext, context_of
from briefing.web.forms import field, read_form
from briefing.web.limits import Refusal
from briefing.web.pages import mask, message, page
from briefing.web.reader import describe_frequency, first_edition, timezone_choices

logger = logging.getLogger(__name__)


def refused_form(context: WebContext, request: Request, reason: str) -> HTMLResponse:
    """Answer a form posted cross-site or without a fresh form token: 403, nothing changed."""
    logger.info("refused a form posted to %s: %s", request.url.path, reason)
    return message(
        context.site,
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


HONEYPOT = "website"  # hidden from people; a bot that fills every field fills it


@dataclass(frozen=True)
class BriefingChoice:
    """One briefing on the sign-up form, with when it usually arrives."""

    key: str
    title: str
    when: str  # "every day at 07:00"


def _briefing_choices(context: WebContext) -> list[BriefingChoice]:
    return [
        BriefingChoice(
            key,
            settings.title,
            f"{describe_frequency(settings.frequency)} at {settings.send_time:%H:%M}",
        )
        for key, settings in context.config.briefings.items()
    ]


def _subscribe_form(
    context: WebContext,
    request: Request,
    values: dict[str, str],
    chosen: list[str],
    errors: dict[str, str] | None = None,
    *,
    from_browser: bool = False,
) -> HTMLResponse:
    zones = timezone_choices()
    return page(
        "subscribe.html.j2",
        400 if errors else 200,
        site=context.site,
        heading=f"Subscribe to {context.site.name}",
        briefings=_briefing_choices(context),
        chosen=chosen,
        values=values,
        timezones=zones,
        from_browser=from_browser,
        honeypot=HONEYPOT,
        errors=errors or {},
        form_token=context.guard.issue(request.url.path, context.clock()),
    )


def _default_zone(context: WebContext, chosen: list[str]) -> str:
    """Return the zone the form starts with: the first chosen briefing's (else the first's)."""
    briefings = context.config.briefings
    return briefings[chosen[0] if chosen else next(iter(briefings))].timezone


async def subscribe_page(request: Request) -> Response:
    """Show the sign-up form (``?briefing=KEY`` ticks that briefing; the first by default)."""
    context = context_of(request)
    wanted = request.query_params.get("briefing", "")
    first = next(iter(context.config.briefings))
    chosen = wanted if wanted in context.config.briefings else first
    values = {
        "email": "",
        "name": "",
        "timezone": _default_zone(context, [chosen]),
        "send_time": "",
    }
    return _subscribe_form(context, request, values, [chosen], from_browser=True)


def _preferences_for(
    context: WebContext, briefings: list[str], timezone: str | None, send_time: str | None
) -> dict[str, Preferences]:
    """Return each chosen briefing's preferences: the reader's zone and time, else its own."""
    chosen = {}
    for briefing in briefings:
        defaults = Preferences.defaults(context.config, briefing)
        chosen[briefing] = Preferences(
            None,
            timezone or defaults.timezone,
            send_time or defaults.send_time,
            defaults.frequency,
        )
    return chosen


def _check_inbox(
    context: WebContext,
    email: str,
    preferences: dict[str, Preferences],
    now: datetime,
) -> HTMLResponse:
    config = context.config
    titles = titles_of(config, list(preferences))
    hours = round(config.web.confirm_within.total_seconds() / 3600)
    first = []
    for briefing, chosen in preferences.items():
        when = first_edition(chosen.timezone, chosen.send_time, chosen.frequency, now)
        if when is not None:
            title = config.briefings[briefing].title
            first.append(f"If you confirm now, your first edition of {title} arrives {when}.")
    return message(
        context.site,
        "Check your inbox",
        f"Unless {email} already receives {titles}, one confirmation link for "
        f"{'all of them' if len(preferences) > 1 else 'it'} is on its way to it.",
        f"Follow the link within {hours} hours to start receiving {titles}. "
        "If nothing arrives, look in your spam folder.",
        *first,
    )


def signup_response(
    context: WebContext,
    *,
    email: str,
    briefings: list[str],
    client: str,
    source: str,
    name: str | None = None,
    preferences: dict[str, Preferences] | None = None,
) -> Response:
    """Start a sign-up within the limits, queue its one confirmation, and say what happens next."""
    config = context.config
    now = context.clock()
    chosen = preferences or _preferences_for(context, briefings, None, None)
    with context.database.transaction() as session:
        refusal = context.limiter.check(session, email, client, now)
        if refusal is None:
            context.limiter.record(session, email, client, now)
            signups = start_signups(
                session,
                config,
                email=email,
                briefings=briefings,
                source=source,
                now=now,
                name=name,
                preferences=chosen,
            )
            lead = next((s for s in signups if s.kind == SignupOutcome.CONFIRMATION), None)
            if lead is not None:
                queue_confirmation(session, config, lead, now)
    if refusal is not None:
        logger.info("sign-up to %s refused: %s", ", ".join(briefings), refusal.reason)
        return too_many(context, "Too many sign-ups", refusal)
    if lead is not None:
        context.mail_queued()
    return _check_inbox(context, email, chosen, now)


def too_many(context: WebContext, heading: str, refusal: Refusal) -> HTMLResponse:
    """Answer a request over a limit: 429, saying which limit and when to try again."""
    wait = max(1, math.ceil(refusal.retry_after.total_seconds() / 60))
    response = message(
        context.site,
        heading,
        f"There have been {refusal.reason}. Nothing was sent.",
        f"Please try again in {wait} minute{'s' if wait != 1 else ''}.",
        status=429,
    )
    response.headers["Retry-After"] = str(math.ceil(refusal.retry_after.total_seconds()))
    return response


def _valid_elsewhere(address: str) -> bool:
    """Tell whether an address is valid but refused here (a non-ASCII local part)."""
    try:
        mailbox_key(address)
    except AddressError:
        return False
    return True


async def subscribe_post(request: Request) -> Response:
    """Take a sign-up: validate, limit, record as pending, and mail one confirmation link."""
    context = context_of(request)
    form, now, refusal = await guarded_form(request)
    if refusal is not None:
        return refusal
    values = {key: field(form, key) for key in ("email", "name", "timezone", "send_time")}
    # "briefing" (one key) is what the form posted before it offered several.
    wanted = [
        v for v in (*form.getlist("briefings"), *form.getlist("briefing")) if isinstance(v, str)
    ]
    chosen = [key for key in context.config.briefings if key in wanted]
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
    if not chosen or len(chosen) != len(set(wanted)):
        errors["briefings"] = "Choose at least one of the briefings listed."
    if values["timezone"] and values["timezone"] not in timezone_choices():
        errors["timezone"] = "Choose a timezone from the list."
    send_time = None
    if values["send_time"]:
        try:
            send_time = parse_send_time(values["send_time"]).strftime("%H:%M")
        except ValueError:
            errors["send_time"] = "Give the send time as hours and minutes, such as 07:30."
    if errors:
        if not values["timezone"] or "timezone" in errors:
            values["timezone"] = _default_zone(context, chosen)
        return _subscribe_form(context, request, values, chosen, errors)
    preferences = _preferences_for(context, chosen, values["timezone"] or None, send_time)
    if field(form, HONEYPOT):
        # A person never sees the field: answer as if it worked, and store nothing.
        logger.info("sign-up with the hidden field filled in ignored (a form bot)")
        return _check_inbox(context, email, preferences, now)
    name = one_line(values["name"])[:200] or None
    client = request.client.host if request.client else "unknown"
    return await run_in_threadpool(
        lambda: signup_response(
            context,
            email=email,
            briefings=chosen,
            client=client,
            source="web:subscribe",
            name=name,
            preferences=preferences,
        )
    )


def _expired(context: WebContext) -> HTMLResponse:
    return message(
        context.site,
        "This confirmation link has expired",
        "Nothing was changed. Sign up again to get a fresh link.",
        status=410,
        link=(context.path("subscribe"), "Sign up again"),
    )


def subscribed_page(
    context: WebContext, session: Session, subscription_ids: list[int], now: datetime
) -> HTMLResponse:
    """Say what a confirmation started and when each first edition arrives, in the reader's zone."""
    subscriptions = [
        found
        for ident in subscription_ids
        if (found := subscription_by_id(session, ident)) is not None
        and found.briefing in context.config.briefings
    ]
    titles = titles_of(context.config, [s.briefing for s in subscriptions])
    arrivals = []
    for subscription in subscriptions:
        when = first_edition(
            subscription.timezone, subscription.send_time, subscription.frequency, now
        )
        title = context.config.briefings[subscription.briefing].title
        arrivals.append(
            f"Your first edition of {title} arrives {when}."
            if when is not None
            else f"Your first edition of {title} arrives at your next send time."
        )
    return message(
        context.site,
        f"You are subscribed to {titles}",
        *arrivals,
        link=(
            context.path(
                Purpose.PREFERENCES.route,
                context.signer.sign(Purpose.PREFERENCES, subscriptions[0].id),
            ),
            "Choose your sections, send time and timezone",
        ),
    )


def _unknown_confirmation(context: WebContext) -> HTMLResponse:
    return message(
        context.site,
        "This confirmation link names no sign-up",
        "The sign-up it belonged to has been removed. Nothing was changed.",
        status=404,
        link=(context.path("subscribe"), "Sign up"),
    )


def _covered(session: Session, confirmation: Confirmation) -> list[int]:
    """Return the subscriptions a confirmation's link confirms: its own, then its members'."""
    members = members_of(session, confirmation.id)
    return [confirmation.subscription_id, *(m.subscription_id for m in members)]


async def confirm_page(request: Request) -> Response:
    """Show the confirm button for a sign-up; change nothing (scanners fetch links)."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.CONFIRM)

    def show() -> Response:
        now = context.clock()
        with context.database.transaction() as session:
            confirmation = confirmation_by_id(session, ident)
            if confirmation is None:
                return _unknown_confirmation(context)
            subscription = subscription_by_id(session, confirmation.subscription_id)
            assert subscription is not None
            if subscription.briefing not in context.config.briefings:
                return _unknown_confirmation(context)
            covered = _covered(session, confirmation)
            if confirmation.confirmed_at is not None:
                return subscribed_page(context, session, covered, now)
            if now > confirmation.expires_at:
                return _expired(context)
            briefings = [
                found.briefing
                for ident_ in covered
                if (found := subscription_by_id(session, ident_)) is not None
            ]
            email = subscription.subscriber.email
        title = titles_of(context.config, briefings)
        return page(
            "confirm.html.j2",
            site=context.site,
            heading=f"Confirm your subscription to {title}",
            title=title,
            masked=mask(email),
            form_token=context.guard.issue(request.url.path, context.clock()),
        )

    return await run_in_threadpool(show)


async def confirm_post(request: Request) -> Response:
    """Confirm a sign-up: its subscriptions become active (and the address unsuppressed)."""
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
            assert confirmed.subscription_id is not None
            if confirmed.outcome == ConfirmOutcome.CONFIRMED:
                logger.info(
                    "subscription %d to %s confirmed", confirmed.subscription_id, confirmed.briefing
                )
            return subscribed_page(
                context, session, [confirmed.subscription_id, *confirmed.others], now
            )

    return await run_in_threadpool(act)
