"""Serve the personal links every message carries: unsubscribe, preferences, view in browser.

GET never changes anything (mail scanners prefetch links). The one-click
POST carries only the token and ``List-Unsubscribe=One-Click`` (RFC 8058): it
acts at once, answers 200 with no redirect and sets no cookie. The
preferences forms carry a form token and are refused when posted cross-site.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from briefing.audience.lifecycle import Preferences, leave_all, set_preferences, unsubscribe
from briefing.config import check_timezone
from briefing.domain.calendar import WEEKDAYS, check_frequency, parse_send_time
from briefing.domain.states import ENDED, SubscriptionState
from briefing.domain.tokens import Purpose
from briefing.editions.variants import ordered_sections
from briefing.pipeline.compose import fill_links
from briefing.pipeline.personalise import personal_tokens
from briefing.store import Session
from briefing.store.copies import edition_copy
from briefing.store.schema import Subscription
from briefing.store.subscriptions import subscription_by_id
from briefing.web.account import ASK_ACTIONS, ask_response
from briefing.web.context import WebContext, context_of
from briefing.web.forms import field, read_form
from briefing.web.pages import EDITION_POLICY, mask, message, page, private_headers
from briefing.web.reader import timezone_choices
from briefing.web.signup import guarded_form, signup_response

logger = logging.getLogger(__name__)

ONE_CLICK = ("List-Unsubscribe", "One-Click")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def unknown_subscription(context: WebContext) -> HTMLResponse:
    """Answer a genuine link whose subscription no longer exists."""
    return message(
        context.site,
        "This link names no subscription",
        "The subscription it belonged to has been removed, so nothing is sent to it. "
        "Nothing was changed.",
        status=404,
    )


def removed_subscription(context: WebContext, *, acted: bool) -> HTMLResponse:
    """Answer an unsubscribe link whose subscriber has been removed: they receive nothing.

    A one-click request (``acted``) is answered 200 as a success (RFC 8058):
    the outcome it asks for, no more mail, already holds.
    """
    return message(
        context.site,
        "You receive nothing from us" if not acted else "You are unsubscribed",
        f"This address has been removed from every list of {context.site.name}, "
        "so nothing is sent to it. There is nothing more to do.",
        link=(context.path("subscribe"), "Changed your mind? Sign up again"),
    )


def _left(context: WebContext, title: str, ident: int, everything: bool = False) -> HTMLResponse:
    """Say the reader left; "sign up again" leads to the one-step re-confirmation."""
    what = f"everything {context.site.name} sends" if everything else title
    return message(
        context.site,
        f"You are unsubscribed from {what}",
        "No more of it will be sent to you; an edition already on its way may still arrive.",
        link=(
            context.path(
                Purpose.PREFERENCES.route, context.signer.sign(Purpose.PREFERENCES, ident)
            ),
            "Changed your mind? Sign up again in one step",
        ),
    )


# --- unsubscribe -----------------------------------------------------------------------------


async def unsubscribe_page(request: Request) -> Response:
    """Show what unsubscribing does and offer the button; change nothing."""
    context = context_of(request)
    token = request.path_params["token"]
    ident = context.verify(token, Purpose.UNSUBSCRIBE)

    def show() -> Response:
        with context.database.transaction() as session:
            subscription = subscription_by_id(session, ident)
            if subscription is None:
                return removed_subscription(context, acted=False)
            title = (
                context.config.briefings[subscription.briefing].title
                if (subscription.briefing in context.config.briefings)
                else subscription.briefing
            )
            status, email = subscription.status, subscription.subscriber.email
        if status in ENDED:
            return _left(context, title, ident)
        return page(
            "unsubscribe.html.j2",
            site=context.site,
            heading=f"Unsubscribe from {title}",
            title=title,
            masked=mask(email),
            preferences=context.path(
                Purpose.PREFERENCES.route, context.signer.sign(Purpose.PREFERENCES, ident)
            ),
        )

    return await run_in_threadpool(show)


async def unsubscribe_one_click(request: Request) -> Response:
    """Unsubscribe at once (RFC 8058): 200, no redirect, no cookie; repeating is harmless."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.UNSUBSCRIBE)
    form = await read_form(request)
    if field(form, ONE_CLICK[0]) != ONE_CLICK[1]:
        return message(
            context.site,
            "That request could not be understood",
            "An unsubscribe request carries List-Unsubscribe=One-Click. Nothing was changed.",
            status=400,
        )

    def act() -> Response:
        now = context.clock()
        with context.database.transaction() as session:
            subscription = subscription_by_id(session, ident)
            if subscription is None:
                return removed_subscription(context, acted=True)
            changed = unsubscribe(session, subscription, source="web:one-click", now=now)
            briefing = subscription.briefing
        if changed:
            logger.info("subscription %d to %s unsubscribed (one-click)", ident, briefing)
        settings = context.config.briefings.get(briefing)
        return _left(context, settings.title if settings else briefing, ident)

    return await run_in_threadpool(act)


# --- preferences -----------------------------------------------------------------------------


def parse_preferences(
    context: WebContext, briefing: str, form: FormData
) -> tuple[Preferences | None, dict[str, str]]:
    """Validate the posted preferences; return them, or the problems by field."""
    errors: dict[str, str] = {}
    chosen = [v for v in form.getlist("sections") if isinstance(v, str)]
    known = ordered_sections(context.config, briefing, list(context.config.sections))
    sections = tuple(key for key in known if key in chosen)
    if not sections or len(sections) != len(set(chosen)):
        errors["sections"] = "Choose at least one of the sections listed."
    send_time = ""
    try:
        send_time = parse_send_time(field(form, "send_time")).strftime("%H:%M")
    except ValueError:
        errors["send_time"] = "Give the send time as hours and minutes, such as 07:30."
    timezone = field(form, "timezone")
    try:
        check_timezone(timezone)
    except ValueError:
        errors["timezone"] = "Choose a timezone from the list."
    frequency = field(form, "frequency")
    if frequency == "weekly":
        frequency = f"weekly:{field(form, 'weekday')}"
    try:
        frequency = check_frequency(frequency)
    except ValueError:
        errors["frequency"] = "Choose every day, Monday to Friday, or one day a week."
    if errors:
        return None, errors
    return Preferences(
        sections=sections,
        timezone=timezone,
        send_time=send_time,
        frequency=frequency,
    ), {}


def _preferences_view(
    context: WebContext,
    request: Request,
    subscription: Subscription,
    *,
    shown: Preferences | None = None,
    chosen_sections: set[str] | None = None,
    notice: str | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    config = context.config
    briefing = subscription.briefing
    settings = config.briefings[briefing]
    current = shown or Preferences.of(subscription)
    checked = (
        chosen_sections
        if chosen_sections is not None
        else set(current.sections or settings.sections)
    )
    frequency, _, weekday = current.frequency.partition(":")
    zones = timezone_choices()
    if current.timezone not in zones:
        zones = (current.timezone, *zones)
    status_note = (
        "Your subscription waits for you to confirm it with the link we emailed you."
        if subscription.status == SubscriptionState.PENDING
        else f"You are not receiving {settings.title} ({subscription.status} on "
        f"{subscription.status_changed_at:%d %B %Y})."
    )
    return page(
        "preferences.html.j2",
        400 if errors else 200,
        site=context.site,
        heading=f"{settings.title}: your settings",
        title=settings.title,
        masked=mask(subscription.subscriber.email),
        active=subscription.status == SubscriptionState.ACTIVE,
        status_note=status_note,
        notice=notice,
        errors=errors or {},
        form_token=context.guard.issue(request.url.path, context.clock()),
        sections=[
            (key, config.sections[key].title, key in checked)
            for key in ordered_sections(config, briefing, list(config.sections))
        ],
        send_time=current.send_time,
        timezone=current.timezone,
        timezones=zones,
        frequency=frequency,
        weekday=weekday or "mon",
        weekdays=list(zip(WEEKDAYS, WEEKDAY_NAMES, strict=True)),
    )


def _load(context: WebContext, session: Session, ident: int) -> Subscription | None:
    subscription = subscription_by_id(session, ident)
    if subscription is None or subscription.briefing not in context.config.briefings:
        return None
    return subscription


async def preferences_page(request: Request) -> Response:
    """Show a subscription's preferences and the ways to leave; change nothing."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.PREFERENCES)

    def show() -> Response:
        with context.database.transaction() as session:
            subscription = _load(context, session, ident)
            if subscription is None:
                return unknown_subscription(context)
            return _preferences_view(context, request, subscription)

    return await run_in_threadpool(show)


async def preferences_post(request: Request) -> Response:
    """Save preferences, leave one briefing or all, or ask for a fresh confirmation link."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.PREFERENCES)
    form, now, refusal = await guarded_form(request)
    if refusal is not None:
        return refusal
    action = field(form, "action")
    client = request.client.host if request.client else "unknown"
    if action in ASK_ACTIONS:
        new_address = field(form, "new_email")
        return await run_in_threadpool(
            lambda: ask_response(context, request, ident, action, new_address, client)
        )

    def act() -> Response:
        with context.database.transaction() as session:
            subscription = _load(context, session, ident)
            if subscription is None:
                return unknown_subscription(context)
            title = context.config.briefings[subscription.briefing].title
            if action == "save":
                if subscription.status != SubscriptionState.ACTIVE:
                    return _preferences_view(context, request, subscription)
                preferences, errors = parse_preferences(context, subscription.briefing, form)
                if preferences is None:
                    submitted = {v for v in form.getlist("sections") if isinstance(v, str)}
                    return _preferences_view(
                        context, request, subscription, errors=errors, chosen_sections=submitted
                    )
                set_preferences(session, subscription, preferences, now=now)
                return _preferences_view(
                    context,
                    request,
                    subscription,
                    notice="Saved. Your next edition follows these settings.",
                )
            if action == "leave":
                unsubscribe(session, subscription, source="web:preferences", now=now)
                return _left(context, title, ident)
            if action == "leave-all":
                leave_all(session, subscription.subscriber, source="web:preferences", now=now)
                return _left(context, title, ident, everything=True)
            email, briefing = subscription.subscriber.email, subscription.briefing
            own = Preferences.of(subscription)  # what the first-edition sentence uses
        if action == "resubscribe":
            return signup_response(
                context,
                email=email,
                briefings=[briefing],
                client=client,
                source="web:preferences",
                preferences={briefing: own},
            )
        return message(
            context.site,
            "That request could not be understood",
            "Nothing was changed.",
            status=400,
        )

    return await run_in_threadpool(act)


# --- view in browser -------------------------------------------------------------------------


async def view_edition(request: Request) -> Response:
    """Serve one reader's edition as it was sent, with their own links filled in."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.VIEW)

    def show() -> Response:
        with context.database.transaction() as session:
            copy = edition_copy(session, ident)
            if copy is None:
                return message(
                    context.site,
                    "This edition is not available",
                    "It was never sent, or its subscriber has been removed.",
                    status=404,
                )
            tokens = personal_tokens(context.signer, copy.subscription_id, copy.edition_id)
            html = fill_links(copy.html, copy.placeholders, tokens)
        return HTMLResponse(html, headers=private_headers(EDITION_POLICY))

    return await run_in_threadpool(show)
