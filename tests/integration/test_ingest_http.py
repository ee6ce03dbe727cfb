"""Feeds over HTTP from a real local server: 304s, timeouts, size caps, redirects, encodings."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from briefing import __version__
from briefing.config import Config
from briefing.errors import ConfigError
from briefing.ingest import SourceReport, ingest
from briefing.store import Database, open_database
from briefing.store.schema import Article, Source
from tests.support.factories import NOW, make_project
from tests.support.feedserver import FeedServer, Handler, redirect, serve, static

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
WIRE = (FIXTURES / "wire.rss").read_bytes()
FAST = {
    "connect_timeout": "1s",
    "read_timeout": "0.3s",
    "total_timeout": "1s",
    "max_bytes": 20_000,
    "max_redirects": 3,
    "flag_after_failures": 2,
}
# Timeouts for the tests whose servers answer at once: a loaded machine must not turn
# a healthy local fetch into a read timeout. Only the broken-server tests use FAST's.
ROOMY = {**FAST, "connect_timeout": "10s", "read_timeout": "10s", "total_timeout": "20s"}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as feeds:
        yield feeds


def project(tmp_path: Path, urls: list[str], **ingest: Any) -> Config:
    return make_project(
        tmp_path,
        world=0,
        sport=0,
        wire=0,
        sections={
            "web": {"title": "Web", "sources": urls},
            "technology": {"title": "Technology"},
        },
        briefings={"daily": {"title": "D", "list_id": "d.example.org", "sections": ["web"]}},
        ingest={**ROOMY, **ingest},
    )


def run(config: Config, hours: int = 0) -> dict[str, SourceReport]:
    database = open_database(config.database)
    try:
        return {r.label: r for r in ingest(config, database, NOW + timedelta(hours=hours))}
    finally:
        database.dispose()


def source(config: Config, key: str) -> Source:
    database = open_database(config.database)
    with database.transaction() as session:
        row = session.scalar(select(Source).where(Source.key == key))
    database.dispose()
    assert row is not None
    return row


def titles(database: Database) -> list[str]:
    with database.transaction() as session:
        return sorted(session.scalars(select(Article.title)))


def test_conditional_get_makes_an_unchanged_feed_a_304(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/wire.rss"] = static(
        WIRE, etag='"v1"', last_modified="Thu, 26 Nov 2026 05:00:00 GMT"
    )
    url = server.url("/wire.rss")
    config = project(tmp_path, [url])

    first = run(config)[url]
    assert (first.status, first.new) == ("new", 3)
    request = server.seen("/wire.rss")[0]
    assert request.headers["user-agent"] == f"briefing/{__version__} (+https://news.example.org/b)"
    assert "gzip" in request.headers["accept-encoding"]
    assert "if-none-match" not in request.headers
    row = source(config, url)
    assert (row.kind, row.etag, row.last_modified) == (
        "http",
        '"v1"',
        "Thu, 26 Nov 2026 05:00:00 GMT",
    )

    second = run(config, hours=1)[url]
    assert second.status == "unchanged" and second.not_modified
    assert (second.new, second.updated, second.unchanged) == (0, 0, 0)
    request = server.seen("/wire.rss")[1]
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == "Thu, 26 Nov 2026 05:00:00 GMT"
    assert source(config, url).last_success_at == NOW + timedelta(hours=1)

    changed = WIRE.replace(b"Rail strike called off", b"Rail strike called off at last")
    server.routes["/wire.rss"] = static(changed, etag='"v2"')
    third = run(config, hours=2)[url]
    assert (third.status, third.updated, third.unchanged) == ("updated", 1, 2)
    assert (source(config, url).etag, source(config, url).last_modified) == ('"v2"', None)


def test_last_modified_alone_also_gives_a_304(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/lm.rss"] = static(WIRE, last_modified="Wed, 25 Nov 2026 23:00:00 GMT")
    url = server.url("/lm.rss")
    config = project(tmp_path, [url])
    assert run(config)[url].new == 3
    again = run(config, hours=1)[url]
    assert again.not_modified and again.status == "unchanged"


def test_an_unreadable_body_never_stores_its_etag(server: FeedServer, tmp_path: Path) -> None:
    page = (FIXTURES / "moved.html").read_bytes()
    server.routes["/feed"] = static(page, "text/html", etag='"page"')
    url = server.url("/feed")
    config = project(tmp_path, [url])
    for hours in (0, 1):
        report = run(config, hours)[url]
        assert report.status == "failed"
        assert "an HTML page, not a feed; titled 'Document Moved'" in report.failures[0]
    # The failure is fetched again in full, never hidden behind a 304.
    assert all("if-none-match" not in seen.headers for seen in server.seen("/feed"))
    assert source(config, url).etag is None


def slow(handler: Handler) -> None:
    handler.server.feeds.stop.wait(2)  # past the 0.3 s read timeout
    handler.reply(WIRE)


def trickle(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(WIRE)))
    handler.end_headers()
    for byte in WIRE[:40]:  # one byte every 0.1 s: never a read timeout, past the total
        if handler.server.feeds.stop.wait(0.1):
            return
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()


def endless(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/rss+xml")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>')
    for _ in range(200):  # 200 KB at most, far past the 20 KB cap
        handler.wfile.write(b"<item><title>x</title></item>" * 34)


def test_broken_servers_are_named_and_never_stop_the_others(
    server: FeedServer, tmp_path: Path
) -> None:
    server.routes.update(
        {
            "/slow": slow,
            "/trickle": trickle,
            "/declared-big": static(b"", headers={"Content-Length": "50000000"}),
            "/endless": endless,
            "/loop/a": redirect("/loop/b"),
            "/loop/b": redirect("/loop/a"),
            **{f"/hop/{n}": redirect(f"/hop/{n + 1}") for n in range(10)},
            "/gone": lambda h: h.reply(b"gone", 410),
            "/busy": lambda h: h.reply(b"", 503, {"Retry-After": "120"}),
            "/bad-gzip": static(gzip.compress(WIRE)[:60], headers={"Content-Encoding": "gzip"}),
            "/ok": static(WIRE),
        }
    )
    paths = [
        "/slow",
        "/trickle",
        "/declared-big",
        "/endless",
        "/loop/a",
        "/hop/0",
        "/gone",
        "/busy",
        "/missing",
        "/bad-gzip",
        "/ok",
    ]
    closed = "http://127.0.0.1:9/feed"  # the discard port: nothing listens there
    config = project(tmp_path, [server.url(p) for p in paths] + [closed], **FAST)
    started = time.monotonic()
    reports = run(config)
    assert time.monotonic() - started < 6
    reason = {p: reports[server.url(p)].failures for p in paths}
    assert reports[server.url("/ok")].new == 3 and reason["/ok"] == []
    assert "sent nothing for 0.3s (read timeout)" in reason["/slow"][0]
    assert "longer than 1s in all (total timeout)" in reason["/trickle"][0]
    assert "response is 50,000,000 bytes, over the 20,000-byte limit" in reason["/declared-big"][0]
    assert "larger than the 20,000-byte limit (stopped reading)" in reason["/endless"][0]
    loop = f"redirect loop: {server.url('/loop/a')} -> {server.url('/loop/b')} -> {server.url('/loop/a')}"
    assert loop in reason["/loop/a"][0]
    assert "more than 3 redirects" in reason["/hop/0"][0]
    assert "HTTP 410 Gone: the feed was removed" in reason["/gone"][0]
    assert "HTTP 503 Service Unavailable (Retry-After: 120)" in reason["/busy"][0]
    assert "HTTP 404 Not Found: no feed at this URL" in reason["/missing"][0]
    assert "the gzip body is truncated (the stream ends early)" in reason["/bad-gzip"][0]
    assert "cannot connect" in reports[closed].failures[0]
    assert all(r.status == "failed" for label, r in reports.items() if not label.endswith("/ok"))


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def test_gzip_wrong_charset_and_a_permanent_move(server: FeedServer, tmp_path: Path) -> None:
    cyrillic = (FIXTURES / "cyrillic.rss").read_text(encoding="utf-8").encode("windows-1251")
    server.routes.update(
        {
            "/gzip.rss": static(gzip.compress(WIRE), headers={"Content-Encoding": "gzip"}),
            "/file.rss.gz": static(gzip.compress(WIRE), "application/gzip"),
            "/cp1251.rss": static(cyrillic, "text/xml; charset=utf-8"),
            "/old.rss": redirect("/new.rss", 301),
            "/new.rss": static((FIXTURES / "entities.rss").read_bytes()),
            "/feed.json": static((FIXTURES / "feed.json").read_bytes(), "application/feed+json"),
            "/deflate.rss": static(zlib.compress(WIRE), headers={"Content-Encoding": "deflate"}),
            "/raw-deflate.rss": static(raw_deflate(WIRE), headers={"Content-Encoding": "deflate"}),
            "/bomb.rss": static(
                gzip.compress(b" " * 5_000_000), headers={"Content-Encoding": "gzip"}
            ),
        }
    )
    paths = [
        "/gzip.rss",
        "/file.rss.gz",
        "/cp1251.rss",
        "/old.rss",
        "/feed.json",
        "/deflate.rss",
        "/raw-deflate.rss",
        "/bomb.rss",
    ]
    config = project(tmp_path, [server.url(p) for p in paths])
    reports = run(config)
    # The same three wire stories arrive four times, compressed four ways; the
    # sources are fetched at once, so whichever is stored first has them new.
    wire_copies = ["/gzip.rss", "/file.rss.gz", "/deflate.rss", "/raw-deflate.rss"]
    assert sorted(reports[server.url(p)].new for p in wire_copies) == [0, 0, 0, 3]
    for path in wire_copies:
        report = reports[server.url(path)]
        assert (report.new, report.unchanged) in {(3, 0), (0, 3)}, (path, report)
    assert {p: reports[server.url(p)].new for p in paths if p not in wire_copies} == {
        "/cp1251.rss": 2,
        "/old.rss": 2,
        "/feed.json": 2,
        "/bomb.rss": 0,
    }
    # 5 MB of spaces squeezed into 5 KB: refused as it expands, past 20 KB.
    assert "larger than the 20,000-byte limit" in reports[server.url("/bomb.rss")].failures[0]
    assert any(
        "read as cp1251 (detected)" in w for w in reports[server.url("/cp1251.rss")].warnings
    )
    moved = reports[server.url("/old.rss")].warnings
    assert (
        f"moved permanently (HTTP 301) to {server.url('/new.rss')}; update config.yaml" in moved[0]
    )
    database = open_database(config.database)
    assert "Городской совет утвердил новый бюджет на следующий год" in titles(database)
    assert "Café owners protest — again" in titles(database)
    with database.transaction() as session:
        json_story = session.scalar(select(Article).where(Article.title == "JSON story one"))
        assert json_story is not None
        assert [s.section for s in json_story.sections] == ["web"]
    database.dispose()


def test_ingest_settings_have_defaults_and_named_errors(tmp_path: Path) -> None:
    default = make_project(tmp_path / "a", world=0, sport=0, wire=0).ingest
    assert (default.connect_timeout, default.read_timeout, default.total_timeout) == (
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(seconds=60),
    )
    assert (default.max_bytes, default.max_redirects, default.flag_after_failures) == (
        10_000_000,
        5,
        3,
    )
    custom = project(tmp_path / "b", [], **FAST, user_agent="Newsroom bot (ops@example.org)")
    assert custom.ingest.read_timeout == timedelta(milliseconds=300)
    from briefing.ingest.fetch import default_user_agent

    assert default_user_agent(custom) == "Newsroom bot (ops@example.org)"
    with pytest.raises(ConfigError) as caught:
        project(
            tmp_path / "c", [], read_timeout="0s", max_redirects=50, user_agent="a\nb", timeout="5s"
        )
    assert caught.value.problems == [
        "ingest.read_timeout: expected a duration above zero, such as 10s",
        "ingest.max_redirects: Input should be less than or equal to 20",
        "ingest.user_agent: expected one non-empty line of text",
        "ingest.timeout: unknown key (check its spelling and indentation)",
    ]
