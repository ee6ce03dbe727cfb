"""What one delivery run did: deliveries counted by the state they were left in."""

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
    problems: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def count(self, state: DeliveryState, number: int = 1) -> None:
        """Count ``number`` deliveries left in ``state``."""
        self.counts[state] += number

    def note_failure(self, recipient: str, status: DeliveryState, reply: str) -> None:
        """Remember a recipient not delivered to, for the end-of-run table."""
        self.failures.append(Failure(recipient, status, reply))
        self.problems.append(f"{recipient}: {status}: {reply}")

    def withdraw(self, recipients: set[str]) -> None:
        """Take back the failures of ``recipients``: they were left pending after all."""
        for failure in self.failures:
            if failure.recipient in recipients and failure.status in (
                DeliveryState.FAILED,
                DeliveryState.BOUNCED,
            ):
                self.counts[failure.status] -= 1
        self.failures = [f for f in self.failures if f.recipient not in recipients]
        self.problems = [p for p in self.problems if p.partition(":")[0] not in recipients]

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
