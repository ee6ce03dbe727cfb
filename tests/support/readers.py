"""A project with two briefings served live, and the readers' mail read from its outbox."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from briefing.config import Config
from briefing.domain.tokens import Signer
from briefing.store import open_database
from tests.support.factories import KEY, config_dict, make_project
from tests.support.web import Site, messages_to, parse, send_editions, serve_site

PRIVACY = "https://news.example.org/privacy"
WEEKLY = {
    "title": "The Weekly",
    "list_id": "weekly.news.example.org",
    "sections": ["world", "business"],
    "send_time": "18:00",
    "timezone": "Europe/London",
    "frequency": "weekly:fri",
    "max_items": 6,
    "deadline": "3h",
}


def reader_project(folder: Path, **web: Any) -> Config:
    """Return a project with The Daily and The Weekly and a privacy notice."""
    briefings = {**config_dict()["briefings"], "weekly": WEEKLY}
    return make_project(folder, briefings=briefings, web={"privacy_url": PRIVACY, **web})


@contextmanager
def reader_site(folder: Path, **web: Any) -> Iterator[Site]:
    """Serve a reader project whose three test subscribers got The Daily."""
    config = reader_project(folder, **web)
    database = open_database(config.database)
    try:
        send_editions(config, database, Signer([KEY]))
        with serve_site(config, database, [KEY]) as site:
            yield site
    finally:
        database.dispose()


def mail_with(config: Config, address: str, subject: str, count: int = 1) -> bytes:
    """Wait for the ``count``-th message to ``address`` whose subject holds ``subject``."""
    deadline = time.monotonic() + 10
    while True:
        found = [
            raw for raw in messages_to(config, address) if subject in str(parse(raw)["Subject"])
        ]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) == count, f"{len(found)} messages to {address} about {subject!r}"
    return found[-1]


def link_in(raw: bytes, route: str) -> str:
    """Return the one ``/<route>/<token>`` link of a message's plain-text part."""
    text = cast(str, parse(raw).get_body(("plain",)).get_content())  # type: ignore[union-attr]
    links = set(re.findall(rf"https?://\S+/{route}/[A-Za-z0-9_-]{{32}}", text))
    assert len(links) == 1, links
    return links.pop()
