"""Broken real-world feeds: what can be read is read, what cannot is named with the reason."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from briefing.errors import SourceError
from briefing.ingest.clean import canonical_url
from briefing.ingest.dates import parse_loose_date
from briefing.ingest.decode import decode_document
from briefing.ingest.readers import FEED, ReadContext, ReadResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feeds"
CONTEXT = ReadContext(
    label="Fixture",
    sections=("world",),
    known_sections=frozenset({"world", "technology"}),
    categories={"Technology": "technology"},
)
WIRE_TITLES = ["Harbour expansion approved", "Chip plant opens", "Rail strike called off"]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def read(data: bytes, **options: str) -> ReadResult:
    return FEED.parse(data, "feed", CONTEXT, **options)  # type: ignore[arg-type]


def titles(result: ReadResult) -> list[str]:
    return [draft.title for draft in result.drafts]


def wire_in(encoding: str) -> bytes:
    text = fixture("wire.rss").decode()
    label = encoding.removesuffix("-sig").removesuffix("-le").removesuffix("-be")
    return text.replace('encoding="UTF-8"', f'encoding="{label}"').encode(encoding)


@pytest.mark.parametrize(
    "encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]
)
def test_byte_order_marks_and_wide_encodings(encoding: str) -> None:
    result = read(wire_in(encoding))
    assert titles(result) == WIRE_TITLES
    assert result.warnings == []


def test_cyrillic_under_a_wrong_http_charset_is_detected() -> None:
    data = fixture("cyrillic.rss").decode().encode("windows-1251")
    result = read(data, charset="utf-8")
    assert titles(result)[0] == "Городской совет утвердил новый бюджет на следующий год"
    assert result.warnings == [
        (
            "the HTTP header says utf-8 but the bytes are not UTF-8 (byte 36); "
            "read as cp1251 (detected)"
        )
    ]


def test_iso_8859_1_label_reads_windows_1252_bytes() -> None:
    # Servers say ISO-8859-1 and send windows-1252: the en dash is byte 0x96.
    data = fixture("latin.rss").decode().encode("windows-1252")
    result = read(data)
    assert titles(result) == ["Câmara aprova orçamento para a região"]
    assert result.drafts[0].body_text.startswith("A votação terminou às três")
    assert result.warnings == []


def test_utf8_bytes_under_a_latin1_declaration_stay_utf8() -> None:
    result = read(fixture("latin.rss"))
    assert titles(result) == ["Câmara aprova orçamento para a região"]
    assert result.warnings == [
        "the XML declaration says ISO-8859-1 but the bytes are UTF-8; read as UTF-8"
    ]


def test_undeclared_latin1_is_read_as_windows_1252() -> None:
    decoded = decode_document("<rss><title>Notícias</title></rss>".encode("latin-1"), "x")
    assert decoded.text == "<rss><title>Notícias</title></rss>"
    assert decoded.encoding == "cp1252"
    assert "no charset is declared" in decoded.warnings[0]


def test_unknown_declared_charset_is_ignored_with_a_warning() -> None:
    data = b'<?xml version="1.0" encoding="x-nonsense"?><rss version="2.0"><channel><title>T</title><item><title>One</title></item></channel></rss>'
    result = read(data)
    assert titles(result) == ["One"]
    assert "names an unknown charset 'x-nonsense'" in result.warnings[0]


def test_blank_line_and_stray_output_before_the_declaration() -> None:
    blank = read(b"\n\n  \t" + fixture("wire.rss"))
    assert titles(blank) == WIRE_TITLES
    assert blank.warnings == ["blank line or white space before <?xml removed"]
    php = read(b"Warning: mysql_connect() failed on line 3\n" + fixture("wire.rss"))
    assert titles(php) == WIRE_TITLES
    assert php.warnings[0].startswith("42 characters of text before the first tag removed")


def test_gzip_on_disk_and_truncated_gzip() -> None:
    packed = gzip.compress(fixture("wire.rss"))
    assert titles(read(packed)) == WIRE_TITLES
    with pytest.raises(SourceError, match="gzip data is truncated"):
        read(packed[:40])
    with pytest.raises(SourceError, match=r"empty document \(an empty gzip file\)"):
        read(gzip.compress(b""))


def test_undefined_entities_are_read_as_characters() -> None:
    result = read(fixture("entities.rss"))
    assert titles(result) == ["Café owners protest — again", "Second story"]
    assert result.drafts[0].body_text == "Owners of the café met at noon…"
    assert result.warnings == [
        "5 HTML entities that XML does not define (&eacute;, &nbsp;, &mdash;) read as characters"
    ]


def test_truncated_document_keeps_the_entries_before_the_cut() -> None:
    result = read(fixture("truncated.atom"))
    assert titles(result)[:2] == ["First whole entry", "Second whole entry"]
    assert result.drafts[0].body_text == "The first entry arrived whole."
    assert "truncated?" in result.warnings[0] and "lenient parser" in result.warnings[0]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "moved.html",
            (
                "an HTML page, not a feed; titled 'Document Moved'; "
                "it points to https://moved.example.net/rss/"
            ),
        ),
        (
            "page.html",
            (
                "an HTML page, not a feed; titled 'Example Chronicle — Home'; "
                "it links to a feed at https://chronicle.example.net/feeds/top.rss"
            ),
        ),
    ],
)
def test_html_pages_are_named_for_what_they_are(name: str, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        read(fixture(name))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty document"),
        (b" \n\t", "empty document"),
        (
            b"<p>A paragraph of an article, not a feed.</p>",
            "an HTML fragment (it starts with <p>), not a feed",
        ),
        (b"<note><to>Tove</to></note>", "XML with root element <note>, not RSS, Atom or RDF"),
        (b"\x00\xff not xml", "not XML or JSON (starts '\xff not xml')"),
        (
            b'{"version": "1.0"',
            "not valid JSON: Expecting ',' delimiter: line 1 column 18 (char 17)",
        ),
        (b'{"title": "no version"}', "JSON, but not a JSON Feed (no jsonfeed.org version)"),
    ],
)
def test_unreadable_documents_are_named_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        read(data)
    assert caught.value.reason == reason


def test_a_feed_with_no_entries_is_read_with_a_warning() -> None:
    result = read(b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>')
    assert result.drafts == [] and result.warnings == ["the feed has no entries"]


def test_relative_links_resolve_against_xml_base() -> None:
    result = read(fixture("xml-base.atom"))
    first, second = result.drafts
    assert first.url == "https://base.example.net/news/2026/relative-story"
    assert 'href="https://base.example.net/about"' in first.body_html
    assert 'src="https://base.example.net/news/img/photo.jpg"' in first.body_html
    assert second.url == "https://other.example.net/world/story-2"


def test_relative_links_resolve_against_the_url_the_feed_came_from() -> None:
    data = fixture("wire.rss").replace(b"https://wire.example.net/chips", b"/chips")
    result = read(data, base_url="https://feeds.example.org/wire.rss")
    assert result.drafts[1].url == "https://feeds.example.org/chips"


def test_json_feed_relative_urls_and_loose_dates() -> None:
    result = read(fixture("feed.json"))
    one, two = result.drafts
    assert one.url == "https://json.example.net/stories/1"
    assert one.sections == ("world", "technology")
    assert 'href="https://json.example.net/x"' in one.body_html
    assert two.published_at == datetime(2026, 11, 26, 4, 0, tzinfo=UTC)


def test_non_english_dates_are_read_and_unreadable_ones_said() -> None:
    result = read(fixture("dates.rss"))
    published = {draft.title: draft.published_at for draft in result.drafts}
    five = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    assert published["Portuguese date"] == five
    assert published["German date"] == five
    assert published["Numeric date"] == five
    assert published["Unreadable date"] is None and published["No date at all"] is None
    assert result.warnings == [
        (
            "1 entry(s) with a date that could not be read (entry 4: 'gestern, 17 Uhr'); "
            "their first-seen time is used instead"
        )
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
        ("lun., 24 sept. 2018 19:42:40 +0200", datetime(2018, 9, 24, 17, 42, 40, tzinfo=UTC)),
        ("24 de setembro de 2018 19:42", datetime(2018, 9, 24, 19, 42, tzinfo=UTC)),
        ("Mi, 3 Okt 2018 10:00:00 MESZ", datetime(2018, 10, 3, 8, 0, tzinfo=UTC)),
        ("2018-09-24 19:42:40.123 +02:00", datetime(2018, 9, 24, 17, 42, 40, tzinfo=UTC)),
        ("1518478934", datetime(2018, 2, 12, 23, 42, 14, tzinfo=UTC)),
        ("03/04/2018", None),  # March or April? Never guessed.
        ("gestern", None),
        ("", None),
    ],
)
def test_loose_dates(text: str, expected: datetime | None) -> None:
    assert parse_loose_date(text) == expected


def test_shared_links_and_guids_do_not_merge_entries() -> None:
    result = read(fixture("identities.rss"))
    by_title = {draft.title: draft for draft in result.drafts}
    # Every episode links to the home page: the GUID tells them apart.
    assert by_title["Episode one"].uid == "guid:https://id.example.net/audio/1.mp3"
    assert by_title["Episode two"].uid == "guid:https://id.example.net/audio/2.mp3"
    assert by_title["Episode one"].url == "https://id.example.net/"
    # Two stories reuse GUID 42: the link tells them apart, and 42 is no identity.
    assert by_title["Story A"].uid == "url:https://id.example.net/a"
    assert by_title["Story A"].guid is None and by_title["Story B"].guid is None
    # A missing title takes the body's first words; a missing link keeps the GUID.
    assert by_title["An item without a title still has words to show."].url
    assert by_title["No link, only a GUID"].uid == "guid:only-guid"
    assert result.skipped == ["entry 9: no title and no text (empty)"]
    assert any("2 entries share the link https://id.example.net/" in w for w in result.warnings)
    assert any("GUID '42' is shared" in w for w in result.warnings)


def test_canonical_url_normalisation() -> None:
    assert canonical_url("HTTP://WWW.Example.ORG:80/a%7eb/c d?CMP=rss&id=2&utm_medium=x#top") == (
        "http://www.example.org/a~b/c%20d?id=2"
    )
    assert canonical_url("https://example.org/?ns_campaign=x&smid=tw&_ga=1&WT.mc_id=3") == (
        "https://example.org/"
    )
    assert canonical_url("https://bücher.example/straße") == (
        "https://xn--bcher-kva.example/stra%C3%9Fe"
    )
    assert canonical_url("https://example.org/a%2fb") == "https://example.org/a%2Fb"
