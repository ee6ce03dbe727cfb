"""Build test inputs: config files, articles, selections, projects on disk."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from briefing.audience.imports import import_subscribers
from briefing.config import Config, load_config
from briefing.domain.models import ArticleDraft, SelectedArticle
from briefing.store import Database

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
KEY = b"test-signing-key"
REPO = Path(__file__).resolve().parents[2]


def config_dict(**overrides: Any) -> dict[str, Any]:
    """Return a small valid config as a dict; top-level keys may be overridden."""
    data: dict[str, Any] = {
        "site": {
            "name": "Test Gazette",
            "base_url": "https://news.example.org/b",
            "from_address": "briefing@news.example.org",
            "postal_address": "1 Test Street, Testville",
            "unsubscribe_mailto": "unsubscribe@news.example.org",
        },
        "sections": {
            "world": {"title": "World", "sources": ["content/world/*.md"], "max_items": 3},
            "business": {
                "title": "Business",
                "sources": [{"location": "content/wire.xml", "name": "Test Wire"}],
                "max_items": 3,
            },
            "sport": {"title": "Sport", "sources": ["content/sport/*.md"], "max_items": 2},
        },
        "briefings": {
            "daily": {
                "title": "The Daily",
                "list_id": "daily.news.example.org",
                "sections": ["world", "business", "sport"],
                "send_time": "07:00",
                "timezone": "Europe/London",
                "max_items": 6,
                "deadline": "3h",
            }
        },
    }
    data.update(overrides)
    return data


def write_config(folder: Path, data: dict[str, Any] | None = None) -> Path:
    """Write config.yaml into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data or config_dict(), sort_keys=False), encoding="utf-8")
    return path


def make_config(folder: Path, **overrides: Any) -> Config:
    """Write and load a config in ``folder``."""
    return load_config(write_config(folder, config_dict(**overrides)))


def markdown_article(
    folder: Path,
    name: str,
    *,
    title: str,
    body: str = "A first sentence of the story. A second sentence with more detail.",
    **meta: Any,
) -> Path:
    """Write a Markdown article with front matter."""
    folder.mkdir(parents=True, exist_ok=True)
    front = yaml.safe_dump({"title": title, **meta}, sort_keys=False, allow_unicode=True)
    path = folder / name
    path.write_text(f"---\n{front}---\n{body}\n", encoding="utf-8")
    return path


def rss_feed(items: list[dict[str, str]], *, title: str = "Test Wire") -> str:
    """Return an RSS 2.0 document with the given items."""
    entries = []
    for item in items:
        parts = [f"<{k}>{v}</{k}>" for k, v in item.items()]
        entries.append("<item>" + "".join(parts) + "</item>")
    return textwrap.dedent(
        f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <rss version="2.0"><channel><title>{title}</title>
        <link>https://wire.example.net/</link><description>test</description>
        {"".join(entries)}
        </channel></rss>
        """
    )


# Invented stories on unrelated subjects, so that no two of a project are
# folded together as coverage of one story: (headline, first sentence).
WORLD_STORIES = (
    (
        "Port Elwyn approves harbour expansion",
        "The harbour authority voted for four deep-water berths.",
    ),
    (
        "Snowstorm closes Valdoria mountain passes",
        "Heavy snow stranded lorries and cut power to villages.",
    ),
    (
        "Norland election goes to a recount",
        "Ballots in three districts will be counted again by hand.",
    ),
    (
        "Castellane museum reopens after fire",
        "Curators rehung two hundred paintings saved from the smoke.",
    ),
    (
        "Ostmark rail workers begin strike",
        "Commuter trains stopped as drivers walked out over pay.",
    ),
    (
        "Drought empties Serra valley reservoirs",
        "Farmers were told to stop irrigating their orchards.",
    ),
)
SPORT_STORIES = (
    ("Harriers sign a new goalkeeper", "The club paid a record fee for the young keeper."),
    (
        "Rowing crew sets a river course record",
        "The eight crossed the line in under seventeen minutes.",
    ),
    ("Chess champion retains her title", "She won the final game with a bold knight sacrifice."),
    ("Cyclists face a mountain stage", "Riders climb four passes before the summit finish."),
)
WIRE_STORIES = (
    ("Copper price reaches a two-year high", "Mining shares rose as smelters reported shortages."),
    ("Insurer reports record storm claims", "Payouts for flood damage doubled over the quarter."),
    (
        "Brewery group buys a cider maker",
        "The deal adds orchards and a bottling plant in the west.",
    ),
    ("Pension fund sells its coal holdings", "Trustees said the shares no longer met their rules."),
    (
        "Airline orders forty regional jets",
        "Deliveries of the turboprop replacements begin next spring.",
    ),
)


def story(stories: tuple[tuple[str, str], ...], index: int) -> tuple[str, str]:
    """Return the ``index``-th invented story, numbered once the list runs out."""
    title, sentence = stories[index % len(stories)]
    if index >= len(stories):
        title = f"{title} ({index})"
    return title, sentence


def make_project(
    folder: Path, *, world: int = 3, sport: int = 2, wire: int = 3, **overrides: Any
) -> Config:
    """Write a config with ``world`` + ``sport`` Markdown articles and a ``wire``-item feed."""
    for index in range(world):
        title, sentence = story(WORLD_STORIES, index)
        markdown_article(
            folder / "content" / "world",
            f"w{index}.md",
            title=title,
            url=f"https://news.example.org/world/{index}",
            published=(NOW - timedelta(hours=index + 1)).isoformat(),
            body=f"{sentence} It continues with a detail. It ends with a quote.",
        )
    for index in range(sport):
        title, sentence = story(SPORT_STORIES, index)
        markdown_article(
            folder / "content" / "sport",
            f"s{index}.md",
            title=title,
            url=f"https://news.example.org/sport/{index}",
            published=(NOW - timedelta(hours=index + 2)).isoformat(),
            body=f"{sentence} A second sentence with more detail.",
        )
    items = [
        {
            "title": story(WIRE_STORIES, index)[0],
            "link": f"https://wire.example.net/{index}?utm_source=rss",
            "guid": f"wire-{index}",
            "pubDate": (NOW - timedelta(hours=index + 1)).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "description": f"{story(WIRE_STORIES, index)[1]} Markets noticed it.",
        }
        for index in range(wire)
    ]
    (folder / "content").mkdir(parents=True, exist_ok=True)
    (folder / "content" / "wire.xml").write_text(rss_feed(items), encoding="utf-8")
    return make_config(folder, **overrides)


def make_draft(**overrides: Any) -> ArticleDraft:
    """Return an ArticleDraft with sensible defaults."""
    values: dict[str, Any] = {
        "uid": "url:https://news.example.org/a",
        "url": "https://news.example.org/a",
        "title": "A headline",
        "body_text": "A body. With two sentences.",
        "published_at": NOW - timedelta(hours=1),
        "sections": ("world",),
    }
    values.update(overrides)
    return ArticleDraft(**values)


def make_selected(id: int, section: str = "world", **overrides: Any) -> SelectedArticle:
    """Return a SelectedArticle with sensible defaults."""
    values: dict[str, Any] = {
        "id": id,
        "section": section,
        "title": f"Story {id}",
        "url": f"https://news.example.org/{id}",
        "dek": None,
        "body_text": f"Story {id} body. It has two sentences.",
        "image_url": None,
        "image_alt": None,
        "image_credit": None,
        "published_at": NOW - timedelta(hours=id),
        "first_seen_at": NOW - timedelta(minutes=30),
    }
    values.update(overrides)
    return SelectedArticle(**values)


SUBSCRIBER_COLUMNS = "email,name,briefing,sections,timezone,send_time,frequency"


def subscribe(config: Config, database: Database, rows: list[str], now: datetime) -> None:
    """Import subscriber CSV rows (without the header) as if imported at ``now``."""
    path = config.base_dir / f"subscribers-{uuid.uuid4().hex[:8]}.csv"
    path.write_text("\n".join([SUBSCRIBER_COLUMNS, *rows]) + "\n", encoding="utf-8")
    report = import_subscribers(config, database, path, now)
    assert not report.errors, report.errors
