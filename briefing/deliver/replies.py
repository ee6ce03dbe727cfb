"""Classify an SMTP reply by the stage it answered: sent, deferred, failed, bounced, or stop.

The same code means different things at different stages: a 5xx to MAIL FROM
refuses the sender (every message would fail alike), a 5xx to RCPT TO refuses
one recipient. The rules, after RFC 5321 and RFC 3463 (enhanced status codes):

========================  =====================================================
reply                     verdict
========================  =====================================================
2xx after the final dot   sent
421 at any stage          deferred; the server is closing, reconnect
4xx                       deferred (retried); 4.7.x also asks us to slow down
5xx to RCPT or DATA       failed for good; 5.1.x is a hard bounce (suppressed)
5xx to MAIL, 530 (auth    the session is refused: stop the run, leave the rest
required), relaying       pending, mark nobody failed
denied at RCPT
anything else             deferred, and the connection is dropped
========================  =====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from briefing.domain.states import DeliveryState

Stage = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "data-end"]
# What a reply leaves the delivery in, or "session": the session is refused, stop the run.
Session = Literal["session"]
SESSION: Session = "session"
Verdict = DeliveryState | Session

_SENT, _DEFERRED = DeliveryState.SENT, DeliveryState.DEFERRED

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_RELAY = re.compile(r"\brelay", re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: code, text (lines joined by spaces) and its enhanced status, if any."""

    code: int
    text: str

    @property
    def enhanced(self) -> str | None:
        """Return the RFC 3463 status at the start of the text, such as ``5.1.1``."""
        match = _ENHANCED.match(self.text)
        return ".".join(match.groups()) if match else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass(frozen=True)
class Classified:
    """What a reply means for the delivery, the connection and the rate."""

    verdict: Verdict
    close: bool = False  # the connection cannot be used again
    slow_down: bool = False  # the relay asked for a lower rate (4.7.x)


def is_hard_bounce(reply: Reply) -> bool:
    """Tell whether a permanent reply says the address does not exist (5.1.x)."""
    enhanced = reply.enhanced
    return enhanced is not None and enhanced.startswith("5.1.")


def is_recipient_refusal(enhanced: str | None) -> bool:
    """Tell whether a permanent status refuses one recipient, not the sender or the message.

    5.1.x says the mailbox or its domain does not exist (5.1.10: the domain
    takes no mail, null MX); 5.2.x says the mailbox is full, disabled or over
    its limits. Those are about the address alone, however many arrive in a
    row. 5.7.x (policy, reputation, authentication) and the rest may be about
    us, so they are not.
    """
    return enhanced is not None and enhanced[:4] in ("5.1.", "5.2.")


def classify(stage: Stage, reply: Reply) -> Classified:
    """Say what ``reply`` to the command of ``stage`` means."""
    code, enhanced = reply.code, reply.enhanced or ""
    if 200 <= code < 300:
        return Classified(_SENT if stage == "data-end" else _DEFERRED)
    if stage == "data" and code == 354:
        return Classified(_DEFERRED)  # not a final answer; callers go on to send the body
    if code == 421:
        return Classified(_DEFERRED, close=True)
    if 400 <= code < 500:
        return Classified(_DEFERRED, slow_down=enhanced.startswith("4.7."))
    if 500 <= code < 600:
        if code == 530 or stage in ("connect", "ehlo", "starttls", "auth", "mail"):
            return Classified(SESSION, close=True)
        if stage == "rcpt" and (code in (550, 551, 553, 554) and _RELAY.search(reply.text)):
            return Classified(SESSION, close=True)
        return Classified(DeliveryState.BOUNCED if is_hard_bounce(reply) else DeliveryState.FAILED)
    return Classified(_DEFERRED, close=True)
