"""Write each message into a Maildir outbox: the embedded default transport."""

from __future__ import annotations

import mailbox
from pathlib import Path

from briefing.deliver.transports.base import Transport, TransportResult
from briefing.domain.states import DeliveryState
from briefing.errors import DeliveryError


class OutboxTransport(Transport):
    """Write each message into a Maildir (``new/``), the embedded default."""

    name = "outbox"
    connections = 1  # one writer: Maildir adds are atomic but the engine needs no more
    wire_form = False  # files hold the message as composed

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
            return TransportResult(DeliveryState.DEFERRED, reply=f"outbox write failed: {exc}")
        return TransportResult(DeliveryState.SENT, code=250, reply=f"stored as {key}")

    def close(self) -> None:
        """Nothing to release: every write is complete when add() returns."""
