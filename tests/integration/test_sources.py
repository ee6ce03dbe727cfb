"""Source health: a failing source is flagged by ingest and shown by `briefing sources`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from briefing.cli import cli
from tests.integration.test_ingest_http import WIRE, project, run
from tests.support.feedserver import FeedServer, serve, static


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as feeds:
        yield feeds


def test_failing_source_is_flagged_and_shown_by_sources(server: FeedServer, tmp_path: Path) -> None:
    server.routes["/ok"] = static(WIRE, etag='"ok"')
    good, bad = server.url("/ok"), server.url("/missing")
    config = project(tmp_path, [good, bad])
    first = run(config)
    assert first[bad].consecutive_failures == 1 and not first[bad].flagged
    second = run(config, hours=1)
    assert second[bad].consecutive_failures == 2 and second[bad].flagged
    assert not second[good].flagged

    runner = CliRunner()
    config_path = str(config.base_dir / "config.yaml")
    shown = runner.invoke(cli, ["--config", config_path, "sources", "--json"])
    assert shown.exit_code == 0, shown.output
    health = {item["location"]: item for item in map(json.loads, shown.output.splitlines())}
    assert health[good]["kind"] == "http" and health[good]["etag"] is True
    assert health[good]["items_seen"] == 3 and health[good]["consecutive_failures"] == 0
    assert health[good]["last_success_at"].startswith("2026-11-26T07:00")
    assert health[bad]["flagged"] is True and health[bad]["last_success_at"] is None
    assert "HTTP 404 Not Found" in health[bad]["last_error"]
    table = runner.invoke(cli, ["--config", config_path, "sources"])
    assert "FLAGGED: failing 2 runs in a row (threshold 2)" in table.output
    assert "2 sources: 1 failing on the last run, 1 flagged" in table.output

    ingested = runner.invoke(cli, ["--config", config_path, "ingest"])
    assert ingested.exit_code == 1
    assert f"unchanged {good}" in ingested.output
    assert "not modified since the last run (HTTP 304)" in ingested.output
    assert "FLAGGED: failing 3 runs in a row (ingest.flag_after_failures is 2)" in ingested.output


def test_a_source_whose_stories_another_stored_first_still_counts_them(
    server: FeedServer, tmp_path: Path
) -> None:
    server.routes["/first"] = static(WIRE)
    server.routes["/mirror"] = static(WIRE)
    first, mirror = server.url("/first"), server.url("/mirror")
    config = project(tmp_path, [first, mirror])
    reports = run(config)
    # Fetched at once, either may be stored first; the other finds every story already there.
    assert sorted([reports[first].new, reports[mirror].new]) == [0, 3]
    shown = CliRunner().invoke(
        cli, ["--config", str(config.base_dir / "config.yaml"), "sources", "--json"]
    )
    health = {item["location"]: item for item in map(json.loads, shown.output.splitlines())}
    assert health[first]["items_seen"] == 3
    assert health[mirror]["items_seen"] == 3
