"""The Atom writer: escaped text, no character XML cannot carry, RFC 3339 times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from xml.etree import ElementTree

import feedparser

from briefing.web.atom import ATOM, AtomEntry, AtomFeed, atom_document

HOSTILE = 'Rates <b>up</b> & "down"\x0b\x00 ]]> <script>alert(1)</script>'


def _feed(entries: list[AtomEntry]) -> bytes:
    return atom_document(
        AtomFeed(
            id="https://news.example.org/b/archive/daily/",
            title="The Daily & Co",
            self_url="https://news.example.org/b/archive/daily/feed.atom",
            page_url="https://news.example.org/b/archive/daily/",
            author="Test Gazette",
            updated=datetime(2026, 11, 26, 8, 0, tzinfo=timezone(timedelta(hours=1))),
            entries=entries,
        )
    )


def test_untrusted_text_is_escaped_and_the_document_stays_well_formed() -> None:
    entry = AtomEntry(
        id="https://news.example.org/b/archive/daily/2026-11-26",
        title=HOSTILE,
        link="https://news.example.org/b/archive/daily/2026-11-26?a=1&b=2",
        updated=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        text=HOSTILE + "\nsecond line",
    )
    body = _feed([entry])
    assert b"<script>" not in body and b"&lt;script&gt;" in body
    root = ElementTree.fromstring(body)
    (parsed,) = root.findall(f"{{{ATOM}}}entry")
    cleaned = 'Rates <b>up</b> & "down" ]]> <script>alert(1)</script>'
    assert parsed.findtext(f"{{{ATOM}}}title") == cleaned
    assert parsed.findtext(f"{{{ATOM}}}content") == cleaned + "\nsecond line"
    link = parsed.find(f"{{{ATOM}}}link")
    assert link is not None and link.get("href", "").endswith("?a=1&b=2")
    # Times are written in UTC, whatever zone they came in.
    assert root.findtext(f"{{{ATOM}}}updated") == "2026-11-26T07:00:00Z"
    feed = feedparser.parse(body)
    assert not feed.bozo and feed.version == "atom10"
    assert feed.feed.title == "The Daily & Co" and feed.entries[0].title == cleaned


def test_a_feed_without_entries_is_still_valid() -> None:
    feed = feedparser.parse(_feed([]))
    assert not feed.bozo and feed.entries == [] and feed.feed.author == "Test Gazette"
