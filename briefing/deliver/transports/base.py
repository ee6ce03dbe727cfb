"""The contract every transport keeps: hand one message to one recipient, report how it went.

A transport is what the delivery engine sends through: the Maildir outbox,
an SMTP relay, or one a plugin adds. ``send`` returns a
:class:`TransportResult` rather than raising for a recipient the far end
refused, so the engine can record it and go on; it raises
:class:`~briefing.errors.SessionError` only when no message could get
through (the relay refused the session).

The engine asks the transport, never its type or name, how to use it:

- ``connections``: how many sends may run at once; ``send`` is safe to call
  from that many threads.
- ``wire_form``: ``send`` takes messages already in SMTP DATA form
  (:func:`to_wire`), which the engine prepares once per variant.
- :meth:`Transport.describe`: where messages go, for errors and logs.
- :meth:`Transport.envelope_sender`: the envelope sender (MAIL FROM) of one
  message.

This module imports nothing from the rest of the package but the domain and
the errors, so a transport from outside depends on this contract alone.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from briefing.domain.states import DeliveryState

# What a transport may say about one message.
SEND_OUTCOMES: frozenset[DeliveryState] = frozenset(
    {DeliveryState.SENT, DeliveryState.DEFERRED, DeliveryState.FAILED, DeliveryState.BOUNCED}
)

_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class TransportResult:
    """What the transport said about one message: sent, deferred, failed or bounced."""

    outcome: DeliveryState
    code: int | None = None
    reply: str | None = None
    stage: str | None = None
    slow_down: bool = False

    def __post_init__(self) -> None:
        outcome = DeliveryState(self.outcome)
        if outcome not in SEND_OUTCOMES:
            raise ValueError(f"a transport cannot report {outcome!r}")
        object.__setattr__(self, "outcome", outcome)


class Transport(ABC):
    """Deliver one message to one recipient."""

    name: str
    connections: int = 1
    wire_form: bool = False

    @abstractmethod
    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        """Hand over ``message`` for ``recipient``; report the outcome."""

    @abstractmethod
    def close(self) -> None:
        """Release connections or files."""

    def describe(self) -> str:
        """Say where messages go (a relay's host and port, a folder), for errors and logs."""
        return self.name

    def envelope_sender(
        self, from_address: str, *, briefing: str, recipient: str, token: str | None = None
    ) -> str:
        """Return the envelope sender (MAIL FROM) of one message; the From address by default.

        ``token`` is the delivery's signed token (a bounce address may carry it).
        """
        return from_address


def to_wire(message: bytes) -> bytes:
    """Return a message in SMTP DATA form: CRLF line ends, dot-stuffed, ending in CRLF.

    The final ``.`` line is not included; a transport in wire form adds it.
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
        message = _LINE_ENDS.sub(b"\r\n", message)
    if message.startswith(b"."):
        message = b"." + message
    if b"\n." in message:
        message = message.replace(b"\n.", b"\n..")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message
