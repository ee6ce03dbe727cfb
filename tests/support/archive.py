"""Build an archive to look at: a project whose daily issue went out to readers of two variants."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.deliver import OutboxTransport, deliver
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database, open_database
from tests.support.factories import KEY, NOW, config_dict, make_project

AT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
DAY = AT.date()
# Ann reads the default sections, Bob only World: two variants of one issue.
READERS = {"ann.archive@example.com": "Ann Archivist", "bob.bystander@example.com": "Bob Bystander"}
SUBSCRIBERS = (
    "email,name,briefing,sections,timezone,send_time,frequency\n"
    "ann.archive@example.com,Ann Archivist,daily,,Europe/London,07:00,daily\n"
    "bob.bystander@example.com,Bob Bystander,daily,world,Europe/London,07:00,daily\n"
)
SCRIPTED_TITLE = "Wire desk tests its scripts"


def archive_project(folder: Path, *, public: bool, **overrides: Any) -> Config:
    """Write a project whose daily briefing has ``public_archive: public``.

    The wire feed carries an item whose HTML holds a script and an event
    handler, as a hostile or broken feed would.
    """
    briefings = config_dict()["briefings"]
    briefings["daily"]["public_archive"] = public
    config = make_project(folder, briefings=briefings, **overrides)
    hostile = (
        "<p>Markets moved.</p><script>document.title='pwned-by-feed'</script>"
        "<img src=x onerror=\"document.title='pwned-by-handler'\">"
    )
    wire = folder / "content" / "wire.xml"
    item = (
        f"<item><title>{SCRIPTED_TITLE}</title><link>https://wire.example.net/scripted</link>"
        "<guid>wire-scripted</guid>"
        f"<pubDate>{(NOW - timedelta(minutes=30)):%a, %d %b %Y %H:%M:%S +0000}</pubDate>"
        f"<description>{html.escape(hostile)}</description></item>"
    )
    wire.write_text(wire.read_text(encoding="utf-8").replace("</channel>", item + "</channel>"))
    return config


def send_issue(config: Config, database: Database, at: datetime = AT) -> None:
    """Ingest, import the two readers, dispatch at ``at`` and deliver to the outbox."""
    signer = Signer([KEY])
    ingest(config, database, NOW - timedelta(hours=1))
    path = config.base_dir / "archive-readers.csv"
    path.write_text(SUBSCRIBERS, encoding="utf-8")
    import_subscribers(config, database, path, at - timedelta(hours=1))
    dispatch(config, database, signer, at)
    deliver(config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: at)


def sent_archive(folder: Path, *, public: bool = True) -> tuple[Config, Database]:
    """Return a project and its database after the daily issue of :data:`DAY` went out."""
    config = archive_project(folder, public=public)
    database = open_database(config.database)
    send_issue(config, database)
    return config, database
