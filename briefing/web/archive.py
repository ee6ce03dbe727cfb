"""Serve a briefing's public archive: the list of issues, one issue, and an Atom feed.

Routes (``<base>`` is the path of ``site.base_url``), only for a briefing
with ``public_archive: true``; any other briefing, known or not, gets the
same plain 404, so the pages say nothing of briefings that are not public:

    GET <base>/archive/<briefing>/              the issues, newest first (``?before=`` pages)
    GET <base>/archive/<briefing>/<YYYY-MM-DD>  one issue: the default sections' copy
    GET <base>/archive/<briefing>/feed.atom     the latest issues as an Atom 1.0 feed

What is shown of an issue is the variant of the briefing's default sections
first cut that day, with inert links (they act on nobody) and no subscriber's
name or address (a variant never holds them). The pages change at most once
per issue, so they may be cached by anyone for a few minutes and carry an
ETag (a conditional GET is answered 304).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime

from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from briefing.config import BriefingConfig
from briefing.editions.archive import (
    PUBLIC_PAGE,
    ArchivedCopy,
    feed_entries,
    public_copy,
    public_list,
)
from briefing.web.atom import CONTENT_TYPE, AtomEntry, AtomFeed, atom_document
from briefing.web.context import WebContext, context_of
from briefing.web.pages import PAGE_POLICY, READER_SCRIPT, message, page_environment

MAX_AGE = 300  # seconds anyone may cache an archive page or the feed
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the feed's updated time before any issue

# The issue page is the stored email HTML itself, served as the page, not in an iframe:
# a reader (or a search engine) gets the issue at its own address, readable without
# frames and at phone width. That HTML is our own rendered output, but it carries text
# from feeds; ingest sanitised it, and this policy makes sure that even if something got
# through, nothing runs: no script source at all (script-src 'none'), the document is
# sandboxed (no scripts, no forms, an opaque origin, so no cookie of this site is
# readable), no plugins, no <base> and it cannot be framed. Links still open, in this
# tab or (target=_blank, as the email's buttons are) in a new, unsandboxed one.
ISSUE_POLICY = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
    "img-src https: http: data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"
)
_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def routes() -> list[BaseRoute]:
    """Return the public archive's routes, relative to the site's prefix."""
    return [
        Route("/archive/{briefing}/", archive_list, methods=["GET"]),
        Route("/archive/{briefing}/feed.atom", archive_feed, methods=["GET"]),
        Route("/archive/{briefing}/{day}", archive_issue, methods=["GET"]),
    ]


def _public(context: WebContext, request: Request) -> tuple[str, BriefingConfig]:
    """Return the briefing a request names if its archive is public; else the 404 of any page."""
    key = request.path_params["briefing"]
    settings = context.config.briefings.get(key)
    if settings is None or not settings.public_archive:
        raise HTTPException(404)
    return key, settings


def parse_day(text: str | None) -> date | None:
    """Return the date a ``YYYY-MM-DD`` path or query value names, or None if it names none."""
    if text is None or not _DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _cached(request: Request, body: bytes, media_type: str, policy: str) -> Response:
    """Answer with ``body`` cacheable for a few minutes, or 304 when the client has it."""
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "ETag": tag,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": policy,
    }
    wanted = [value.strip() for value in request.headers.get("if-none-match", "").split(",")]
    if tag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _url(context: WebContext, path: str) -> str:
    return context.config.site.base_url.rstrip("/") + "/" + path


def _long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


async def archive_list(request: Request) -> Response:
    """List a public archive's issues, newest first, with a link to its feed."""
    context = context_of(request)
    key, settings = _public(context, request)
    raw_before = request.query_params.get("before")
    before = parse_day(raw_before)
    if raw_before is not None and before is None:
        raise HTTPException(404)
    issues = await run_in_threadpool(
        public_list, context.config, context.database, key, before=before
    )
    html = (
        page_environment()
        .get_template("archive.html.j2")
        .render(
            site=context.site,
            heading=f"{settings.title}: past issues",
            title=settings.title,
            issues=issues,
            long_date=_long_date,
            issue_path=lambda day: context.path(f"archive/{key}/{day.isoformat()}"),
            feed_path=context.path(f"archive/{key}/feed.atom"),
            older=(
                context.path(f"archive/{key}/") + f"?before={issues[-1].issue_date.isoformat()}"
                if len(issues) >= PUBLIC_PAGE
                else None
            ),
            newer=context.path(f"archive/{key}/") if before is not None else None,
            reader_script=READER_SCRIPT,
        )
    )
    return _cached(request, html.encode("utf-8"), "text/html; charset=utf-8", PAGE_POLICY)


def _with_banner(context: WebContext, key: str, title: str, copy: ArchivedCopy) -> str:
    """Put a line naming the archive above the issue, with a link to the list of issues."""
    banner = Markup(
        '<div style="font:14px/1.5 system-ui,sans-serif;padding:8px 12px;'
        'border-bottom:1px solid #8886;">{site} · {title}, issue of {day} · '
        '<a href="{list}">All past issues</a></div>'
    ).format(
        site=escape(context.site.name),
        title=escape(title),
        day=escape(_long_date(copy.issue_date)),
        list=escape(context.path(f"archive/{key}/")),
    )
    match = _BODY.search(copy.html)
    if match is None:
        return str(banner) + copy.html
    return copy.html[: match.end()] + str(banner) + copy.html[match.end() :]


async def archive_issue(request: Request) -> Response:
    """Show one issue of a public archive: its default sections' copy with inert links."""
    context = context_of(request)
    key, settings = _public(context, request)
    day = parse_day(request.path_params["day"])
    if day is None:
        raise HTTPException(404)
    copy = await run_in_threadpool(
        public_copy, context.config, context.database, context.signer, key, day
    )
    if copy is None:
        return message(
            context.site,
            f"No issue of {settings.title} for {_long_date(day)}",
            f"{settings.title} was not sent with its usual sections that day, or not at all.",
            status=404,
            link=(context.path(f"archive/{key}/"), f"All past issues of {settings.title}"),
        )
    html = _with_banner(context, key, settings.title, copy)
    return _cached(request, html.encode("utf-8"), "text/html; charset=utf-8", ISSUE_POLICY)


async def archive_feed(request: Request) -> Response:
    """Serve the latest issues of a public archive as an Atom 1.0 feed."""
    context = context_of(request)
    key, settings = _public(context, request)
    entries = await run_in_threadpool(
        feed_entries, context.config, context.database, context.signer, key
    )
    page_url = _url(context, f"archive/{key}/")
    updated = max((entry.cut_at for entry in entries), default=_EPOCH)
    feed = AtomFeed(
        id=page_url,
        title=f"{settings.title} · {context.site.name}",
        self_url=_url(context, f"archive/{key}/feed.atom"),
        page_url=page_url,
        author=context.site.name,
        updated=updated,
        entries=[
            AtomEntry(
                id=_url(context, f"archive/{key}/{entry.issue_date.isoformat()}"),
                title=entry.subject,
                link=_url(context, f"archive/{key}/{entry.issue_date.isoformat()}"),
                updated=entry.cut_at,
                text=entry.text,
            )
            for entry in entries
        ],
    )
    return _cached(request, atom_document(feed), CONTENT_TYPE, "default-src 'none'")
