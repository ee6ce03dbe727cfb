"""Concurrent fetching against a real local server: hard deadlines, phases, per-host limits."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.ingest import SourceReport, ingest
from briefing.ingest.fetch import Fetcher, FetchTimeout
from briefing.ops import scheduler
from briefing.ops.scheduler import Service
from briefing.store import open_database
from briefing.store.schema import Article
from tests.support.factories import NOW, make_project
from tests.support.feedserver import (
    FeedServer,
    Handler,
    redirect,
    serve,
    stalled_listener,
    static,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
WIRE = (FIXTURES / "wire.rss").read_bytes()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as feeds:
        yield feeds


def project(tmp_path: Path, urls: list[str], **ingest: Any) -> Config:
    settings = {"connect_timeout": "2s", "read_timeout": "10s", "total_timeout": "2s", **ingest}
    return make_project(
        tmp_path,
        world=0,
        sport=0,
        wire=0,
        sections={"web": {"title": "Web", "sources": urls}, "technology": {"title": "Technology"}},
        briefings={"daily": {"title": "D", "list_id": "d.example.org", "sections": ["web"]}},
        ingest=settings,
    )


def feed(n: int) -> bytes:
    """A small RSS feed whose one story is unique to ``n``."""
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
        f"<link>https://example.org/{n}</link><item><title>Story {n}</title>"
        f"<link>https://example.org/{n}/story</link><guid>https://example.org/{n}/story</guid>"
        f"<description>Text of story {n}.</description></item></channel></rss>"
    ).encode()


def trickle_headers(handler: Handler) -> None:
    """Send the status line and headers one byte every 2 s: never a read timeout."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Pad: " + b"a" * 40
    for byte in head:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        if handler.server.feeds.stop.wait(2):
            return


def trickle_body(handler: Handler) -> None:
    """Send the headers at once, then the body one byte every 0.2 s."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(WIRE)))
    handler.end_headers()
    for byte in WIRE:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        if handler.server.feeds.stop.wait(0.2):
            return


def hang(handler: Handler) -> None:
    """Accept the request and say nothing until the server stops."""
    handler.server.feeds.stop.wait(60)


def fetch_error(config: Config, url: str) -> FetchTimeout:
    async def attempt() -> FetchTimeout:
        async with Fetcher(config.ingest, "test") as fetcher:
            with pytest.raises(FetchTimeout) as caught:
                await fetcher.fetch(url)
            return caught.value

    return asyncio.run(attempt())


def test_headers_trickled_a_byte_every_2s_are_cut_at_the_deadline_and_named(
    server: FeedServer, tmp_path: Path
) -> None:
    server.routes["/trickle-headers"] = trickle_headers
    server.routes["/ok"] = static(feed(1))
    url = server.url("/trickle-headers")
    config = project(tmp_path, [url, server.url("/ok")], read_timeout="5s", total_timeout="3s")
    started = time.monotonic()
    reports = {r.label: r for r in ingest(config, open_database(config.database), NOW)}
    elapsed = time.monotonic() - started
    (failure,) = reports[url].failures
    assert "fetch took longer than 3s in all (total timeout)" in failure
    assert "cut while waiting for the response headers [phase: headers]" in failure
    assert reports[server.url("/ok")].new == 1
    # Cut at the 3 s deadline, not after the 40+ s the headers would take.
    assert elapsed < 3 + 5


def test_the_phase_of_a_missed_deadline_is_named(server: FeedServer, tmp_path: Path) -> None:
    server.routes.update(
        {
            "/trickle-headers": trickle_headers,
            "/trickle-body": trickle_body,
            "/hop": redirect("/trickle-headers"),
        }
    )
    config = project(tmp_path, [], total_timeout="1s")
    assert fetch_error(config, server.url("/trickle-headers")).phase == "headers"
    body = fetch_error(config, server.url("/trickle-body"))
    assert body.phase == "body" and "cut while reading the body [phase: body]" in body.reason
    moved = fetch_error(config, server.url("/hop"))
    assert moved.phase == "redirect"
    assert f"following a redirect [phase: redirect] (at {server.url('/trickle-headers')})" in (
        moved.reason
    )


def test_hanging_sources_do_not_delay_the_good_ones(server: FeedServer, tmp_path: Path) -> None:
    good = [f"/good/{n}" for n in range(6)]
    bad = ["/hang/0", "/hang/1", "/trickle-body"]
    server.routes.update({path: static(feed(n)) for n, path in enumerate(good)})
    server.routes.update({"/hang/0": hang, "/hang/1": hang, "/trickle-body": trickle_body})
    # The slow ones come first in the config: sequentially they would hold up all the others.
    urls = [server.url(p) for p in bad + good]
    config = project(tmp_path, urls, total_timeout="2s", concurrency=8, per_host=8)
    finished: list[tuple[str, float]] = []
    started = time.monotonic()

    def heard(report: SourceReport) -> None:
        finished.append((report.label, time.monotonic() - started))

    database = open_database(config.database)
    reports = ingest(config, database, NOW, on_report=heard)
    elapsed = time.monotonic() - started
    # Reports still come back in config order; on_report heard them as they finished.
    assert [r.label for r in reports] == urls
    order = [label for label, _ in finished]
    assert sorted(order) == sorted(urls)
    # Every good source was stored before the first hanging one reached its deadline.
    assert set(order[: len(good)]) == {server.url(p) for p in good}
    assert all(r.new == 1 for r in reports[len(bad) :])
    for report in reports[: len(bad)]:
        assert report.status == "failed" and "total timeout" in report.failures[0]
    with database.transaction() as session:
        assert len(session.scalars(select(Article.id)).all()) == len(good)
    database.dispose()
    # The whole run ends near one total timeout, not three of them in a row.
    assert elapsed < 2 + 4


def test_a_connect_that_never_completes_is_cut_at_the_deadline_and_named(
    server: FeedServer, tmp_path: Path
) -> None:
    good = [f"/good/{n}" for n in range(4)]
    server.routes.update({path: static(feed(n)) for n, path in enumerate(good)})
    with stalled_listener() as stalled:
        url = stalled + "/feed.xml"
        # The connect timeout is longer than the total: only the hard deadline can end it.
        config = project(
            tmp_path,
            [url] + [server.url(p) for p in good],
            connect_timeout="30s",
            total_timeout="2s",
        )
        finished: list[str] = []
        started = time.monotonic()
        reports = ingest(
            config,
            open_database(config.database),
            NOW,
            on_report=lambda r: finished.append(r.label),
        )
        elapsed = time.monotonic() - started
        assert fetch_error(config, url).phase == "connect"
    (failure,) = reports[0].failures
    assert "fetch took longer than 2s in all (total timeout)" in failure
    assert "cut while connecting [phase: connect]" in failure
    # The others were fetched and stored while the connect waited, and it ended last.
    assert all(r.new == 1 for r in reports[1:])
    assert finished[-1] == url
    # Cut by the 2 s deadline, long before the 30 s connect timeout (slack: a loaded machine).
    assert elapsed < 20


def test_the_per_host_limit_counts_redirect_targets(tmp_path: Path) -> None:
    counting = Counting()
    with serve() as first, serve() as second, serve() as target:
        target.routes.update({f"/count/{n}": counting for n in range(4)})
        # Two sources on each of two hosts, all four redirected to a third host.
        for n, origin in enumerate([first, first, second, second]):
            origin.routes[f"/moved/{n}"] = redirect(target.url(f"/count/{n}"))
        urls = [first.url("/moved/0"), first.url("/moved/1")]
        urls += [second.url("/moved/2"), second.url("/moved/3")]
        config = project(tmp_path, urls, total_timeout="20s", concurrency=8, per_host=1)
        reports = ingest(config, open_database(config.database), NOW)
    assert all(r.new == 1 and not r.failed for r in reports)
    assert len(target.requests) == 4
    # One request at a time to the target's host, though the sources live on two others.
    assert counting.most == 1


class Counting:
    """A route that counts the requests it is serving at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0

    def __call__(self, handler: Handler) -> None:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            handler.server.feeds.stop.wait(0.3)
            handler.reply(feed(hash(handler.path) % 1000))
        finally:
            with self.lock:
                self.active -= 1


@pytest.mark.parametrize(("concurrency", "per_host", "most"), [(8, 2, 2), (1, 4, 1), (3, 8, 3)])
def test_at_most_per_host_and_concurrency_fetches_at_once(
    server: FeedServer, tmp_path: Path, concurrency: int, per_host: int, most: int
) -> None:
    counting = Counting()
    paths = [f"/count/{n}" for n in range(8)]
    server.routes.update(dict.fromkeys(paths, counting))
    config = project(
        tmp_path,
        [server.url(p) for p in paths],
        concurrency=concurrency,
        per_host=per_host,
    )
    reports = ingest(config, open_database(config.database), NOW)
    assert all(not r.failed for r in reports)
    assert counting.active == 0
    assert 1 <= counting.most <= most


def test_ingest_settings_for_concurrency_have_defaults(tmp_path: Path) -> None:
    default = make_project(tmp_path, world=0, sport=0, wire=0).ingest
    assert (default.concurrency, default.per_host) == (8, 2)


def test_start_up_dispatch_waits_for_a_hanging_ingest_no_longer_than_total_timeout(
    server: FeedServer,
    tmp_path: Path,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Three hanging sources one at a time: the ingest takes about 3 s; dispatch waits 1.5 s.
    monkeypatch.setattr(scheduler, "STARTUP_INGEST_SLACK", 0.5)
    server.routes.update({f"/hang/{n}": hang for n in range(3)})
    config = project(
        tmp_path,
        [server.url(f"/hang/{n}") for n in range(3)],
        total_timeout="1s",
        concurrency=1,
    )
    database = open_database(config.database)
    service = Service(config, database, signer)
    dispatched: list[float] = []
    real_dispatch = service.dispatch_due

    def dispatch_due() -> Any:
        dispatched.append(time.monotonic() - started)
        return real_dispatch()

    monkeypatch.setattr(service, "dispatch_due", dispatch_due)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="briefing.ops.scheduler"):
        service.start_up()
    assert dispatched and 1.4 < dispatched[0] < 1 + 0.5 + 1
    assert "start-up ingest still running after 1.5s" in caplog.text
    # The ingest goes on behind the dispatch and ends on its own.
    with service._ingesting:
        pass
    assert time.monotonic() - started > 2.5
    database.dispose()
