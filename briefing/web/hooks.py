"""Serve the provider webhooks: generic JSON events, Amazon SES through SNS, Mailgun.

Routes (each only when configured under ``webhooks:``; otherwise 404)::

    POST <base>/hooks/events    generic JSON list of events, Authorization: Bearer <token>
    POST <base>/hooks/ses       Amazon SES notifications delivered by SNS (signed)
    POST <base>/hooks/mailgun   Mailgun event webhooks (HMAC-signed)

Checking and reading live in :mod:`briefing.audience.webhooks`; this module
reads the body within ``webhooks.max_body``, runs that work off the event loop
and answers JSON: 200 with what was done, or the refusal's status (400
unreadable, 401/403 credentials and signatures, 413 too large, 502 a signing
certificate that could not be fetched) with ``{"error": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from briefing.audience.bounces import Report
from briefing.audience.webhooks import (
    SOURCE_GENERIC,
    SOURCE_MAILGUN,
    SOURCE_SES,
    EventError,
    Fetch,
    HttpFetcher,
    SnsVerifier,
    WebhookError,
    act,
    check_bearer,
    generic_reports,
    mailgun_event,
    ses_report,
)
from briefing.config import (
    MAILGUN_SIGNING_KEY_ENV,
    WEBHOOK_TOKEN_ENV,
    Config,
    webhook_secret,
)
from briefing.domain.tokens import Signer
from briefing.store import Database

logger = logging.getLogger(__name__)


def _refused(source: str, exc: WebhookError) -> JSONResponse:
    logger.warning("%s: refused (%d): %s", source, exc.status, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


async def _body(request: Request) -> bytes:
    """Read the body; the route's size cap raises 413 while it is read."""
    try:
        return await request.body()
    except HTTPException as exc:
        if exc.status_code == 413:
            raise WebhookError("the body is larger than webhooks.max_body", status=413) from None
        raise


class Hooks:
    """The webhook endpoints of one application, with their secrets and verifiers."""

    def __init__(
        self,
        config: Config,
        database: Database,
        signer: Signer,
        clock: Callable[[], datetime],
        fetch: Fetch | None = None,
    ) -> None:
        settings = config.webhooks
        self.config = config
        self.database = database
        self.signer = signer
        self.clock = clock
        # Secrets are read once, at start: a configured endpoint without its secret stops
        # `briefing web` with the variable's name rather than refusing every request.
        self.token = (
            webhook_secret(WEBHOOK_TOKEN_ENV, "bearer token of POST <base>/hooks/events")
            if settings.generic
            else None
        )
        self.mailgun_key = (
            webhook_secret(MAILGUN_SIGNING_KEY_ENV, "Mailgun webhook signing key")
            if settings.mailgun is not None
            else None
        )
        self.sns = (
            SnsVerifier(settings.ses, fetch or HttpFetcher(), clock)
            if settings.ses is not None
            else None
        )

    def routes(self) -> list[BaseRoute]:
        """Return the routes of the configured endpoints, each with the webhook body cap."""
        cap = self.config.webhooks.max_body
        table: list[BaseRoute] = []
        if self.token is not None:
            table.append(Route("/hooks/events", self.events, methods=["POST"], max_body_size=cap))
        if self.sns is not None:
            table.append(Route("/hooks/ses", self.ses, methods=["POST"], max_body_size=cap))
        if self.mailgun_key is not None:
            table.append(Route("/hooks/mailgun", self.mailgun, methods=["POST"], max_body_size=cap))
        return table

    def _act(
        self,
        report: Report | None,
        source: str,
        now: datetime | None = None,
        once: tuple[str, str, datetime] | None = None,
    ) -> list[str]:
        return act(
            self.config,
            self.database,
            self.signer,
            report,
            source=source,
            now=now or self.clock(),
            once=once,
        )

    async def events(self, request: Request) -> Response:
        """Act on a generic JSON list of events; one bad event is reported, the rest go on."""
        assert self.token is not None
        try:
            check_bearer(request.headers.get("authorization"), self.token)
            body = await _body(request)
            reports = generic_reports(body)
        except WebhookError as exc:
            return _refused(SOURCE_GENERIC, exc)

        def work() -> list[dict[str, object]]:
            results: list[dict[str, object]] = []
            for index, report in enumerate(reports):
                if isinstance(report, EventError):
                    logger.warning(
                        "%s: event %d refused: %s", SOURCE_GENERIC, index, report.message
                    )
                    results.append({"index": index, "error": report.message})
                    continue
                actions = self._act(report, SOURCE_GENERIC)
                logger.info("%s: event %d: %s", SOURCE_GENERIC, index, "; ".join(actions))
                results.append({"index": index, "actions": actions})
            return results

        return JSONResponse({"results": await run_in_threadpool(work)})

    async def ses(self, request: Request) -> Response:
        """Act on an SES notification delivered by SNS, or confirm the SNS subscription."""
        assert self.sns is not None
        sns = self.sns
        try:
            body = await _body(request)

            def work() -> dict[str, object]:
                message = sns.verify(body, request.headers.get("x-amz-sns-message-type"))
                if message.type == "SubscriptionConfirmation":
                    sns.confirm(message)
                    logger.info(
                        "%s: confirmed the subscription to %s", SOURCE_SES, message.topic_arn
                    )
                    return {"confirmed": message.topic_arn}
                if message.type == "UnsubscribeConfirmation":
                    logger.warning(
                        "%s: %s unsubscribed this endpoint", SOURCE_SES, message.topic_arn
                    )
                    return {"actions": []}
                report = ses_report(message)
                actions = self._act(report, SOURCE_SES) if report is not None else []
                logger.info(
                    "%s: message %s: %s",
                    SOURCE_SES,
                    message.message_id,
                    "; ".join(actions) or "nothing to record",
                )
                return {"actions": actions}

            return JSONResponse(await run_in_threadpool(work))
        except WebhookError as exc:
            return _refused(SOURCE_SES, exc)

    async def mailgun(self, request: Request) -> Response:
        """Act on a Mailgun event; each signature token is accepted once."""
        assert self.mailgun_key is not None
        key = self.mailgun_key
        settings = self.config.webhooks.mailgun
        assert settings is not None
        try:
            body = await _body(request)

            def work() -> dict[str, object]:
                now = self.clock()
                event = mailgun_event(body, key, settings, now)
                # Tokens older than twice the window can no longer pass the timestamp check.
                once = ("mailgun", event.token, now - 2 * settings.max_age)
                actions = self._act(event.report, SOURCE_MAILGUN, now, once)
                logger.info("%s: %s", SOURCE_MAILGUN, "; ".join(actions) or "nothing to record")
                return {"actions": actions}

            return JSONResponse(await run_in_threadpool(work))
        except WebhookError as exc:
            return _refused(SOURCE_MAILGUN, exc)
