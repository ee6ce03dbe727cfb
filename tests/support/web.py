"""Run the web app on a real uvicorn server on 127.0.0.1 and read links out of real messages."""

from __future__ import annotations

import mailbox
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httpx
import uvicorn
from sqlalchemy import select

from briefing.audience.imports import import_subscribers
from briefing.config import Config
from briefing.deliver import OutboxTransport, deliver
from briefing.domain.states import OPEN
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database
from briefing.store.messages import transactional_rows
from briefing.store.schema import Subscriber, Subscription
from briefing.web import create_app
from briefing.web.server import bind
from tests.support.factories import KEY, NOW

AT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
SUBSCRIBERS = (
    "email,name,briefing,sections,timezone,send_time,frequency\n"
    "ann@example.com,Ann,daily,world,Europe/London,07:00,daily\n"
    "bob@example.com,Bob,daily,world;sport,Europe/London,07:00,daily\n"
    "cy@example.com,,daily,business,Europe/London,07:00,daily\n"
)


@dataclass
class Clock:
    """A clock the tests move by hand."""

    now: datetime = AT + timedelta(minutes=5)

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def live_server(app: object) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 (a free port) in a thread; yield its origin."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def outbox(config: Config) -> list[bytes]:
    """Return every message in the outbox, oldest key first."""
    if not (config.outbox_path / "cur").is_dir():
        return []  # nothing sent yet (and never race the transport creating the Maildir)
    box = mailbox.Maildir(str(config.outbox_path), create=False)
    return [box.get_bytes(key) for key in sorted(box.keys())]


def parse(raw: bytes) -> EmailMessage:
    """Parse a message with the modern policy."""
    return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))


def messages_to(config: Config, address: str) -> list[bytes]:
    """Return every message in the outbox addressed to ``address``."""
    return [raw for raw in outbox(config) if address in str(parse(raw)["To"])]


def wait_for_mail(config: Config, address: str, count: int = 1, within: float = 10.0) -> None:
    """Wait until ``count`` messages to ``address`` are in the outbox (a drain sends them)."""
    deadline = time.monotonic() + within
    while len(messages_to(config, address)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for_drain(database: Database, within: float = 10.0) -> None:
    """Wait until no transactional mail (confirmations) is waiting on the ledger."""
    deadline = time.monotonic() + within
    while True:
        with database.transaction() as session:
            waiting = [row for row in transactional_rows(session) if row[2] in OPEN]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"transactional mail not drained: {waiting}"
        time.sleep(0.05)


def message_to(config: Config, address: str) -> bytes:
    """Return the only message in the outbox addressed to ``address`` (waiting for a drain)."""
    wait_for_mail(config, address)
    found = messages_to(config, address)
    assert len(found) == 1, f"{len(found)} messages to {address}"
    return found[0]


def links_in(raw: bytes) -> dict[str, str]:
    """Return a message's links by route: u from List-Unsubscribe, p, e and c from the text."""
    message = parse(raw)
    links: dict[str, str] = {}
    if message["List-Unsubscribe"]:
        links["u"] = re.findall(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))[0]
    text = cast(str, message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    for route in ("p", "e", "c"):
        match = re.search(rf"https?://\S+/{route}/[A-Za-z0-9_-]{{32}}", text)
        if match:
            links[route] = match.group(0)
    return links


def path_of(url: str) -> str:
    """Return the path of a URL (the public host is not this server)."""
    return urlsplit(url).path


def subscription_of(database: Database, email: str, briefing: str = "daily") -> Subscription:
    """Load one subscription by address."""
    with database.transaction() as session:
        found = session.scalar(
            select(Subscription)
            .join(Subscriber)
            .where(Subscriber.email == email, Subscription.briefing == briefing)
        )
        assert found is not None
        return found


@dataclass
class Site:
    """A project whose editions were sent to the outbox, served by a live web app."""

    config: Config
    database: Database
    signer: Signer
    clock: Clock
    origin: str
    client: httpx.Client
    keys: list[bytes] = field(default_factory=lambda: [KEY])

    def url(self, link: str) -> str:
        """Return a message link's path on the local server."""
        return self.origin + path_of(link)


def send_editions(config: Config, database: Database, signer: Signer, at: datetime = AT) -> None:
    """Ingest, import the three test subscribers, dispatch at ``at`` and deliver to the outbox."""
    ingest(config, database, NOW - timedelta(hours=1))
    path = config.base_dir / "subs.csv"
    path.write_text(SUBSCRIBERS)
    import_subscribers(config, database, path, datetime(2026, 11, 26, tzinfo=UTC))
    dispatch(config, database, signer, at)
    deliver(config, database, signer, OutboxTransport(config.outbox_path), clock=lambda: at)


@contextmanager
def serve_site(
    config: Config, database: Database, keys: list[bytes], clock: Clock | None = None
) -> Iterator[Site]:
    """Serve ``config``'s endpoints with ``keys``; yield the site with an httpx client."""
    clock = clock or Clock()
    app = create_app(config, database, keys, clock=clock)
    with live_server(app) as origin, httpx.Client(base_url=origin, timeout=10) as client:
        yield Site(config, database, Signer(keys), clock, origin, client, keys)


def form_token(html: str) -> str:
    """Return the form token from a page."""
    match = re.search(r'name="form_token" value="([^"]+)"', html)
    assert match, "the page has no form token"
    return match.group(1)


def write_file(path: Path, text: str) -> Path:
    """Write a text file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


def outbox_files(folder: Path) -> list[str]:
    """Return the names of the messages in a project's Maildir outbox (``var/outbox/new``)."""
    return sorted(path.name for path in (folder / "var" / "outbox" / "new").iterdir())
