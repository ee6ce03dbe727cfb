"""Serve the self-service acts: ask for a link from the preferences page, then use it once.

The preferences page (whose token every forwarded digest carries) can only
*ask*: it queues a single-use link to the address on file (download,
delete) or to the new address (change of address), within the sign-up
limits. The link's GET shows a button and changes nothing (mail scanners
fetch links); its POST acts once:

    GET  <base>/a/<token>    what the link does, and its button; changes nothing
    POST <base>/a/<token>    download the JSON, delete everything, move or undo a move
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from briefing.audience.lifecycle import erase
from briefing.audience.selfservice import AccountUse, Used, ask, peek, use
from briefing.domain.addresses import AddressError, normalise_address
from briefing.domain.states import AccountAction
from briefing.domain.tokens import Purpose
from briefing.errors import BriefingError
from briefing.store.subscriptions import subscription_by_id
from briefing.web.context import WebContext, context_of
from briefing.web.pages import mask, message, page, private_headers
from briefing.web.signup import guarded_form, too_many

logger = logging.getLogger(__name__)

ASK_ACTIONS = {
    "export": AccountAction.EXPORT,
    "delete": AccountAction.DELETE,
    "move": AccountAction.MOVE,
}

# What the link's page says before the button, and the button.
PAGES: dict[AccountAction, tuple[str, str, str]] = {
    AccountAction.EXPORT: (
        "Download your data",
        (
            "One file (JSON) with everything we store about {who}: subscriptions, preferences, "
            "sign-ups, deliveries, bounce reports and suppressions."
        ),
        "Download my data",
    ),
    AccountAction.DELETE: (
        "Delete your data",
        (
            "This ends every subscription of {who} and deletes the address with everything we "
            "store about it. Only a one-way hash stays, so nothing is ever sent to it again "
            "unless you sign up anew. It cannot be undone."
        ),
        "Delete everything",
    ),
    AccountAction.MOVE: (
        "Allow the change of address",
        (
            "Your briefings would go to {who} instead of this address. Press the button and "
            "we mail {who} a link to confirm that it is yours."
        ),
        "Allow the change",
    ),
    AccountAction.ADOPT: (
        "Use this address",
        (
            "From now on, your briefings come to {who} instead of the address used so far. "
            "The old address is told, with a link to undo it."
        ),
        "Use this address",
    ),
    AccountAction.UNDO: (
        "Put your address back",
        "Your briefings go back to {who}, as before the change.",
        "Put my address back",
    ),
}


def _minutes(context: WebContext, action: AccountAction) -> str:
    within = (
        context.config.web.undo_within
        if action == AccountAction.UNDO
        else context.config.web.account_link_within
    )
    minutes = round(within.total_seconds() / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"


def _back(context: WebContext, ident: int) -> tuple[str, str]:
    token = context.signer.sign(Purpose.PREFERENCES, ident)
    return context.path(Purpose.PREFERENCES.route, token), "Back to your settings"


def ask_response(
    context: WebContext,
    request: Request,
    ident: int,
    action_name: str,
    new_address: str,
    client: str,
) -> Response:
    """Queue a single-use link for a self-service act; never act on the preferences token."""
    action = ASK_ACTIONS[action_name]
    config = context.config
    now = context.clock()
    target: str | None = None
    if action == AccountAction.MOVE:
        try:
            target = normalise_address(new_address, smtputf8=config.delivery.smtputf8)
        except AddressError:
            return message(
                context.site,
                "That address could not be used",
                "Enter the new address in full, such as name@example.com. Nothing was changed.",
                status=400,
                link=_back(context, ident),
            )
    with context.database.transaction() as session:
        subscription = subscription_by_id(session, ident)
        if subscription is None:
            return message(
                context.site,
                "This link names no subscription",
                "The subscription it belonged to has been removed. Nothing was changed.",
                status=404,
            )
        subscriber = subscription.subscriber
        on_file = subscriber.email
        if target == on_file:
            return message(
                context.site,
                "That is the address we already use",
                "Nothing was changed.",
                status=400,
                link=_back(context, ident),
            )
        refusal = context.limiter.check(session, on_file, client, now)
        if refusal is None and target is not None:
            refusal = context.limiter.check(session, target, client, now)
        if refusal is None:
            context.limiter.record(session, on_file, client, now)
            ask(session, config, subscriber, action, now=now, new_email=target)
    if refusal is not None:
        logger.info(
            "self-service %s for subscription %d refused: %s", action, ident, refusal.reason
        )
        return too_many(context, "Too many requests", refusal)
    context.mail_queued()
    logger.info("self-service %s link queued for subscription %d", action, ident)
    recipient = mask(on_file)
    what = {
        AccountAction.EXPORT: "download your data",
        AccountAction.DELETE: "delete your data",
        AccountAction.MOVE: f"allow the change to {mask(target or '')}",
    }[action]
    return message(
        context.site,
        "Check your inbox",
        f"A link to {what} is on its way to {recipient}.",
        f"For your safety nothing happens from this page: the link works once, within "
        f"{_minutes(context, action)}. If nothing arrives, look in your spam folder.",
        link=_back(context, ident),
    )


def _spent(context: WebContext) -> HTMLResponse:
    return message(
        context.site,
        "This link has been used or has expired",
        "Each of these links works once, for a short while. Nothing was changed. "
        "Ask for a fresh one from the settings page linked in any of your briefings.",
        status=410,
    )


def _unknown(context: WebContext) -> HTMLResponse:
    return message(
        context.site,
        "This link names nothing we store",
        "The address it belonged to has been removed, or the link expired and was deleted. "
        "Nothing was changed.",
        status=404,
    )


async def account_page(request: Request) -> Response:
    """Show what a self-service link does and its button; change nothing."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.ACCOUNT)

    def show() -> Response:
        with context.database.transaction() as session:
            found = peek(session, ident, context.clock())
        if found.outcome == Used.UNKNOWN:
            return _unknown(context)
        if found.outcome == Used.SPENT or found.action is None or found.email is None:
            return _spent(context)
        heading, text, button = PAGES[found.action]
        return page(
            "account.html.j2",
            site=context.site,
            heading=heading,
            paragraphs=[text.format(who=mask(found.email))],
            button=button,
            danger=found.action == AccountAction.DELETE,
            form_token=context.guard.issue(request.url.path, context.clock()),
        )

    return await run_in_threadpool(show)


def _download(found: AccountUse, now: datetime) -> Response:
    body = json.dumps(
        {"exported_at": now.isoformat(), **(found.data or {})}, indent=2, ensure_ascii=False
    )
    headers = private_headers()
    headers["Content-Disposition"] = f'attachment; filename="my-data-{now:%Y%m%d}.json"'
    return Response(body, media_type="application/json", headers=headers)


async def account_post(request: Request) -> Response:
    """Use a self-service link once: download, delete, move or undo a move."""
    context = context_of(request)
    ident = context.verify(request.path_params["token"], Purpose.ACCOUNT)
    _, now, refusal = await guarded_form(request)
    if refusal is not None:
        return refusal

    def act() -> Response:
        with context.database.transaction() as session:
            found = use(session, context.config, ident, now)
        if found.outcome == Used.UNKNOWN:
            return _unknown(context)
        if found.outcome == Used.SPENT:
            return _spent(context)
        if found.outcome == Used.TAKEN:
            return message(
                context.site,
                "That address is already subscribed",
                f"{mask(found.email or '')} already receives briefings from us, so yours "
                "cannot move there. Nothing was changed.",
                status=409,
            )
        assert found.email is not None
        if found.action == AccountAction.EXPORT:
            logger.info("self-service download used (request %d)", ident)
            return _download(found, now)
        if found.action == AccountAction.DELETE:
            try:
                erase(
                    context.config,
                    context.database,
                    found.email,
                    source="web:self-service",
                    now=now,
                )
            except BriefingError as exc:
                logger.error("self-service deletion (request %d): %s", ident, exc.message)
                raise
            logger.info("self-service deletion done (request %d)", ident)
            return message(
                context.site,
                "Your data is deleted",
                f"Every subscription has ended and everything we stored about the address is "
                f"gone. Nothing more will be sent to it from {context.site.name}.",
            )
        if found.action == AccountAction.MOVE:
            context.mail_queued()
            logger.info("self-service change of address allowed (request %d)", ident)
            return message(
                context.site,
                "Now confirm the new address",
                f"A link is on its way to {mask(found.email)}. Open it there to finish the "
                "change: that shows the new address is yours and can receive mail.",
            )
        if found.action == AccountAction.ADOPT:
            context.mail_queued()
            logger.info("self-service change of address done (request %d)", ident)
            return message(
                context.site,
                "Your address is changed",
                f"From now on your briefings come to {mask(found.email)}. We told the old "
                "address, with a link to undo the change.",
            )
        logger.info("self-service change of address undone (request %d)", ident)
        return message(
            context.site,
            "Your address is back",
            f"Your briefings come to {mask(found.email)} again, as before the change.",
        )

    return await run_in_threadpool(act)
