"""Pace sends: a messages-per-second cap that a relay's 4.7.x "slow down" halves for a while.

Several ``briefing deliver`` workers share one configured rate without asking
the database per message: each takes ``limit / live workers``, the count read
from the live-process table at every heartbeat (:meth:`RateLimiter.share`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Space acquisitions at most ``rate`` per second; unlimited when ``rate`` is None.

    Thread-safe. Each caller reserves the next free slot under a lock and
    sleeps outside it, so a slow caller never holds the others up.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        slow_down_period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = rate  # the configured rate, for all workers together
        self.workers = 1  # live delivery workers sharing it (this one included)
        self.slow_down_period = slow_down_period
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._cap: float | None = None  # the lowered rate while slowed down
        self._cap_until = 0.0
        self._last_slow_down = float("-inf")
        self._recent: deque[float] = deque(maxlen=4096)

    @property
    def configured(self) -> float | None:
        """Return this worker's share of the configured rate (None: unlimited)."""
        return None if self.limit is None else self.limit / self.workers

    def share(self, workers: int) -> float | None:
        """Take ``1/workers`` of the configured rate from now on; return the new share.

        Called at heartbeat with the number of live delivery workers (at least
        this one). Slots already reserved keep their time.
        """
        with self._lock:
            self.workers = max(1, workers)
            return self.configured

    @property
    def rate(self) -> float | None:
        """Return the rate in force now: the lowered one while slowed down."""
        if self._cap is not None and self._clock() < self._cap_until:
            return self._cap if self.configured is None else min(self._cap, self.configured)
        return self.configured

    def acquire(self) -> None:
        """Wait for the next slot."""
        with self._lock:
            now = self._clock()
            self._recent.append(now)
            rate = self.rate
            if rate is None:
                return
            slot = max(now, self._next)
            self._next = slot + 1.0 / rate
        if slot > now:
            self._sleep(slot - now)

    def observed(self) -> float:
        """Return the messages per second of the last second."""
        now = self._clock()
        return float(sum(1 for moment in self._recent if now - moment <= 1.0))

    def slow_down(self) -> float:
        """Halve the rate for ``slow_down_period`` seconds; return the new rate.

        Replies to messages already in flight arrive together, so the rate is
        halved at most once a second, not once per reply.
        """
        with self._lock:
            now = self._clock()
            current = self.rate or max(self.observed(), 2.0)
            if now - self._last_slow_down >= 1.0:
                self._last_slow_down = now
                current = max(current / 2, 0.5)
            self._cap = current
            self._cap_until = now + self.slow_down_period
            return current
