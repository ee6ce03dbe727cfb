"""Hand composed messages to where they go: a Maildir outbox now, SMTP later.

Transports share one small Protocol (rss2email picks smtp, maildir or
sendmail the same way). ``send`` returns an outcome rather than raising for a
recipient the far end refused, so the engine can record it and go on.
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from briefing.config import Config
from briefing.errors import DeliveryError

Outcome = Literal["sent", "deferred", "failed"]


@dataclass(frozen=True)
class TransportResult:
    """What the transport said about one message."""

    outcome: Outcome
    code: int | None = None
    reply: str | None = None
    stage: str | None = None


class Transport(Protocol):
    """Deliver one message to one recipient."""

    name: str

    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        """Hand over ``message`` for ``recipient``; report the outcome."""
        ...

    def close(self) -> None:
        """Release connections or files."""
        ...


class OutboxTransport:
    """Write each message into a Maildir (``new/``), the embedded default."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            self._maildir = mailbox.Maildir(str(folder), create=True)
        except OSError as exc:
            raise DeliveryError(str(folder), f"cannot create the Maildir outbox: {exc}") from exc

    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        """Store the message as one file; the Maildir write is atomic (tmp/ then new/)."""
        try:
            key = self._maildir.add(message)
        except OSError as exc:
            return TransportResult("deferred", reply=f"outbox write failed: {exc}")
        return TransportResult("sent", code=250, reply=f"stored as {key}")

    def close(self) -> None:
        """Nothing to release: every write is complete when add() returns."""


def make_transport(config: Config) -> Transport:
    """Create the transport ``config.delivery.transport`` names."""
    return OutboxTransport(config.outbox_path)
