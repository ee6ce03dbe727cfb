"""Notice many recipients in a row refused with the same reply: the relay or the message is wrong.

When ``delivery.same_failure_limit`` permanent refusals in a row share the
stage, the code and the status, the recipients are not the cause: a content
filter, a sender the relay rejects, a relay rule. The engine then stops the
run and puts those deliveries back to pending instead of failing them all.
Any message sent in between breaks the streak.

A refusal about one recipient (RFC 3463 5.1.x: no such mailbox or domain,
null MX included; 5.2.x: mailbox full or disabled) never counts, nor breaks
a streak: a list with its first hundred addresses dead, or sorted by domain
with one dead domain, is a list, not a relay fault. 5.7.x policy and
reputation refusals count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from briefing.deliver.replies import Reply, is_recipient_refusal
from briefing.deliver.transports.base import TransportResult

StreakKey = tuple[str | None, int | None, str | None]  # stage, code, status


@dataclass
class Streak:
    """The current run of permanent refusals sharing one reply."""

    limit: int
    key: StreakKey | None = None
    refused: list[tuple[int, str]] = field(default_factory=list)  # (delivery id, recipient)

    def sent(self) -> None:
        """A message got through: the streak is broken."""
        self.reset()

    def refuse(self, delivery_id: int, recipient: str, result: TransportResult) -> None:
        """Count a permanent refusal; a different reply starts a new streak.

        A refusal of the recipient alone (see :func:`recipient_refused`) is not counted.
        """
        if recipient_refused(result):
            return
        key = (result.stage, result.code, status_key(result))
        if key != self.key:
            self.refused, self.key = [], key
        self.refused.append((delivery_id, recipient))

    @property
    def tripped(self) -> bool:
        """Tell whether the streak reached the limit."""
        return len(self.refused) >= self.limit

    @property
    def ids(self) -> list[int]:
        """Return the deliveries of the streak."""
        return [delivery_id for delivery_id, _ in self.refused]

    @property
    def recipients(self) -> set[str]:
        """Return the recipients of the streak."""
        return {recipient for _, recipient in self.refused}

    def reset(self) -> None:
        """Forget the streak."""
        self.refused, self.key = [], None

    def __len__(self) -> int:
        return len(self.refused)


def status_key(result: TransportResult) -> str | None:
    """Return what identifies a reply beyond its code: the enhanced status, else its start."""
    reply = result.reply or ""
    return reply.split(" ", 2)[1] if reply.count(" ") >= 1 and reply[:1].isdigit() else reply[:40]


def recipient_refused(result: TransportResult) -> bool:
    """Tell whether a refusal is about the recipient alone (5.1.x, 5.2.x), not the relay."""
    code, _, text = (result.reply or "").partition(" ")
    if not code.isdigit():
        return False
    return is_recipient_refusal(Reply(int(code), text).enhanced)
