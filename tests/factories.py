"""Build test inputs: config files, articles, selections, projects on disk."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from briefing.config import Config, load_config
from briefing.models import ArticleDraft, SelectedArticle
from briefing.store import Database
from briefing.subscribers import import_subscribers

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
KEY = b"test-signing-key"
REPO = Path(__file__).resolve().parent.parent


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


def make_project(
    folder: Path, *, world: int = 3, sport: int = 2, wire: int = 3, **overrides: Any
) -> Config:
    """Write a config with ``world`` + ``sport`` Markdown articles and a ``wire``-item feed."""
    for index in range(world):
        markdown_article(
            folder / "content" / "world",
            f"w{index}.md",
            title=f"World story {index}",
            url=f"https://news.example.org/world/{index}",
            published=(NOW - timedelta(hours=index + 1)).isoformat(),
            body=f"World story {index} begins here. It continues with a detail. It ends with a quote.",
        )
    for index in range(sport):
        markdown_article(
            folder / "content" / "sport",
            f"s{index}.md",
            title=f"Sport story {index}",
            url=f"https://news.example.org/sport/{index}",
            published=(NOW - timedelta(hours=index + 2)).isoformat(),
        )
    items = [
        {
            "title": f"Wire story {index}",
            "link": f"https://wire.example.net/{index}?utm_source=rss",
            "guid": f"wire-{index}",
            "pubDate": (NOW - timedelta(hours=index + 1)).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "description": f"Wire story {index} happened today. Markets noticed it.",
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
