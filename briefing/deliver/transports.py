"""Hand composed messages to where they go: a Maildir outbox or an SMTP relay.

Transports share one small Protocol (rss2email picks smtp, maildir or
sendmail the same way). ``send`` returns an outcome rather than raising for a
recipient the far end refused, so the engine can record it and go on; it
raises :class:`~briefing.errors.SessionError` only when no message could get
through (the relay refused the session). ``connections`` tells the engine how
many sends may run at once; ``send`` is safe to call from that many threads.
``wire_form`` says the transport takes messages already in SMTP DATA form
(CRLF, dot-stuffed), which the engine prepares once per variant.
"""

from __future__ import annotations

import mailbox
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from briefing.config import SMTP_PASSWORD_ENV, Config
from briefing.errors import DeliveryError, SecretError

Outcome = Literal["sent", "deferred", "failed", "bounced"]


@dataclass(frozen=True)
class TransportResult:
    """What the transport said about one message."""

    outcome: Outcome
    code: int | None = None
    reply: str | None = None
    stage: str | None = None
    slow_down: bool = False


class Transport(Protocol):
    """Deliver one message to one recipient."""

    name: str
    connections: int
    wire_form: bool

    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        """Hand over ``message`` for ``recipient``; report the outcome."""
        ...

    def close(self) -> None:
        """Release connections or files."""
        ...


class OutboxTransport:
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
            return TransportResult("deferred", reply=f"outbox write failed: {exc}")
        return TransportResult("sent", code=250, reply=f"stored as {key}")

    def close(self) -> None:
        """Nothing to release: every write is complete when add() returns."""


def make_transport(config: Config) -> Transport:
    """Create the transport ``config.delivery.transport`` names."""
    delivery = config.delivery
    if delivery.transport == "smtp":
        # Imported here: the SMTP module needs this one's TransportResult.
        from briefing.deliver.smtp import SmtpTransport

        settings = delivery.smtp
        assert settings is not None  # the config validator requires it for smtp
        password = None
        if settings.username:
            password = os.environ.get(SMTP_PASSWORD_ENV) or None
            if password is None:
                raise SecretError(SMTP_PASSWORD_ENV, f"password of SMTP user {settings.username!r}")
        return SmtpTransport(
            settings,
            password=password,
            ca_file=config.resolve(settings.ca_file) if settings.ca_file else None,
            rate_limit=delivery.rate_limit,
            connection_rate_limit=delivery.connection_rate_limit,
            slow_down_period=delivery.slow_down_period,
        )
    return OutboxTransport(config.outbox_path)
