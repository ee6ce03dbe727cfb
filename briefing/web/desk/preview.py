"""Serve the desk's edition preview and its test send (editors and admins).

    GET  <base>/desk/edition/{briefing}/{YYYY-MM-DD}/preview?sections=a,b   (or ?subscriber=)
    GET  <base>/desk/edition/{briefing}/{YYYY-MM-DD}/preview/html?...&scheme=light|dark
    POST <base>/desk/edition/{briefing}/{YYYY-MM-DD}/test

The page shows the edition in sandboxed iframes (phone, desktop, dark), its
plain-text twin, its headers, its size against Gmail's clip and the
warnings. The iframes load ``preview/html``: the email's HTML alone, served
with its own policy (``sandbox``, no script, no form, no base, only images
over https and inline styles) so nothing in an article can run, post, or
navigate the desk. Every link in it carries an inert token.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from html import escape
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from briefing.domain.addresses import AddressError, mailbox_key
from briefing.domain.states import ClipStatus, Role
from briefing.editions.preview import PreviewContent, preview_content
from briefing.editions.testsend import queued_tests, send_test
from briefing.errors import BriefingError, EditionError, RenderError
from briefing.pipeline.compose import HTML_LIMIT, HTML_WARNING
from briefing.store.messages import TestSendStatus
from briefing.web.context import context_of
from briefing.web.desk.auth import Visit, desk_of, desk_page, desk_view
from briefing.web.forms import field
from briefing.web.pages import FRAMING_POLICY, private_headers

logger = logging.getLogger(__name__)

# The desk page frames only its own preview documents.
PREVIEW_PAGE_POLICY = FRAMING_POLICY
# The email itself: no script, no form, no plugin, no base, in a sandbox even when opened alone.
EMAIL_POLICY = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
CLIP = 102_000  # Gmail shows "[Message clipped]" above about this many bytes of HTML
SCHEMES = ("light", "dark")
DARK = (
    '<meta name="color-scheme" content="dark">'
    "<style>:root { color-scheme: dark !important; }</style>"
)
_HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)
_PREFERS_DARK = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_PREFERS_LIGHT = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.IGNORECASE)


class FrameCache:
    """Hand the email a page just cut to its own frames, so one view cuts once.

    The page stores the HTML under a random id that its frames' URLs carry
    (``&v=``); a frame finds it there for ``ttl`` seconds, for the same
    session only. A frame that misses (expired, or served by another worker
    process) cuts the edition itself, as it would without the cache. At most
    ``size`` emails are kept, the oldest dropped first.
    """

    def __init__(self, size: int = 32, ttl: float = 120.0) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, str, str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session_id: str, asked: str, html: str) -> str:
        """Keep the email a page showed (``asked``: what it shows) for its frames; return its id."""
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, session_id, asked, html)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return key

    def get(self, session_id: str, asked: str, key: str) -> str | None:
        """Return the email kept under ``key`` for this session and ask, if still there."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic() or entry[1:3] != (session_id, asked):
            return None
        return entry[3]


def frame_cache(request: Request) -> FrameCache:
    """Return the application's frame cache, made at first use."""
    state = request.app.state
    cache: FrameCache | None = getattr(state, "preview_frames", None)
    if cache is None:
        cache = state.preview_frames = FrameCache()
    return cache


@dataclass(frozen=True)
class Ask:
    """What a preview URL asks for: the issue and whom it is shown as."""

    briefing: str
    issue_date: date
    sections: list[str] | None
    subscriber: str | None

    @property
    def query(self) -> dict[str, str]:
        """Return the query string that asks for it again."""
        if self.subscriber:
            return {"subscriber": self.subscriber}
        return {"sections": ",".join(self.sections)} if self.sections else {}

    @property
    def key(self) -> str:
        """Return what is asked for as one string (the frame cache's check)."""
        return f"{self.briefing}/{self.issue_date.isoformat()}?{urlencode(self.query)}"

    @property
    def shown_as(self) -> str:
        """Say whom the preview shows the edition as."""
        if self.subscriber:
            return f"as {self.subscriber} gets it"
        if self.sections:
            return "with the sections " + ", ".join(self.sections)
        return "with every section"


class Refused(Exception):
    """A preview URL that names no edition: the status and the sentence to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _ask(request: Request, values: dict[str, str] | None = None) -> Ask:
    """Read the briefing, the issue date and sections or subscriber; refuse naming what is wrong."""
    config = context_of(request).config
    briefing = request.path_params["briefing"]
    if briefing not in config.briefings:
        raise Refused(
            404, f"There is no briefing {briefing!r}; known: {', '.join(config.briefings)}."
        )
    day = request.path_params["day"]
    try:
        issue_date = date.fromisoformat(day)
    except ValueError:
        raise Refused(400, f"{day!r} is not an issue date; write it as YYYY-MM-DD.") from None
    values = values if values is not None else dict(request.query_params)
    sections_text = values.get("sections", "").strip()
    subscriber = values.get("subscriber", "").strip() or None
    if sections_text and subscriber:
        raise Refused(400, "Ask for sections or for a subscriber, not both.")
    if subscriber:
        try:
            subscriber = mailbox_key(subscriber)
        except AddressError as exc:
            raise Refused(400, f"{subscriber!r} is not an email address: {exc}") from None
    sections = [key.strip() for key in sections_text.split(",") if key.strip()] or None
    for key in sections or ():
        if key not in config.sections:
            raise Refused(
                400, f"There is no section {key!r}; the sections are {', '.join(config.sections)}."
            )
    return Ask(briefing, issue_date, sections, subscriber)


async def _content(request: Request, ask: Ask, visit: Visit) -> PreviewContent:
    context = context_of(request)
    try:
        return await run_in_threadpool(
            preview_content,
            context.config,
            context.database,
            context.signer,
            briefing=ask.briefing,
            at=visit.now,
            subscriber=ask.subscriber,
            sections=ask.sections,
            issue_date=ask.issue_date,
        )
    except EditionError as exc:  # a subscriber with no subscription to the briefing
        raise Refused(404, f"{exc.message}.") from None
    except RenderError as exc:
        logger.warning("desk preview of %s %s: %s", ask.briefing, ask.issue_date, exc.message)
        raise Refused(500, f"The edition could not be rendered: {exc.message}.") from None
    except BriefingError as exc:
        raise Refused(400, f"{exc.message}.") from None


_REFUSALS = {404: "No such edition to preview", 500: "The edition could not be shown"}


def _refused(request: Request, visit: Visit, refused: Refused) -> Response:
    return desk_view(
        "desk/message.html.j2",
        request,
        visit,
        status=refused.status,
        heading=_REFUSALS.get(refused.status, "That preview is unclear"),
        paragraphs=[refused.reason],
    )


def _base(request: Request, ask: Ask) -> str:
    return desk_of(request).path(f"edition/{ask.briefing}/{ask.issue_date.isoformat()}/")


def _recipients(request: Request, visit: Visit) -> list[tuple[str, str]]:
    """Return the addresses this account may mail a test to: (value, label)."""
    desk = context_of(request).config.desk
    choices: list[tuple[str, str]] = []
    own = desk.addresses.get(visit.user.name)
    if own:
        choices.append((own, f"me ({own})"))
    choices.extend((address, address) for address in desk.test_recipients if address != own)
    if len(desk.test_recipients) > 1:
        choices.append(("*", f"everyone on the proof list ({len(desk.test_recipients)})"))
    return choices


def _queued(request: Request) -> list[int]:
    text = request.query_params.get("queued", "")
    return [int(part) for part in text.split(",") if part.isdigit()][:50]


@desk_page(Role.EDITOR)
async def preview_page(request: Request, visit: Visit) -> Response:
    """Show an edition as its reader gets it: framed, as text, its headers, size, warnings."""
    context = context_of(request)
    try:
        ask = _ask(request)
        content = await _content(request, ask, visit)
    except Refused as refused:
        return _refused(request, visit, refused)
    queued: list[TestSendStatus] = []
    if wanted := _queued(request):
        queued = await run_in_threadpool(queued_tests, context.database, wanted)
    base = _base(request, ask)
    query = ask.query
    kept = frame_cache(request).put(visit.session_id, ask.key, content.html)
    frames = {
        scheme: base + "preview/html?" + urlencode({**query, "scheme": scheme, "v": kept})
        for scheme in SCHEMES
    }
    return desk_view(
        "desk/preview.html.j2",
        request,
        visit,
        policy=PREVIEW_PAGE_POLICY,
        heading=f"Preview: {ask.briefing}, issue of {ask.issue_date.isoformat()}",
        ask=ask,
        content=content,
        frames=frames,
        clip=content.clip,
        clip_states=ClipStatus,
        clip_limit=CLIP,
        clip_warning=HTML_WARNING,
        clip_high=HTML_LIMIT,
        recipients=_recipients(request, visit),
        test_action=base + "test",
        edition_page=base.rstrip("/"),
        query=query,
        queued=queued,
        drains=context.drains_mail,
    )


@desk_page(Role.EDITOR)
async def preview_html(request: Request, visit: Visit) -> Response:
    """Serve the email's HTML for the preview's iframes, under its own strict policy."""
    try:
        ask = _ask(request)
        scheme = request.query_params.get("scheme", "light")
        if scheme not in SCHEMES:
            raise Refused(400, f"scheme {scheme!r} is not one of: {', '.join(SCHEMES)}.")
        # The page that framed this email cut it a moment ago: show that very cut.
        wanted = request.query_params.get("v", "")
        kept = frame_cache(request).get(visit.session_id, ask.key, wanted)
        html = kept if kept is not None else (await _content(request, ask, visit)).html
    except Refused as refused:
        return HTMLResponse(
            f"<p>{escape(refused.reason)}</p>",
            status_code=refused.status,
            headers=_email_headers(),
        )
    if scheme == "dark":
        html = _with_dark(html)
    return HTMLResponse(html, headers=_email_headers())


def _with_dark(html: str) -> str:
    """Return the email as a dark-mode client shows it: its dark rules on, its light rules off.

    A framed document cannot be told the reader prefers dark, so its
    ``prefers-color-scheme`` queries are rewritten: dark ones always match,
    light ones never (an invalid query matches nothing), and the page says
    ``color-scheme: dark``.
    """
    html = _PREFERS_DARK.sub("(min-width: 0px)", html)
    html = _PREFERS_LIGHT.sub("(max-width: -1px)", html)
    end = html.lower().find("</head>")
    if end >= 0:  # after the template's own color-scheme meta, so this one counts
        return html[:end] + DARK + html[end:]
    match = _HEAD.search(html)
    at = match.end() if match else 0
    return html[:at] + DARK + html[at:]


def _email_headers() -> dict[str, str]:
    headers = private_headers(EMAIL_POLICY)
    headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers


@desk_page(Role.EDITOR)
async def send_test_post(request: Request, visit: Visit) -> Response:
    """Queue the edition as a test to the chosen address; say so on the preview page."""
    context = context_of(request)
    assert visit.form is not None
    values = {key: field(visit.form, key) for key in ("sections", "subscriber")}
    try:
        ask = _ask(request, values)
    except Refused as refused:
        return _refused(request, visit, refused)
    chosen = field(visit.form, "to")
    offered = dict(_recipients(request, visit))
    if chosen not in offered:
        return _refused(
            request,
            visit,
            Refused(
                400,
                "Choose an address from the list: the desk mails tests only to your own "
                "address and the proof list in desk.addresses and desk.test_recipients.",
            ),
        )
    recipients = list(context.config.desk.test_recipients) if chosen == "*" else [chosen]
    try:
        result = await run_in_threadpool(
            send_test,
            context.config,
            context.database,
            context.signer,
            briefing=ask.briefing,
            recipients=recipients,
            requested_by=visit.user.name,
            user_id=visit.user.id,
            now=visit.now,
            subscriber=ask.subscriber,
            sections=ask.sections,
            issue_date=ask.issue_date,
        )
    except BriefingError as exc:
        return _refused(request, visit, Refused(400, f"Nothing was queued: {exc.message}."))
    context.mail_queued()
    logger.info(
        "desk: %s queued a test of %s %s to %d address(es)",
        visit.user.name,
        ask.briefing,
        ask.issue_date,
        len(result.recipients),
    )
    ids = ",".join(str(ident) for ident in result.delivery_ids)
    target = _base(request, ask) + "preview?" + urlencode({**ask.query, "queued": ids})
    return RedirectResponse(target, status_code=303)
