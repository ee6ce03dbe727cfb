"""Reading one document within a budget: worker processes, a parse timeout, bounded nesting,
per-item isolation, and the parsing faults of real feeds (base URLs, media, stray bytes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from briefing.errors import SourceError
from briefing.ingest.clean import bound_html, sanitise_html
from briefing.ingest.decode import decode_document
from briefing.ingest.readers import FEED, JSON_FEED, ReadContext, ReadResult
from briefing.ingest.workers import Fetched, ReadLimits, read_document, read_here
from tests.support.factories import make_project

CONTEXT = ReadContext(label="Handmade", sections=("world",), known_sections=frozenset({"world"}))


def rss(items: str, channel: str = "<link>https://site.example/</link>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>T</title>'
        f"{channel}{items}</channel></rss>"
    ).encode()


def json_feed(items: list[object]) -> str:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items})


def titles(result: ReadResult) -> list[str]:
    return [draft.title for draft in result.drafts]


# -- worker processes and the parse timeout ------------------------------------------------


@dataclass
class SlowReader:
    """A reader that takes ``seconds`` to read anything (a stand-in for a pathological one)."""

    seconds: float
    kind: str = "slow"
    suffixes: tuple[str, ...] = (".slow",)

    def read(self, path: Path, context: ReadContext) -> ReadResult:
        time.sleep(self.seconds)
        return FEED.read(path, context)


def test_a_document_is_read_in_a_worker_and_sanitised(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(
        rss(
            "<item><title>One</title><link>https://a.example/1</link>"
            "<description>&lt;script&gt;x()&lt;/script&gt;&lt;p&gt;Hi&lt;/p&gt;</description></item>"
        )
    )
    result = read_document(FEED, path, CONTEXT, ReadLimits(parse_timeout=30, workers=1))
    assert titles(result) == ["One"]
    assert result.drafts[0].body_html == "<p>Hi</p>"


def test_a_document_over_the_parse_timeout_is_stopped_and_named(tmp_path: Path) -> None:
    path = tmp_path / "feed.slow"
    path.write_bytes(rss("<item><title>One</title></item>"))
    limits = ReadLimits(parse_timeout=1, workers=1)
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        read_document(SlowReader(60), path, CONTEXT, limits)
    assert time.monotonic() - started < 15
    assert caught.value.source == str(path)
    assert "longer than the 1s parse timeout" in caught.value.reason
    # The pool is replaced: the next document is read as usual (more time: a loaded machine).
    relaxed = ReadLimits(parse_timeout=30, workers=1)
    assert titles(read_document(SlowReader(0), path, CONTEXT, relaxed)) == ["One"]


def test_fetched_bytes_are_read_against_their_url() -> None:
    data = rss("<item><title>One</title><link>/one</link></item>", channel="")
    fetched = Fetched(data, "https://feeds.example/rss", base_url="https://feeds.example/rss")
    result = read_document(FEED, fetched, CONTEXT, ReadLimits(workers=1))
    assert result.drafts[0].url == "https://feeds.example/one"


def test_a_source_error_in_the_worker_keeps_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "page.xml"
    path.write_bytes(b"<html><head><title>Home</title></head><body></body></html>")
    with pytest.raises(SourceError, match="an HTML page, not a feed"):
        read_document(FEED, path, CONTEXT, ReadLimits(workers=1))


def test_ingest_cli_reports_a_parse_timeout_naming_the_source(tmp_path: Path) -> None:
    config = make_project(tmp_path, world=1, sport=0, wire=2)
    config_file = config.base_dir / "config.yaml"
    # 8 MB of HTML-rich feed: far more than a 0.5 s budget, which the Markdown files stay within.
    text = "&lt;b&gt;Words&lt;/b&gt; of a story. " * 60  # HTML for every stage to walk
    items = "".join(
        f"<item><title>T{i}</title><link>https://a.example/{i}</link>"
        f"<description>{text}</description></item>"
        for i in range(3800)
    )
    (tmp_path / "content" / "wire.xml").write_bytes(rss(items))
    config_file.write_text(config_file.read_text() + "\ningest:\n  parse_timeout: 0.5s\n")
    run = [sys.executable, "-m", "briefing", "--config", str(config_file), "ingest"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed    Test Wire" in done.stdout
    assert "content/wire.xml: reading took longer than the 0.5s parse timeout" in done.stdout
    assert "new       content/world/*.md" in done.stdout


# -- the CPU budget: nesting and element count ---------------------------------------------


def test_deep_nesting_is_flattened_quickly_with_a_warning_naming_the_item() -> None:
    body = "&lt;div&gt;" * 100_000 + "deep text" + "&lt;/div&gt;" * 100_000
    data = rss(
        "<item><title>Deep</title><link>https://a.example/d</link>"
        f"<description>{body}</description></item>"
        "<item><title>Plain</title><link>https://a.example/p</link>"
        "<description>fine</description></item>"
    )
    result = FEED.parse(data, "feed", CONTEXT)
    assert titles(result) == ["Deep", "Plain"]
    assert result.drafts[0].body_text == "deep text"
    assert any(
        w.startswith("entry 1 (Deep): HTML nested more than 64 levels deep")
        for w in result.warnings
    )


@pytest.mark.parametrize("form", ["xhtml", "cdata"])
def test_a_deeply_nested_document_is_flattened_before_parsing(form: str) -> None:
    deep = "<div>" * 250_000 + "deep text" + "</div>" * 250_000
    if form == "xhtml":
        data = (
            '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            '<entry><title>E</title><id>urn:e</id><link href="https://a.example/e"/>'
            '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            f'<a href="/rel">link</a>{deep}</div></content></entry></feed>'
        )
    else:
        data = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
            "<title>E</title><link>https://a.example/e</link>"
            f'<description><![CDATA[<a href="/rel">link</a>{deep}]]></description>'
            "</item></channel></rss>"
        )
    result = FEED.parse(data.encode(), "feed", CONTEXT)
    (draft,) = result.drafts
    assert draft.body_text == "linkdeep text"
    assert '<a href="https://a.example/rel"' in draft.body_html
    assert result.warnings[0].startswith("before parsing: HTML nested more than 250 levels deep")
    assert result.warnings[1].startswith("entry 1 (E): HTML nested more than 64 levels deep")


def test_bound_html_keeps_shallow_html_and_text() -> None:
    assert bound_html("<p>a</p>" * 10) == ("<p>a</p>" * 10, None)
    flattened, note = bound_html("<b>" * 70 + "x" + "</b>" * 70, max_depth=64)
    assert flattened == "<b>" * 64 + "x" + "</b>" * 64
    assert note == "HTML nested more than 64 levels deep: 12 tags dropped, their text kept"
    # Unclosed paragraphs do not count as nesting.
    many = "<p>para" * 200
    assert bound_html(many, max_depth=64) == (many, None)
    notes: list[str] = []
    assert sanitise_html("<i>x</i>" * 30_000, notes=notes).count("<i>") == 20_000
    assert notes == ["HTML with more than 20,000 elements: 20,000 tags dropped, their text kept"]


def test_entries_over_max_entries_keep_the_newest() -> None:
    items = "".join(
        f"<item><title>T{day}</title><link>https://a.example/{day}</link>"
        f"<pubDate>{day:02d} Nov 2026 10:00:00 +0000</pubDate></item>"
        for day in (3, 9, 1, 7, 5)
    )
    result = FEED.parse(rss(items), "feed", ReadContext(**{**CONTEXT.__dict__, "max_entries": 2}))
    assert titles(result) == ["T9", "T7"]
    assert "the document has 5 entries; the newest 2 read (ingest.max_entries)" in result.warnings
    document = json_feed(
        [
            {"id": str(d), "title": f"J{d}", "date_published": f"2026-11-{d:02d}T00:00:00Z"}
            for d in (3, 9, 1)
        ]
    )
    small = ReadContext(**{**CONTEXT.__dict__, "max_entries": 1})
    assert titles(JSON_FEED.parse(document.encode(), "j", small)) == ["J9"]


# -- per-item isolation in JSON Feed -------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"tags": 5}, "tags: expected a list of strings, got a number"),
        ({"authors": {"name": "A"}}, "authors: expected a list of objects, got an object"),
        ({"authors": 7}, "authors: expected a list of objects, got a number"),
        ({"authors": [3]}, "author: expected an object, got a number"),
        ({"title": {"x": 1}}, "title: expected a string, got an object"),
        ({"content_html": ["a"]}, "content_html: expected a string, got a list"),
    ],
)
def test_a_malformed_json_item_is_skipped_and_named(bad: dict[str, object], reason: str) -> None:
    items = [
        {"id": "1", "title": "Good one", "url": "https://a.example/1"},
        {"id": "2", "title": "Bad", **bad},
        {"id": "3", "title": "Good two", "url": "https://a.example/3"},
    ]
    result = JSON_FEED.parse(json_feed(items).encode(), "j", CONTEXT)
    assert titles(result) == ["Good one", "Good two"]
    assert result.skipped == [f"item 2: {reason}"]


def test_deeply_nested_arrays_and_huge_numbers_cost_only_their_item() -> None:
    nested = "[" * 100_000 + "]" * 100_000
    huge = "9" * 5000
    text = (
        '{"version": "https://jsonfeed.org/version/1.1", "items": ['
        '{"id": "1", "title": "Good one"},'
        f'{{"id": "2", "title": "Nested", "tags": {nested}}},'
        f'{{"id": {huge}, "title": "Huge id"}},'
        '{"id": "4", "title": "Good two"}]}'
    )
    result = JSON_FEED.parse(text.encode(), "j", CONTEXT)
    assert titles(result) == ["Good one", "Huge id", "Good two"]
    assert result.skipped == ["item 2: tags: expected a list of strings, got a list"]
    assert "1 value(s) nested more than 200 levels deep read as null" in result.warnings
    assert result.drafts[1].guid == huge[:4] + huge[4:]


# -- findings on real feeds ----------------------------------------------------------------


def test_relative_links_in_a_local_file_resolve_against_the_feeds_self_link(
    tmp_path: Path,
) -> None:
    atom = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>'
        '<link rel="self" href="https://blog.example/feeds/atom.xml"/>'
        '<link rel="alternate" href="/"/>'
        "<updated>2026-11-01T00:00:00Z</updated>"
        '<entry><title>One</title><id>urn:1</id><link href="posts/one.html"/>'
        "<updated>2026-11-01T00:00:00Z</updated></entry></feed>"
    )
    path = tmp_path / "atom.xml"
    path.write_text(atom)
    result = FEED.read(path, CONTEXT)
    assert result.drafts[0].url == "https://blog.example/feeds/posts/one.html"


def test_an_rss_file_resolves_relative_links_against_its_site_link(tmp_path: Path) -> None:
    path = tmp_path / "rss.xml"
    path.write_bytes(rss("<item><title>One</title><link>/2026/one</link></item>"))
    assert FEED.read(path, CONTEXT).drafts[0].url == "https://site.example/2026/one"


@pytest.mark.parametrize("base_url", [None, "https://feeds.example/rss"])
def test_an_items_xml_base_does_not_leak_to_the_next_item(base_url: str | None) -> None:
    data = rss(
        '<item xml:base="https://other.example/first/"><title>One</title><link>one</link></item>'
        "<item><title>Two</title><link>second</link></item>"
    )
    result = FEED.parse(data, "feed", CONTEXT, base_url=base_url)
    assert [d.url for d in result.drafts] == [
        "https://other.example/first/one",
        "https://feeds.example/second" if base_url else "https://site.example/second",
    ]


def test_only_images_become_the_image_and_audio_video_become_links() -> None:
    data = rss(
        '<item xmlns:media="http://search.yahoo.com/mrss/"><title>Podcast</title>'
        "<link>https://a.example/p</link><description>Episode.</description>"
        '<enclosure url="https://cdn.example/ep.mp3" type="audio/mpeg" length="1"/>'
        '<media:content url="https://cdn.example/clip.swf"/>'
        '<media:content url="https://cdn.example/talk" medium="video"/>'
        "</item>"
        '<item xmlns:media="http://search.yahoo.com/mrss/"><title>Photo</title>'
        "<link>https://a.example/q</link>"
        '<media:content url="https://cdn.example/ep.mp3"/>'
        '<media:content url="https://cdn.example/photo.jpg"/>'
        "</item>"
    )
    podcast, photo = FEED.parse(data, "feed", CONTEXT).drafts
    assert podcast.image_url is None
    assert '<a href="https://cdn.example/ep.mp3">Listen</a>' in podcast.body_html
    assert '<a href="https://cdn.example/clip.swf">Watch</a>' in podcast.body_html
    assert '<a href="https://cdn.example/talk">Watch</a>' in podcast.body_html
    assert photo.image_url == "https://cdn.example/photo.jpg"


def test_json_feed_audio_attachments_become_listen_links() -> None:
    item = {
        "id": "1",
        "title": "Episode",
        "image": "https://cdn.example/ep.mp3",
        "attachments": [{"url": "https://cdn.example/ep.mp3", "mime_type": "audio/mpeg"}],
    }
    draft = JSON_FEED.parse(json_feed([item]).encode(), "j", CONTEXT).drafts[0]
    assert draft.image_url is None
    assert '<a href="https://cdn.example/ep.mp3">Listen</a>' in draft.body_html


def test_utf8_with_a_stray_byte_stays_utf8() -> None:
    accents = "Zo\u00eb\u2019s caf\u00e9 " * 60  # 180 valid multi-byte sequences
    data = accents.encode() + b"\xe9 end"
    decoded = decode_document(data, "feed")
    assert decoded.encoding == "utf-8"
    assert decoded.text.startswith(accents)
    assert decoded.text.endswith("\ufffd end")
    first = len(accents.encode())
    assert decoded.warnings == [
        (
            f"the bytes are UTF-8 but for 1 invalid sequence(s) (the first at byte {first}); "
            "read as UTF-8, those replaced with U+FFFD"
        )
    ]


def test_mostly_invalid_utf8_is_still_detected() -> None:
    data = "café crème brûlée".encode("cp1252") + "Zoë".encode()
    decoded = decode_document(data, "feed")
    assert decoded.encoding == "cp1252"


def test_a_truncated_feed_with_no_entries_reports_why() -> None:
    data = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><it'
    with pytest.raises(SourceError, match=r"not well-formed XML .* and no entries read"):
        FEED.parse(data, "feed", CONTEXT)


def test_an_html_pages_feed_link_is_shown_resolved() -> None:
    page = (
        b"<!doctype html><html><head><title>Home</title>"
        b'<link rel="alternate" type="application/rss+xml" href="/ok/0"></head></html>'
    )
    with pytest.raises(SourceError, match=r"links to a feed at https://site\.example/ok/0$"):
        FEED.parse(page, "page", CONTEXT, base_url="https://site.example/blog/")


def test_an_undefined_entity_warning_names_the_entity() -> None:
    data = rss(
        "<item><title>One &amp; &lol9;</title><link>https://a.example/1</link></item>"
        "<item><title>Two</title><link>https://a.example/2</link></item>"
    )
    result = FEED.parse(data, "feed", CONTEXT)
    assert titles(result)[1] == "Two"
    assert any("an undefined entity &lol9; at line 2" in w for w in result.warnings)


def test_an_item_with_only_a_link_is_kept() -> None:
    data = rss("<item><link>https://a.example/only</link></item>")
    result = FEED.parse(data, "feed", CONTEXT)
    assert [(d.title, d.url) for d in result.drafts] == [
        ("https://a.example/only", "https://a.example/only")
    ]
    assert read_here(FEED, Fetched(data, "feed"), CONTEXT).drafts[0].url == "https://a.example/only"


# -- links in bodies: resolved against the base feedparser records, attributes only ---------


def test_body_links_resolve_against_the_content_base_and_keep_their_ampersands() -> None:
    data = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b'<title>A</title><link rel="self" href="https://site.example/blog/feed.atom"/>'
        b'<entry xml:base="https://other.example/a/b/"><title>One</title><id>urn:1</id>'
        b'<link href="one.html"/><content type="html">'
        b"&lt;p&gt;&lt;a href=&quot;rel/x?a=1&amp;amp;b=2&quot;&gt;this&lt;/a&gt; "
        b"&lt;img src=&quot;../i.png&quot; alt=&quot;i&quot;&gt; "
        b"&lt;a href=&quot;&quot;&gt;here&lt;/a&gt; "
        b"&amp;lt;a href=&quot;/in-text&quot;&amp;gt;&lt;/p&gt;</content></entry>"
        b'<entry><title>Two</title><id>urn:2</id><link href="https://site.example/2"/>'
        b'<content type="xhtml" xml:base="https://third.example/c/">'
        b'<div xmlns="http://www.w3.org/1999/xhtml"><a href="deep/link">x</a><br/>y</div>'
        b"</content></entry></feed>"
    )
    for base_url in (None, "https://feeds.example/feed.atom"):
        one, two = FEED.parse(data, "feed", CONTEXT, base_url=base_url).drafts
        assert one.url == "https://other.example/a/b/one.html"
        assert 'href="https://other.example/a/b/rel/x?a=1&amp;b=2"' in one.body_html
        assert 'src="https://other.example/a/i.png"' in one.body_html
        assert 'href="https://other.example/a/b/"' in one.body_html  # an empty href: the base
        assert '&lt;a href="/in-text"&gt;' in one.body_html  # text that looks like a link
        assert 'href="https://third.example/c/deep/link"' in two.body_html
        assert two.body_html.count("<br>") == 1  # XHTML <br/> is one line break


def test_a_huge_title_is_cut_with_a_warning() -> None:
    title = "&lt;b&gt;" * 100_000 + "Never read"
    result = FEED.parse(
        rss(
            f"<item><title>{title}</title><link>https://a.example/t</link>"
            "<description>The text of the story.</description></item>"
        ),
        "feed",
        CONTEXT,
    )
    (draft,) = result.drafts
    assert draft.title == "The text of the story."  # the cut title holds no text
    assert result.warnings == [
        "entry 1 (The text of the story.): title of 300,010 characters cut to 5,000"
    ]
