"""Write an Atom 1.0 feed (RFC 4287) with xml.etree, which escapes every text and attribute.

Text from feeds may hold characters XML 1.0 cannot carry at all (most C0
controls, lone surrogates, U+FFFE/U+FFFF); they are dropped, so the feed
stays well-formed whatever an article said.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree

ATOM = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml; charset=utf-8"

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class AtomEntry:
    """One entry: its id (an IRI), title, link, update time and plain-text content."""

    id: str
    title: str
    link: str
    updated: datetime
    text: str


@dataclass(frozen=True)
class AtomFeed:
    """The feed: its id, title, own URL, the page it stands for, author and entries."""

    id: str
    title: str
    self_url: str
    page_url: str
    author: str
    updated: datetime
    entries: Sequence[AtomEntry]


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _child(parent: ElementTree.Element, tag: str, text: str | None = None, **attrs: str) -> None:
    element = ElementTree.SubElement(
        parent, f"{{{ATOM}}}{tag}", {k: _clean(v) for k, v in attrs.items()}
    )
    if text is not None:
        element.text = _clean(text)


def atom_document(feed: AtomFeed) -> bytes:
    """Return the feed as UTF-8 XML with its declaration."""
    ElementTree.register_namespace("", ATOM)
    root = ElementTree.Element(f"{{{ATOM}}}feed")
    _child(root, "id", feed.id)
    _child(root, "title", feed.title)
    _child(root, "updated", _timestamp(feed.updated))
    _child(root, "link", rel="self", type="application/atom+xml", href=feed.self_url)
    _child(root, "link", rel="alternate", type="text/html", href=feed.page_url)
    author = ElementTree.SubElement(root, f"{{{ATOM}}}author")
    _child(author, "name", feed.author)
    for item in feed.entries:
        entry = ElementTree.SubElement(root, f"{{{ATOM}}}entry")
        _child(entry, "id", item.id)
        _child(entry, "title", item.title)
        _child(entry, "updated", _timestamp(item.updated))
        _child(entry, "link", rel="alternate", type="text/html", href=item.link)
        _child(entry, "content", item.text, type="text")
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
