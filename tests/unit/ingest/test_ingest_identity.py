"""One story, one row: updates in place, moved sections and URLs, stories in two sources."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from briefing.config import Config
from briefing.ingest import SourceReport, ingest
from briefing.store import open_database
from briefing.store.schema import Article
from tests.support.factories import NOW, make_project, markdown_article, rss_feed

BRIEFINGS = {"daily": {"title": "D", "list_id": "d.example.org", "sections": ["world"]}}


def two_feeds(tmp_path: Path, **world_source: Any) -> Config:
    sections = {
        "world": {"title": "World", "sources": [{"location": "feeds/world.xml", **world_source}]},
        "politics": {"title": "Politics", "sources": ["feeds/politics.xml"]},
        "technology": {"title": "Technology"},
    }
    (tmp_path / "feeds").mkdir(parents=True, exist_ok=True)
    return make_project(tmp_path, world=0, sport=0, wire=0, sections=sections, briefings=BRIEFINGS)


def write(config: Config, name: str, items: list[dict[str, str]]) -> None:
    (config.base_dir / "feeds" / name).write_text(rss_feed(items), encoding="utf-8")


def run(config: Config, hours: int = 0) -> dict[str, SourceReport]:
    database = open_database(config.database)
    try:
        return {r.label: r for r in ingest(config, database, NOW + timedelta(hours=hours))}
    finally:
        database.dispose()


def articles(config: Config) -> list[tuple[str, str | None, list[str], Any]]:
    database = open_database(config.database)
    with database.transaction() as session:
        rows = [
            (a.title, a.url, sorted(s.section for s in a.sections), a.first_seen_at)
            for a in session.scalars(select(Article).order_by(Article.id))
        ]
    database.dispose()
    return rows


def test_markdown_story_moved_to_another_section_keeps_its_identity(tmp_path: Path) -> None:
    config = make_project(tmp_path, world=0, sport=0, wire=0)
    folder = tmp_path / "content" / "world"
    markdown_article(folder, "m.md", title="Mover", url="https://n.example/m", section="world")
    run(config)
    markdown_article(folder, "m.md", title="Mover", url="https://n.example/m", section="sport")
    report = run(config, hours=1)["content/world/*.md"]
    assert report.updated == 1
    assert articles(config) == [("Mover", "https://n.example/m", ["sport"], NOW)]


def test_feed_story_moved_to_a_new_url_under_its_guid_is_updated_in_place(tmp_path: Path) -> None:
    config = two_feeds(tmp_path)
    guid = "tag:news.example,2026:story-7"
    write(
        config, "world.xml", [{"title": "Story", "link": "https://n.example/world/7", "guid": guid}]
    )
    write(config, "politics.xml", [])
    run(config)
    write(
        config,
        "world.xml",
        [{"title": "Story", "link": "https://n.example/politics/7", "guid": guid}],
    )
    assert run(config, hours=1)["feeds/world.xml"].updated == 1
    assert articles(config) == [("Story", "https://n.example/politics/7", ["world"], NOW)]


def test_feed_category_change_moves_the_story_between_sections(tmp_path: Path) -> None:
    config = two_feeds(tmp_path, categories={"Tech": "technology"})
    item = {"title": "Chips", "link": "https://n.example/chips", "category": "Tech"}
    write(config, "world.xml", [item])
    write(config, "politics.xml", [])
    run(config)
    assert articles(config)[0][2] == ["technology", "world"]
    write(config, "world.xml", [{**item, "category": "Other"}])
    run(config, hours=1)
    assert articles(config) == [("Chips", "https://n.example/chips", ["world"], NOW)]


def test_a_story_in_two_sources_is_one_row_and_never_flip_flops(tmp_path: Path) -> None:
    config = two_feeds(tmp_path)
    guid = "https://n.example/p/99"
    write(
        config,
        "world.xml",
        [
            {
                "title": "Summit",
                "link": "https://n.example/world/summit",
                "guid": guid,
                "description": "World desk text.",
            }
        ],
    )
    write(
        config,
        "politics.xml",
        [
            {
                "title": "Summit",
                "link": "https://n.example/politics/summit",
                "guid": guid,
                "description": "Politics desk text.",
            }
        ],
    )
    first = run(config)
    assert (first["feeds/world.xml"].new, first["feeds/politics.xml"].updated) == (1, 1)
    for hours in (1, 2):
        again = run(config, hours)
        assert [r.status for r in again.values()] == ["unchanged", "unchanged"]
    ((_, url, sections, _),) = articles(config)
    assert (url, sections) == ("https://n.example/world/summit", ["politics", "world"])


def test_bare_guids_only_match_within_their_own_source(tmp_path: Path) -> None:
    config = two_feeds(tmp_path)
    write(config, "world.xml", [{"title": "World one", "link": "https://w.example/1", "guid": "1"}])
    write(
        config,
        "politics.xml",
        [{"title": "Politics one", "link": "https://p.example/1", "guid": "1"}],
    )
    run(config)
    again = run(config, hours=1)
    assert all(report.status == "unchanged" for report in again.values())
    assert [row[0] for row in articles(config)] == ["World one", "Politics one"]
