"""Run the returned-mail receiver in a thread, and send a first edition whose mail can come back."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from briefing.audience.inbound import Receiver, run_receiver
from briefing.config import Config
from briefing.deliver import deliver, make_transport
from briefing.domain.tokens import Signer
from briefing.editions.dispatch import dispatch
from briefing.ingest import ingest
from briefing.store import Database, open_database
from tests.support.delivery import AT, delivery_settings, reader, subscribe
from tests.support.factories import KEY, NOW, make_project
from tests.support.smtp_server import Received, smtp_server

SIGNER = Signer([KEY])
BOUNCE_DOMAIN = "news.example.org"


@contextmanager
def receiver(config: Config, database: Database, **settings: Any) -> Iterator[Receiver]:
    """Run ``briefing inbound``'s receiver on 127.0.0.1, a free port, for the ``with`` block."""
    stop = threading.Event()
    ready: queue.Queue[Receiver | BaseException] = queue.Queue()
    chosen = config.inbound.model_copy(update={"host": "127.0.0.1", "port": 0, **settings})

    def run() -> None:
        try:
            run_receiver(config, database, SIGNER, stop, settings=chosen, on_ready=ready.put)
        except BaseException as exc:
            ready.put(exc)

    thread = threading.Thread(target=run, name="inbound", daemon=True)
    thread.start()
    started = ready.get(timeout=10)
    if isinstance(started, BaseException):
        raise started
    try:
        yield started
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the receiver did not stop"


@dataclass
class SentEdition:
    """A project whose first edition went out over SMTP: what each reader received."""

    config: Config
    database: Database
    received: dict[str, Received]

    def token(self, address: str) -> str:
        """Return the delivery token in the bounce address ``address``'s copy was sent from."""
        sender = self.received[address].sender
        return sender.removeprefix("bounces+").removesuffix(f"@{BOUNCE_DOMAIN}")

    def bounce_address(self, address: str) -> str:
        """Return the envelope sender ``address``'s copy was sent from."""
        return self.received[address].sender


def send_first_edition(folder: Path, count: int, **overrides: Any) -> SentEdition:
    """Write a project with a bounce domain, subscribe ``count`` readers, send them an edition."""
    with smtp_server() as server:
        config = make_project(
            folder,
            delivery=delivery_settings(server),
            bounces={"domain": BOUNCE_DOMAIN, **overrides.pop("bounces", {})},
            **overrides,
        )
        database = open_database(config.database)
        ingest(config, database, NOW - timedelta(hours=1))
        subscribe(config, database, [reader(n) for n in range(count)])
        dispatch(config, database, SIGNER, AT)
        transport = make_transport(config)
        try:
            deliver(config, database, SIGNER, transport, clock=lambda: AT)
        finally:
            transport.close()
        received = {message.recipient: message for message in server.handler.received}
    assert set(received) == {reader(n) for n in range(count)}
    return SentEdition(config, database, received)
