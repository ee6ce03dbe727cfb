"""What one delivery run did: deliveries counted by the state they were left in.

Each delivery counts once, by the last state this run left it in: a delivery
deferred and then sent by the same run (claimed again once its retry time
came) counts as sent, not as deferred and sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from briefing.domain.states import DeliveryState

# The states a run leaves deliveries in, and so counts as handled.
HANDLED: tuple[DeliveryState, ...] = (
    DeliveryState.SENT,
    DeliveryState.DEFERRED,
    DeliveryState.FAILED,
    DeliveryState.BOUNCED,
    DeliveryState.CANCELLED,
    DeliveryState.SUPPRESSED,
    DeliveryState.EXPIRED,
)


@dataclass(frozen=True)
class Failure:
    """One recipient the run could not deliver to, and what the relay said."""

    recipient: str
    status: DeliveryState
    reply: str


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    counts: Counter[DeliveryState] = field(default_factory=Counter)
    released: int = 0  # claims handed back unsent because the run stopped
    retries: int = 0  # extra tries within the run after a temporary failure
    in_flight: int = 0
    redirected_to: str | None = None
    stopped: str | None = None  # why the run stopped before the ledger was drained
    stop_hint: str | None = None
    elapsed: float = 0.0
    processes: int = 1  # delivery processes the run used (briefing.deliver.parallel)
    # Delivery id: last state, for the deliveries whose state this run may still
    # change or take back. A sent delivery is final (never claimed again, never
    # withdrawn), so it is only counted: the report stays small however many go.
    states: dict[int, DeliveryState] = field(default_factory=dict)
    failed_by_id: dict[int, Failure] = field(default_factory=dict)

    def count(self, state: DeliveryState, delivery_id: int) -> None:
        """Record that this run left delivery ``delivery_id`` in ``state`` (its latest state)."""
        previous = self.states.pop(delivery_id, None)
        if previous is not None:
            self.counts[previous] -= 1
        self.counts[state] += 1
        if state == DeliveryState.SENT:
            self.failed_by_id.pop(delivery_id, None)
        else:
            self.states[delivery_id] = state

    def note_failure(
        self, delivery_id: int, recipient: str, status: DeliveryState, reply: str
    ) -> None:
        """Remember a recipient not delivered to, for the end-of-run table."""
        self.failed_by_id.pop(delivery_id, None)  # the latest failure goes last
        self.failed_by_id[delivery_id] = Failure(recipient, status, reply)

    def withdraw(self, delivery_ids: list[int]) -> None:
        """Take back the outcomes of ``delivery_ids``: they were left pending after all."""
        for delivery_id in delivery_ids:
            state = self.states.pop(delivery_id, None)
            if state is not None:
                self.counts[state] -= 1
            self.failed_by_id.pop(delivery_id, None)

    @property
    def failures(self) -> list[Failure]:
        """Return the recipients not delivered to, in the order they failed."""
        return list(self.failed_by_id.values())

    @property
    def problems(self) -> list[str]:
        """Return one line per recipient not delivered to."""
        return [f"{f.recipient}: {f.status}: {f.reply}" for f in self.failed_by_id.values()]

    @property
    def sent(self) -> int:
        """Count messages the transport took."""
        return self.counts[DeliveryState.SENT]

    @property
    def deferred(self) -> int:
        """Count deliveries left for a later run."""
        return self.counts[DeliveryState.DEFERRED]

    @property
    def failed(self) -> int:
        """Count deliveries refused for good."""
        return self.counts[DeliveryState.FAILED]

    @property
    def bounced(self) -> int:
        """Count hard bounces."""
        return self.counts[DeliveryState.BOUNCED]

    @property
    def cancelled(self) -> int:
        """Count deliveries cancelled before sending."""
        return self.counts[DeliveryState.CANCELLED]

    @property
    def suppressed(self) -> int:
        """Count deliveries to suppressed addresses."""
        return self.counts[DeliveryState.SUPPRESSED]

    @property
    def expired(self) -> int:
        """Count deliveries past their briefing's deadline."""
        return self.counts[DeliveryState.EXPIRED]

    @property
    def handled(self) -> int:
        """Count deliveries this run settled or left deferred."""
        return sum(self.counts[state] for state in HANDLED)

    @property
    def rate(self) -> float:
        """Return messages sent per second so far."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0
