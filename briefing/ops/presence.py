"""Keep this process's row in the live-process table while it runs.

``serve``, ``briefing deliver`` and ``web`` each run a :class:`Presence`:
it registers at start, renews the heartbeat every ``interval`` seconds from a
daemon thread (by the database's clock), prunes rows that missed
``STALE_AFTER_BEATS`` heartbeats, and deletes its own row at a clean exit. After
each heartbeat it calls ``on_beat`` with the number of live ``deliver`` workers,
which is how each worker takes its share of the configured rate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any

from briefing import __version__
from briefing.domain.states import ProcessKind
from briefing.store import Database
from briefing.store.processes import (
    STALE_AFTER_BEATS,
    beat,
    count_live,
    prune,
    register,
    unregister,
)

logger = logging.getLogger(__name__)


class Presence:
    """Register this process as ``kind`` for the life of a ``with`` block."""

    def __init__(
        self,
        database: Database,
        kind: ProcessKind,
        *,
        interval: float,
        detail: dict[str, Any] | None = None,
        on_beat: Callable[[int], None] | None = None,
    ) -> None:
        self.database = database
        self.kind = kind
        self.interval = interval
        self.detail = {"version": __version__, **(detail or {})}
        self.on_beat = on_beat
        self.stale = timedelta(seconds=interval * STALE_AFTER_BEATS)
        self.process_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Presence:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Register and start heartbeating."""
        with self.database.transaction() as session:
            prune(session, self.stale)
            self.process_id = register(session, self.kind, self.detail)
        self._beaten()
        self._thread = threading.Thread(target=self._run, name=f"presence-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop heartbeating and remove this process's row."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.process_id is not None:
            try:
                with self.database.transaction() as session:
                    unregister(session, self.process_id)
            except Exception as exc:  # the row goes stale and is pruned by the next process
                logger.warning(
                    "could not remove this %s from the process table: %s", self.kind, exc
                )
                logger.debug("process table traceback", exc_info=True)
            self.process_id = None

    def beat_now(self) -> None:
        """Renew the heartbeat once (re-registering if the row was pruned meanwhile)."""
        with self.database.transaction() as session:
            assert self.process_id is not None
            if not beat(session, self.process_id):
                # Pruned after a long stall (a suspended VM, a stopped process): come back.
                self.process_id = register(session, self.kind, self.detail)
            prune(session, self.stale)
        self._beaten()

    def _beaten(self) -> None:
        if self.on_beat is None:
            return
        with self.database.transaction() as session:
            workers = count_live(session, ProcessKind.DELIVER, stale=self.stale)
        self.on_beat(workers)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat_now()
            except Exception as exc:  # a database hiccup: try again at the next beat
                logger.warning("%s heartbeat failed: %s", self.kind, exc)
                logger.debug("heartbeat traceback", exc_info=True)
