"""Check a composed message against the "Every message" list of docs/architecture.md."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import cast


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def html_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Return every start tag of an HTML document with its attributes."""
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def check_message(raw: bytes, base_url: str) -> tuple[EmailMessage, str, str]:
    """Assert every rule of a composed message; return it with its text and HTML."""
    for number, line in enumerate(raw.split(b"\r\n"), start=1):
        assert len(line) <= 998, f"line {number} is {len(line)} octets"
        assert b"\n" not in line and b"\r" not in line, f"bare line break in line {number}"
    message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))
    for header in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ):
        assert message[header], f"missing {header}"
        assert len(message.get_all(header) or []) == 1, f"{header} repeated"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert unsubscribe[0].startswith(base_url + "/u/") and unsubscribe[0].startswith("https://")
    assert all(uri.startswith(("https://", "mailto:")) for uri in unsubscribe)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert parts[1]["Content-Transfer-Encoding"] == "quoted-printable"
    text, html = (cast(str, p.get_content()) for p in parts)
    assert unsubscribe[0] in text, "no visible unsubscribe link in the text part"
    tags = html_tags(html)
    assert any(t == "a" and a.get("href") == unsubscribe[0] for t, a in tags), (
        "no unsubscribe link in HTML"
    )
    assert re.search(r'<html[^>]* lang="[a-z]{2}(-[A-Z]{2})?"', html), "no <html lang>"
    assert re.search(r'<meta name="color-scheme" content="light dark"', html)
    tables = [a for t, a in tags if t == "table"]
    assert tables and all(a.get("role") == "presentation" for a in tables)
    assert all(a.get("alt") for t, a in tags if t == "img"), "image without alt"
    assert re.search(r'<div style="display:none;[^"]*">[^<]+</div>', html), "no preheader"
    for tag, attributes in tags:
        assert tag != "script"
        for name, value in attributes.items():
            assert not name.startswith("on"), f"event handler {name} on <{tag}>"
            assert not (value or "").strip().lower().startswith("javascript:")
    return message, text, html
