"""When to try a temporary failure again: within the run after a backoff, or in a later run.

A delivery the transport deferred (4xx, timeout, dropped connection) is
retried within the run after ``retry.backoff`` seconds, doubled each time with
jitter, up to ``retry.attempts_per_run`` tries; then it is left ``deferred``
for a run ``retry.later`` from now, never past the briefing's deadline (after
which it expires).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from briefing.config import RetryConfig
from briefing.domain.states import DeliveryState

Job = TypeVar("Job")


@dataclass(frozen=True)
class RetryPolicy:
    """The retry settings, and the decisions made from them."""

    settings: RetryConfig
    jitter: Callable[[float, float], float] = random.uniform

    def again_in_run(self, attempt: int) -> bool:
        """Tell whether try ``attempt`` (1 for the first) may be followed by another in this run."""
        return attempt < self.settings.attempts_per_run

    def delay(self, attempt: int) -> float:
        """Return the wait before try ``attempt + 1``: backoff x 2^(attempt-1), capped, +-50%."""
        base = min(self.settings.max_backoff, self.settings.backoff * 2.0 ** (attempt - 1))
        return base * self.jitter(0.5, 1.5)

    def leave(self, now: datetime, deadline: datetime) -> tuple[DeliveryState, datetime | None]:
        """Decide what a delivery not retried in this run becomes, and when it is due again."""
        if now >= deadline:
            return DeliveryState.EXPIRED, None
        return DeliveryState.DEFERRED, min(now + self.settings.later, deadline)


@dataclass
class RetryQueue(Generic[Job]):
    """Jobs waiting for their backoff to pass, by the monotonic moment they are due."""

    _heap: list[tuple[float, int, Job]] = field(default_factory=list)

    def push(self, due: float, ident: int, job: Job) -> None:
        """Hold ``job`` (the delivery ``ident``) until the moment ``due``."""
        heapq.heappush(self._heap, (due, ident, job))

    def next_due(self) -> float | None:
        """Return the moment the earliest job is due, or None when none waits."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, moment: float) -> Iterator[tuple[int, Job]]:
        """Take out every job due by ``moment``, earliest first."""
        while self._heap and self._heap[0][0] <= moment:
            _, ident, job = heapq.heappop(self._heap)
            yield ident, job

    def clear(self) -> list[int]:
        """Take out every job; return their ids."""
        ids = [ident for _, ident, _ in self._heap]
        self._heap.clear()
        return ids

    def __len__(self) -> int:
        return len(self._heap)
