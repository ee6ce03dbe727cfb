"""Ingest: Markdown and feeds read, cleaned, deduplicated; bad sources named, others go on."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from briefing.config import Config
from briefing.ingest import ingest
from briefing.ingest.clean import canonical_url, html_to_text, sanitise_html
from briefing.store import Database
from briefing.store.schema import Article, Source
from tests.support.factories import NOW, make_project, markdown_article, rss_feed


def stored(database: Database) -> dict[str, Article]:
    with database.transaction() as session:
        return {a.title: a for a in session.scalars(select(Article))}


def test_first_ingest_reports_new_then_unchanged(project: Config, database: Database) -> None:
    reports = {r.label: r for r in ingest(project, database, NOW)}
    assert reports["content/world/*.md"].new == 3
    assert reports["Test Wire"].new == 3
    assert all(r.status == "new" for r in reports.values())
    again = {r.label: r for r in ingest(project, database, NOW + timedelta(hours=1))}
    assert all(r.status == "unchanged" for r in again.values())
    assert again["content/world/*.md"].unchanged == 3


def test_updated_article_keeps_first_seen(project: Config, database: Database) -> None:
    ingest(project, database, NOW)
    markdown_article(
        project.base_dir / "content" / "world",
        "w0.md",
        title="World story 0",
        url="https://news.example.org/world/0",
        body="A corrected body.",
    )
    reports = {r.label: r for r in ingest(project, database, NOW + timedelta(hours=2))}
    assert reports["content/world/*.md"].updated == 1
    article = stored(database)["World story 0"]
    assert article.first_seen_at == NOW
    assert article.updated_at == NOW + timedelta(hours=2)
    assert article.body_text == "A corrected body."


def test_tracking_parameters_do_not_make_duplicates(tmp_path: Path) -> None:
    config = make_project(tmp_path, world=0, sport=0, wire=0)
    feed = config.base_dir / "content" / "wire.xml"
    item = {
        "title": "Same story",
        "link": "https://Wire.Example.net/s?utm_source=a&amp;id=3#top",
        "description": "Body.",
    }
    feed.write_text(rss_feed([item]))
    database = __import__("briefing.store", fromlist=["open_database"]).open_database(
        config.database
    )
    ingest(config, database, NOW)
    item["link"] = "https://wire.example.net/s?id=3&amp;utm_medium=b&amp;fbclid=x"
    feed.write_text(rss_feed([item]))
    (report,) = [r for r in ingest(config, database, NOW) if r.label == "Test Wire"]
    assert report.unchanged == 1 and report.new == 0
    (article,) = stored(database).values()
    assert article.url == "https://wire.example.net/s?id=3"


def test_same_guid_new_url_updates_in_place(tmp_path: Path) -> None:
    config = make_project(tmp_path, world=0, sport=0, wire=0)
    feed = config.base_dir / "content" / "wire.xml"
    feed.write_text(rss_feed([{"title": "Old slug", "link": "https://w.example/a", "guid": "g1"}]))
    from briefing.store import open_database

    database = open_database(config.database)
    ingest(config, database, NOW)
    feed.write_text(rss_feed([{"title": "New slug", "link": "https://w.example/b", "guid": "g1"}]))
    ingest(config, database, NOW + timedelta(hours=1))
    articles = stored(database)
    assert list(articles) == ["New slug"]
    assert articles["New slug"].first_seen_at == NOW


def test_bad_sources_are_named_and_others_go_on(tmp_path: Path) -> None:
    config = make_project(tmp_path, sport=0)
    (config.base_dir / "content" / "wire.xml").write_text(
        "<html><body>Document moved</body></html>"
    )
    (config.base_dir / "content" / "world" / "broken.md").write_text(
        "---\ntitle: [unclosed\n---\nx"
    )
    (config.base_dir / "content" / "world" / "typo.md").write_text("---\ntitel: X\n---\nbody")
    from briefing.store import open_database

    reports = {r.label: r for r in ingest(config, open_database(config.database), NOW)}
    world = reports["content/world/*.md"]
    assert world.new == 3
    assert any("broken.md: front matter is not valid YAML" in f for f in world.failures)
    assert any("typo.md: unknown front-matter key 'titel'" in f for f in world.failures)
    wire = reports["Test Wire"]
    assert wire.status == "failed"
    assert "content/wire.xml" in wire.failures[0]
    sport = reports["content/sport/*.md"]
    assert sport.failures == ["content/sport/*.md: no file matches"]


def test_source_health_is_recorded(tmp_path: Path) -> None:
    config = make_project(tmp_path, sport=0)
    (config.base_dir / "content" / "wire.xml").write_text("")
    from briefing.store import open_database

    database = open_database(config.database)
    ingest(config, database, NOW)
    ingest(config, database, NOW + timedelta(minutes=15))
    with database.transaction() as session:
        wire = session.scalar(select(Source).where(Source.key == "content/wire.xml"))
        world = session.scalar(select(Source).where(Source.key == "content/world/*.md"))
        assert wire.consecutive_failures == 2 and wire.last_success_at is None
        assert "empty document" in (wire.last_error or "")
        assert world.consecutive_failures == 0 and world.items_seen == 3


def test_html_is_sanitised_and_text_kept() -> None:
    dirty = (
        '<p onclick="x()">Hello <b>there</b><script>alert(1)</script></p>'
        '<a href="javascript:alert(1)">bad</a><a href="/rel">rel</a><img src="x.jpg" onerror="y">'
    )
    clean = sanitise_html(dirty, base_url="https://news.example.org/a/b")
    for forbidden in ("script", "onclick", "onerror", "javascript:"):
        assert forbidden not in clean
    assert 'href="https://news.example.org/rel"' in clean
    assert html_to_text("<p>One &amp; two</p><p>Three</p>") == "One & two\nThree"


def test_canonical_url() -> None:
    assert canonical_url("HTTPS://News.Example.org:443/a?utm_campaign=x&b=1#frag") == (
        "https://news.example.org/a?b=1"
    )
    assert canonical_url("javascript:alert(1)") is None
    assert canonical_url("/relative", "https://x.example/") == "https://x.example/relative"


def test_atom_and_json_feeds(tmp_path: Path) -> None:
    atom = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id><updated>2026-11-26T05:00:00Z</updated>
<entry><title>Atom story</title><id>urn:a:1</id><link href="https://a.example/1"/>
<updated>2026-11-26T05:00:00Z</updated><content type="html">&lt;p&gt;Atom body.&lt;/p&gt;</content>
<summary>Atom dek.</summary></entry></feed>"""
    jsonfeed = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "items": [
                {
                    "id": "j1",
                    "url": "https://j.example/1",
                    "title": "JSON story",
                    "content_html": "<p>JSON body.</p>",
                    "date_published": "2026-11-26T04:00:00Z",
                }
            ],
        }
    )
    config = make_project(
        tmp_path,
        world=0,
        sport=0,
        wire=0,
        sections={
            "world": {"title": "World", "sources": ["feeds/a.atom", "feeds/j.json"]},
        },
        briefings={"daily": {"title": "D", "list_id": "d.example.org", "sections": ["world"]}},
    )
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "a.atom").write_text(atom)
    (tmp_path / "feeds" / "j.json").write_text(jsonfeed)
    from briefing.store import open_database

    reports = ingest(config, open_database(config.database), NOW)
    assert [r.status for r in reports] == ["new", "new"]
    articles = stored(open_database(config.database))
    assert articles["Atom story"].dek == "Atom dek."
    assert articles["Atom story"].body_text == "Atom body."
    assert articles["JSON story"].published_at.isoformat() == "2026-11-26T04:00:00+00:00"


def test_markdown_front_matter_fields(tmp_path: Path) -> None:
    config = make_project(tmp_path, world=0, sport=0, wire=0)
    markdown_article(
        tmp_path / "content" / "world",
        "full.md",
        title="Full <b>story</b>",
        published="2026-11-26T05:00:00+01:00",
        url="https://news.example.org/full?utm_source=x",
        dek="Its own dek.",
        image="https://img.example/x.jpg",
        image_credit="Photo: Someone",
        tags=["a", "b"],
        section="sport",
        body="**Bold** text.\n\nSecond paragraph.",
    )
    from briefing.store import open_database

    ingest(config, open_database(config.database), NOW)
    article = stored(open_database(config.database))["Full <b>story</b>"]
    assert [s.section for s in article.sections] == ["sport"]
    assert article.url == "https://news.example.org/full"
    assert article.published_at.isoformat() == "2026-11-26T04:00:00+00:00"
    assert article.body_text == "Bold text.\nSecond paragraph."
    assert article.image_credit == "Photo: Someone" and article.image_alt is None
    assert article.tags == ["a", "b"]


def test_ingest_cli_exit_status(tmp_path: Path) -> None:
    config = make_project(tmp_path)
    run = [
        sys.executable,
        "-m",
        "briefing",
        "--config",
        str(config.base_dir / "config.yaml"),
        "ingest",
    ]
    ok = subprocess.run(run, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "new       content/world/*.md" in ok.stdout
    (tmp_path / "content" / "wire.xml").write_bytes(b"\x00\xff not xml")
    failed = subprocess.run(run, capture_output=True, text=True)
    assert failed.returncode == 1
    assert "failed    Test Wire" in failed.stdout
    assert "unchanged content/world/*.md" in failed.stdout
