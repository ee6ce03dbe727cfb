"""Compose the RFC 5322 message once per variant, then personalise it per recipient.

Python's email package builds and encodes the variant's message once:
``multipart/alternative`` with a quoted-printable ``text/plain`` part first
and ``text/html`` last, the fixed headers (From, Subject, List-Id,
List-Unsubscribe-Post, MIME-Version, and any a plugin adds through the
``briefing_extra_headers`` hook) folded and RFC 2047-encoded. That costs
milliseconds, so it is never done per subscriber.

Feedback-ID (read by Gmail's feedback loop, which reports complaint rates per
value) names the briefing, the issue date and the sender, with a short HMAC
part made with a key derived from the secret key (handed in by the caller,
which holds the signer) so a forged value is told apart: it is the same
for every message of a variant and every resend.

Per recipient only the personal parts change: Date, To, Message-ID,
List-Unsubscribe, and the tokens in the body. Tokens are exactly as long as the
random placeholders they replace and use only characters quoted-printable
leaves alone, so every line keeps its length; a placeholder that the encoder
split with a soft line break (``=\\r\\n``) is found across it and refilled
around it. The result is byte-for-byte what encoding the personalised text
would have given.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime
from typing import cast

from briefing import plugins
from briefing.config import BriefingConfig, SiteConfig
from briefing.domain.models import RenderedDigest
from briefing.domain.tokens import feedback_key as feedback_key  # derived beside the tokens

HTML_LIMIT = 100_000  # bytes of the encoded HTML part; Gmail clips at about 102 KB
HTML_WARNING = 90_000
MAX_LINE = 998
_SOFT_BREAK = b"=\r\n"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9 _-]{1,100}$")
_STRIP_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_-]+")


def boundary_for(variant_key: str) -> str:
    """Derive the MIME boundary from the variant, so resends are identical."""
    return f"=_briefing_{hashlib.sha256(variant_key.encode()).hexdigest()[:32]}"


def _soft_break_pattern(placeholder: str) -> re.Pattern[bytes]:
    optional_break = b"(?:=\r\n)?"
    return re.compile(optional_break.join(re.escape(bytes([c])) for c in placeholder.encode()))


@dataclass(frozen=True)
class _Slot:
    purpose: str
    breaks: tuple[int, ...]  # offsets inside the token where the encoder put "=\r\n"


@dataclass(frozen=True)
class MessageTemplate:
    """A variant's encoded message with slots for the personal parts."""

    head: bytes
    body: bytes
    placeholders: Mapping[str, str]
    _pieces: tuple[bytes | _Slot, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        found: list[tuple[int, int, _Slot]] = []
        for purpose, placeholder in self.placeholders.items():
            for match in _soft_break_pattern(placeholder).finditer(self.body):
                breaks, offset = [], 0
                chunk = match.group(0)
                while (position := chunk.find(_SOFT_BREAK)) >= 0:
                    offset += position
                    breaks.append(offset)
                    chunk = chunk[position + len(_SOFT_BREAK) :]
                found.append((match.start(), match.end(), _Slot(purpose, tuple(breaks))))
        pieces: list[bytes | _Slot] = []
        cursor = 0
        for start, end, slot in sorted(found, key=lambda f: f[0]):
            pieces.extend((self.body[cursor:start], slot))
            cursor = end
        pieces.append(self.body[cursor:])
        object.__setattr__(self, "_pieces", tuple(pieces))

    @classmethod
    def from_bytes(cls, message: bytes, placeholders: Mapping[str, str]) -> MessageTemplate:
        """Rebuild a template stored as one blob (head, blank line, body)."""
        head, body = message.split(b"\r\n\r\n", 1)
        return cls(head=head + b"\r\n", body=body, placeholders=dict(placeholders))

    def to_bytes(self) -> bytes:
        """Return the template as one blob for storage."""
        return self.head + b"\r\n" + self.body

    def with_subject(self, subject: str) -> MessageTemplate:
        """Return the template with its Subject header replaced (a test send's ``[TEST]``)."""
        kept: list[bytes] = []
        skipping = False
        for line in self.head.split(b"\r\n")[:-1]:
            if line[:1] in (b" ", b"\t"):
                if not skipping:
                    kept.append(line)
                continue
            skipping = line.lower().startswith(b"subject:")
            if not skipping:
                kept.append(line)
        folded = SMTP.header_factory("Subject", clean_header(subject)).fold(policy=SMTP)
        head = b"".join(line + b"\r\n" for line in kept) + folded.encode("ascii")
        return MessageTemplate(head=head, body=self.body, placeholders=self.placeholders)

    @property
    def slots(self) -> int:
        """Count the placeholders found in the body."""
        return sum(isinstance(piece, _Slot) for piece in self._pieces)

    def personalise_body(self, tokens: Mapping[str, str]) -> bytes:
        """Return the body with each placeholder replaced by the recipient's token."""
        return b"".join(self._body_pieces(tokens, []))

    def _body_pieces(self, tokens: Mapping[str, str], out: list[bytes]) -> list[bytes]:
        # Appends to ``out`` so a whole message is joined once, without copying the body twice.
        encoded = {purpose: token.encode("ascii") for purpose, token in tokens.items()}
        append = out.append
        for piece in self._pieces:
            if piece.__class__ is bytes:
                append(piece)
                continue
            slot = cast(_Slot, piece)
            token = encoded[slot.purpose]
            if not slot.breaks:
                append(token)
                continue
            start = 0
            for offset in slot.breaks:
                out.extend((token[start:offset], _SOFT_BREAK))
                start = offset
            append(token[start:])
        return out

    def personalise(
        self,
        *,
        recipient: str,
        name: str | None,
        message_id: str,
        date: datetime,
        tokens: Mapping[str, str],
        list_unsubscribe: tuple[str, ...],
        extra_headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """Return the complete message for one recipient."""
        lines = [
            date_header(date),
            to_header(recipient, name),
            b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
            b"List-Unsubscribe: "
            + ",\r\n ".join(f"<{uri}>" for uri in list_unsubscribe).encode("ascii")
            + b"\r\n",
        ]
        for header, value in (extra_headers or {}).items():
            if _PLAIN_VALUE.fullmatch(value) and len(header) + len(value) < 77:
                # A token: folding would write it unchanged (and costs tens of microseconds).
                lines.append(f"{header}: {value}\r\n".encode("ascii"))
                continue
            lines.append(
                SMTP.header_factory(header, clean_header(value)).fold(policy=SMTP).encode()
            )
        lines.extend((self.head, b"\r\n"))
        return b"".join(self._body_pieces(tokens, lines))


def date_header(date: datetime) -> bytes:
    """Return the Date header line for ``date`` (an aware time), as ``format_datetime`` writes it.

    The header has whole seconds, so the messages of one second share one
    line: formatting costs more than the rest of the headers together.
    """
    return _date_header(date.replace(microsecond=0), date.utcoffset())


@functools.lru_cache(maxsize=64)
def _date_header(date: datetime, offset: object) -> bytes:
    # ``offset`` is part of the key: equal instants in other zones are written differently.
    del offset
    return b"Date: " + format_datetime(date).encode("ascii") + b"\r\n"


def clean_header(value: str) -> str:
    """Strip CR, LF and other control characters from text bound for a header."""
    return _STRIP_CONTROL.sub(" ", value).strip()


def ascii_address(address: str) -> str:
    """Return an address with an internationalised domain in its ASCII (IDNA) form."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def to_header(address: str, name: str | None) -> bytes:
    """Return the folded To header; a plain ASCII name skips the email package."""
    address = ascii_address(clean_header(address))
    # A non-ASCII local part (accepted only with delivery.smtputf8) is written as UTF-8
    # (RFC 6532); the message then needs a relay that offers SMTPUTF8.
    utf8 = not address.isascii()
    charset = "utf-8" if utf8 else "ascii"
    name = clean_header(name or "")[:100]
    if not name:
        return f"To: {address}\r\n".encode(charset)
    if _PLAIN_NAME.match(name):
        return f"To: {name} <{address}>\r\n".encode(charset)
    if not utf8 and name.isascii() and "=?" not in name:
        # An ASCII name is quoted (or not) by Address alone; the folding only adds line
        # breaks, so a header that fits on one line is Address's text as it is.
        line = f"To: {Address(display_name=name, addr_spec=address)}"
        if len(line) <= _MAX_HEADER_LINE:
            return f"{line}\r\n".encode("ascii")
        return _folded_to(address, name, utf8).encode(charset)
    display = None if utf8 else _display_name(name)
    if display is not None and len(display) + len(address) + 7 <= _MAX_HEADER_LINE:
        # What the email package writes when the header fits on one line (checked in tests).
        return f"To: {display} <{address}>\r\n".encode(charset)
    return _folded_to(address, name, utf8).encode(charset)


_MAX_HEADER_LINE = 78  # the email package's SMTP policies fold longer lines
_PROBE_ADDRESS = "a@b"


def _folded_to(address: str, name: str, utf8: bool) -> str:
    policy = SMTPUTF8 if utf8 else SMTP
    value = str(Address(display_name=name, addr_spec=address))
    folded: str = policy.header_factory("To", value).fold(policy=policy)
    return folded


@functools.lru_cache(maxsize=4096)
def _display_name(name: str) -> str | None:
    """Return a name as the email package writes it before an address on one line, or None.

    Quoting and RFC 2047 encoding of a display name do not depend on the
    address after it, as long as the line is not folded; the email package
    costs about a millisecond a header, and readers' names repeat, so each
    name is written once (a bounded cache) and reused with every address.
    """
    folded = _folded_to(_PROBE_ADDRESS, name, False)
    tail = f" <{_PROBE_ADDRESS}>\r\n"
    if not folded.startswith("To: ") or not folded.endswith(tail):
        return None
    display = folded[4 : -len(tail)]
    return None if "\n" in display or "\r" in display else display


@dataclass(frozen=True)
class ComposedVariant:
    """The message template of a variant and the size of its HTML part."""

    template: MessageTemplate
    html_size: int

    @property
    def notes(self) -> tuple[str, ...]:
        """Warn editors when the HTML part nears Gmail's clipping size."""
        if self.html_size > HTML_WARNING:
            return (
                (
                    f"HTML part is {self.html_size:,} bytes encoded; Gmail clips above about "
                    f"102,000 (warning above {HTML_WARNING:,})"
                ),
            )
        return ()


def feedback_id(briefing_key: str, issue_date: date, from_address: str, key: bytes) -> str:
    """Return the Feedback-ID value ``briefing:YYYYMMDD:mac:sender`` (Gmail's four fields).

    The sender is the From domain; ``mac`` is 12 hex digits of an HMAC over the
    other three, so a value is checked with :func:`feedback_id_valid`.
    """
    sender = from_address.rpartition("@")[2].lower()
    fields = f"{briefing_key}:{issue_date:%Y%m%d}"
    mac = hmac.new(key, f"{fields}:{sender}".encode(), hashlib.sha256).hexdigest()[:12]
    return f"{fields}:{mac}:{sender}"


def feedback_id_valid(value: str, key: bytes) -> bool:
    """Tell whether a Feedback-ID value was made with ``key``."""
    parts = value.strip().split(":")
    if len(parts) != 4:
        return False
    briefing_key, day, _, sender = parts
    try:
        issued = datetime.strptime(day, "%Y%m%d").date()
    except ValueError:
        return False
    expected = feedback_id(briefing_key, issued, f"x@{sender}", key)
    return hmac.compare_digest(expected, value.strip())


def compose_variant(
    rendered: RenderedDigest,
    *,
    variant_key: str,
    site: SiteConfig,
    briefing: BriefingConfig,
    placeholders: Mapping[str, str],
    feedback: tuple[str, date] | None = None,
    signing_key: bytes | None = None,
) -> ComposedVariant:
    """Build and encode the variant's message once, with placeholder tokens.

    With ``feedback`` (the briefing's key and the issue date) and
    ``signing_key`` (the caller's :attr:`Signer.feedback_key
    <briefing.domain.tokens.Signer.feedback_key>`) the message carries a
    signed Feedback-ID; without a key it has none. The key is passed in, never
    read from the environment, so the pipeline stays a function of its inputs.
    """
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(
        display_name=clean_header(site.from_name or site.name), addr_spec=site.from_address
    )
    if site.reply_to:
        message["Reply-To"] = site.reply_to
    message["Subject"] = clean_header(rendered.subject)
    message["List-Id"] = f"{clean_header(briefing.title)} <{briefing.list_id}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if feedback is not None and signing_key is not None:
        message["Feedback-ID"] = feedback_id(*feedback, site.from_address, signing_key)
    for name, value in plugins.extra_headers(briefing, variant_key).items():
        message[name] = value
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.set_boundary(boundary_for(variant_key))
    html_part = cast(list[EmailMessage], message.get_payload())[1]
    del html_part["MIME-Version"]  # add_alternative repeats it on the part
    html_size = len(cast(str, html_part.get_payload()).encode("ascii"))
    raw = message.as_bytes(policy=SMTP)
    return ComposedVariant(MessageTemplate.from_bytes(raw, placeholders), html_size)


def fill_links(text: str, placeholders: Mapping[str, str], tokens: Mapping[str, str]) -> str:
    """Put tokens into unencoded HTML or text (previews and the browser copy)."""
    for purpose, placeholder in placeholders.items():
        text = text.replace(placeholder, tokens[purpose])
    return text
