"""Render the web pages: small, accessible HTML with no third-party assets.

Every page is a Jinja2 template in ``briefing/web/templates`` (autoescaped)
and goes out with headers that keep personal links private: no caching, no
Referer to other sites (the URL holds a token), no indexing, and a
Content-Security-Policy that allows one script only: ``reader.js``, inlined
and allowed by its SHA-256 hash. It pre-fills the timezone from the browser
and disables the weekly-day menu unless "once a week" is chosen; every page
works without it (the server validates anyway).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).resolve().parent / "templates"

# The one script of the pages, inlined; the policy allows exactly these bytes.
READER_SCRIPT = (TEMPLATES / "reader.js").read_text(encoding="utf-8")
SCRIPT_HASH = base64.b64encode(hashlib.sha256(READER_SCRIPT.encode("utf-8")).digest()).decode()
PAGE_POLICY = (
    f"default-src 'none'; script-src 'sha256-{SCRIPT_HASH}'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The browser copy of an edition shows the newsroom's images and the MJML styles.
EDITION_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# A desk page that shows a stored edition in an iframe from the desk's own origin.
FRAMING_POLICY = f"{PAGE_POLICY}; frame-src 'self'"
# A stored edition inside a desk page's iframe: no script (sandboxed, and script-src falls
# back to 'none'), framed only by our own pages.
FRAMED_EDITION_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)


@lru_cache(maxsize=1)
def page_environment() -> jinja2.Environment:
    """Return the environment of the page templates, escaping everything."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def private_headers(policy: str = PAGE_POLICY) -> dict[str, str]:
    """Return the headers every personal page carries."""
    return {
        "Cache-Control": "no-store",
        # same-origin, not no-referrer: with no-referrer browsers post forms with
        # "Origin: null", which the cross-site check must refuse.
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex, nofollow",
        "Content-Security-Policy": policy,
    }


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template into a response with the private headers."""
    context.setdefault("reader_script", READER_SCRIPT)
    html = page_environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=private_headers())


def message(
    site: Any,
    heading: str,
    *paragraphs: str,
    status: int = 200,
    link: tuple[str, str] | None = None,
) -> HTMLResponse:
    """Render a plain page: a heading, a few paragraphs and an optional link."""
    return page(
        "message.html.j2", status, site=site, heading=heading, paragraphs=paragraphs, link=link
    )


def mask(address: str) -> str:
    """Show an address without spelling it out: ``a…@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}"
