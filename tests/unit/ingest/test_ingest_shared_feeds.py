"""Every real feed file of the shared development data: ingested, or named and failed.

The files (``../shared/data/feeds``, test inputs of public feed-parser
projects) include broken ones on purpose. Each is ingested as its own source,
from disk and again over HTTP from a local server: no exception may escape,
and each file must end either with its entries stored or with a failure that
names it and gives a reason. Skipped when the shared data is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from briefing.ingest import SourceReport, ingest
from briefing.store import open_database
from tests.support.factories import NOW, make_config
from tests.support.feedserver import FeedServer, serve, static


def shared_feeds() -> Path:
    """Return the shared feed folder (may not exist)."""
    override = os.environ.get("BRIEFING_SHARED_DATA")
    root = Path(override) if override else Path(__file__).resolve().parents[4] / "shared" / "data"
    return root / "feeds"


def feed_files() -> list[Path]:
    folder = shared_feeds()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and "_licenses" not in p.parts)


@pytest.fixture(scope="module")
def files() -> list[Path]:
    found = feed_files()
    if not found:
        pytest.skip(f"shared development data not found at {shared_feeds()}")
    return found


@pytest.fixture
def server(files: list[Path]) -> Iterator[FeedServer]:
    with serve() as feeds:
        for index, path in enumerate(files):
            feeds.routes[f"/{index}/{path.name}"] = static(
                path.read_bytes(), "application/xml", etag=f'"{index}"'
            )
        yield feeds


def check(reports: list[SourceReport], names: list[str]) -> tuple[int, int]:
    """Assert each source ended ingested or failed with its name; count both."""
    assert len(reports) == len(names)
    ingested = failed = 0
    for report, name in zip(reports, names, strict=True):
        if report.failed:
            assert report.status == "failed", report
            assert all(
                f.startswith(name + ": ") and len(f) > len(name) + 5 for f in report.failures
            )
            assert not any("unexpected error" in f for f in report.failures), report.failures
            failed += 1
        else:
            assert report.status in ("new", "unchanged"), report
            ingested += 1
    return ingested, failed


def run_all(tmp_path: Path, locations: list[str]) -> list[SourceReport]:
    sections = {"feeds": {"title": "Feeds", "sources": locations}}
    briefings = {"daily": {"title": "D", "list_id": "d.example.org", "sections": ["feeds"]}}
    config = make_config(
        tmp_path,
        sections=sections,
        briefings=briefings,
        ingest={"read_timeout": "5s", "total_timeout": "10s"},
    )
    database = open_database(config.database)
    try:
        first = ingest(config, database, NOW)
        second = ingest(config, database, NOW + timedelta(hours=1))
    finally:
        database.dispose()
    assert [r.failures for r in first] == [r.failures for r in second]
    assert sum(r.new for r in second) == 0
    return first


def test_every_shared_feed_file_from_disk(tmp_path: Path, files: list[Path]) -> None:
    locations = [str(path) for path in files]
    ingested, failed = check(run_all(tmp_path, locations), locations)
    assert ingested > failed > 0


def test_every_shared_feed_file_over_http(
    tmp_path: Path, files: list[Path], server: FeedServer
) -> None:
    urls = [server.url(f"/{index}/{path.name}") for index, path in enumerate(files)]
    ingested, failed = check(run_all(tmp_path, urls), urls)
    assert ingested > failed > 0
    # The second run asked with each ETag: every readable file was a 304.
    conditional = [s for s in server.requests if "if-none-match" in s.headers]
    assert len(conditional) == ingested
