"""Protect forms from cross-site posting and read posted bodies within limits.

Two checks, both needed for every form except the RFC 8058 one-click POST:

- the browser's own word: a ``Sec-Fetch-Site: cross-site`` header, or an
  ``Origin`` (else ``Referer``) that is neither the public ``base_url``'s
  origin nor the origin the request was addressed to, is refused;
- a signed form token in a hidden field, bound to the form's path and
  issued within :data:`FORM_MAX_AGE`, which a page on another site cannot read.

No cookie is set: the token is an HMAC of the path and the time it was issued.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

FORM_FIELD = "form_token"
FORM_MAX_AGE = timedelta(hours=12)
MAX_FIELDS = 40
MAX_FIELD_BYTES = 4096
MAX_BODY_BYTES = 64 * 1024


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class FormGuard:
    """Issue and check the signed token that every form carries."""

    def __init__(self, keys: Sequence[bytes], base_url: str) -> None:
        self._keys = [hmac.new(key, b"briefing:form", hashlib.sha256).digest() for key in keys]
        self._public_origin = _origin(base_url)

    def _tag(self, key: bytes, action: str, stamp: int) -> str:
        return hmac.new(key, f"{action}\n{stamp}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, action: str, now: datetime) -> str:
        """Return a token for the form posted to ``action`` (a path)."""
        stamp = int(now.timestamp())
        return f"{stamp}.{self._tag(self._keys[0], action, stamp)}"

    def token_valid(self, token: str, action: str, now: datetime) -> bool:
        """Tell whether ``token`` was issued for ``action`` recently by this site."""
        stamp_text, _, tag = token.partition(".")
        if not stamp_text.isdigit() or len(tag) != 32:
            return False
        stamp = int(stamp_text)
        age = now.timestamp() - stamp
        if not 0 <= age <= FORM_MAX_AGE.total_seconds():
            return False
        return any(hmac.compare_digest(self._tag(key, action, stamp), tag) for key in self._keys)

    def cross_site(self, request: Request) -> str | None:
        """Return why a POST looks cross-site, or None when it comes from our own pages."""
        if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
            return "the browser says the form came from another site"
        claimed = request.headers.get("origin")
        if claimed is None:
            referer = request.headers.get("referer")
            claimed = _origin(referer) if referer else None
            if claimed is None:
                return None  # no browser evidence either way; the form token decides
        allowed = {self._public_origin, f"{request.url.scheme}://{request.url.netloc}".lower()}
        if claimed.lower() not in allowed:
            return f"the form was posted from {claimed}"
        return None

    def check(self, request: Request, form: FormData, now: datetime) -> str | None:
        """Return why a posted form must be refused, or None when it is ours and fresh."""
        if (reason := self.cross_site(request)) is not None:
            return reason
        token = form.get(FORM_FIELD)
        if not isinstance(token, str) or not self.token_valid(token, request.url.path, now):
            return "the form is missing its token or has expired"
        return None


UNDECODABLE = (
    "The form was not sent as UTF-8 text, so its fields cannot be read. "
    "Nothing was changed: open the page again and resend the form from there."
)


def _utf8_form(body: bytes, content_type: str) -> bool:
    """Tell whether a posted body's text is UTF-8 (never guessed as Latin-1)."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        if not body.isascii():
            return False
        body = unquote_to_bytes(body.replace(b"+", b" "))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def read_form(request: Request) -> FormData:
    """Parse a form-encoded or multipart body: small fields, no files, UTF-8 text only.

    A body whose bytes are not UTF-8 is refused with 400 rather than read
    as Latin-1, which would turn a stray byte into a plausible character.
    """
    body = await request.body()
    if not _utf8_form(body, request.headers.get("content-type", "")):
        raise HTTPException(400, UNDECODABLE)
    return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)


def field(form: FormData, name: str) -> str:
    """Return a text field, stripped; a file or a missing field is empty."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
